//! The command line of a user's topology binary: register Rust components,
//! then hand over to [`main`]:
//!
//! ```no_run
//! use zerorpc_stream::Registry;
//! # fn registry() -> Registry { Registry::new() }
//! fn main() -> std::process::ExitCode {
//!     zerorpc_stream::app::main(registry())
//! }
//! ```
//!
//! Subcommands:
//! - `run TOPOLOGY.yaml [--duration S] [--stop-when-idle S] [--stats-json
//!   FILE] [--log-dir DIR] [--quiet]`: runs a Flux file with the local
//!   runner and prints the final statistics table (stdout); the live table
//!   goes to stderr every 2 s unless `--quiet`. Ctrl-C drains and stops.
//! - `multilang CLASS [ARGS_JSON]`: serves the registered spout or bolt
//!   `CLASS` (made with the JSON list `ARGS_JSON` as its constructor
//!   arguments) as a Storm multi-lang program on stdin/stdout, what a
//!   `FluxShellSpout`/`FluxShellBolt` command runs on a Storm cluster.
//! - `list`: the registered classes.
//!
//! Durations are seconds (`2.5`), or with a unit: `500ms`, `10s`, `5m`,
//! `1h`.
//!
//! Logs go through `tracing`; install a subscriber before calling [`main`]
//! to see them (component logs also go to `--log-dir`).
//!
//! Set a `#[global_allocator]` in the binary (`mimalloc::MiMalloc` or
//! `tikv_jemallocator::Jemalloc`): the runner allocates tuples on one thread
//! and frees them on another, where glibc's malloc takes its slow paths; the
//! multi-lang word count spent 41 µs of CPU per tuple tree with glibc and
//! 28–31 µs with either of those (the `zerorpc` CLI links mimalloc).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::error::Error;
use crate::runner::RunOptions;
use crate::stats::{render_table, RunStats};
use crate::topology::{ComponentKind, Registry, Topology};
use crate::tuple::Value;

/// Usage of the `run` options (shared with `zerorpc stream run`).
pub const RUN_OPTIONS_HELP: &str = "\
  --duration S         stop after S (seconds, or 500ms, 10s, 5m, 1h)
  --stop-when-idle S   stop once no tuple moved and no tree was pending for S
  --stats-json FILE    write the statistics as JSON to FILE (every 2 s and at the end)
  --log-dir DIR        write component logs to DIR/<component>.log
  --quiet              no live statistics table on stderr";

fn usage(program: &str) -> String {
    format!(
        "usage:
  {program} run TOPOLOGY.yaml [options]   run a Flux topology with the local runner
  {program} multilang CLASS [ARGS_JSON]    serve a registered spout or bolt as a Storm multi-lang program
  {program} list                           the registered Rust classes

run options:
{RUN_OPTIONS_HELP}"
    )
}

/// A parsed `run` command line.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// The Flux file.
    pub file: PathBuf,
    /// How the run is bounded and reported (`terminal` is off with
    /// `--quiet`; Ctrl-C stops).
    pub options: RunOptions,
}

/// A duration: seconds (`2.5`) or with a unit (`500ms`, `10s`, `5m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("{s:?} is not a duration (seconds, or 500ms, 10s, 5m, 1h)"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses the arguments after `run`: the Flux file and the options.
pub fn parse_run_args(args: &[String]) -> Result<RunCommand, String> {
    let mut file = None;
    let mut options = RunOptions {
        terminal: true,
        ctrl_c: true,
        ..RunOptions::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--duration" => options.duration = Some(parse_duration(&value(name)?)?),
            "--stop-when-idle" => options.stop_when_idle = Some(parse_duration(&value(name)?)?),
            "--stats-json" => options.stats_json = Some(PathBuf::from(value(name)?)),
            "--log-dir" => options.log_dir = Some(PathBuf::from(value(name)?)),
            "--quiet" | "-q" => options.terminal = false,
            other if other.starts_with('-') && other != "-" => {
                return Err(format!("unknown option {other}"))
            }
            _ => {
                if file.is_some() {
                    return Err(format!("one topology file only (also got {arg:?})"));
                }
                file = Some(PathBuf::from(arg));
            }
        }
    }
    let file = file.ok_or("run: which topology file? (run TOPOLOGY.yaml)")?;
    Ok(RunCommand { file, options })
}

/// The Rust classes a topology names (`className`s that are not shell
/// wrappers), in declaration order.
pub fn rust_classes(topology: &Topology) -> Vec<String> {
    topology
        .spouts
        .iter()
        .chain(&topology.bolts)
        .filter_map(|c| match &c.kind {
            ComponentKind::Registered { class, .. } => Some(class.clone()),
            _ => None,
        })
        .collect()
}

/// Loads the Flux file and runs it with `registry` until the options say
/// stop; the final statistics.
pub async fn run_file(cmd: &RunCommand, registry: &Registry) -> Result<RunStats, Error> {
    let topology = crate::flux::load(&cmd.file)?;
    crate::runner::run(topology, registry, cmd.options.clone()).await
}

/// Runs `run` in a new tokio runtime, printing the final table on stdout.
fn run_command(cmd: RunCommand, registry: &Registry) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the tokio runtime", e))?;
    let stats = rt.block_on(run_file(&cmd, registry))?;
    print!("{}", render_table(&stats));
    Ok(())
}

/// Serves a registered class as a multi-lang program.
fn multilang(registry: &Registry, class: &str, args: Option<&str>) -> Result<(), String> {
    let args: Vec<Value> = match args {
        None => Vec::new(),
        Some(a) => match serde_json::from_str(a) {
            Ok(Value::Array(v)) => v,
            Ok(other) => vec![other],
            Err(e) => return Err(format!("ARGS_JSON {a:?} is not JSON: {e}")),
        },
    };
    if let Some(make) = registry.spouts.get(class) {
        let spout = make(&args).map_err(|e| format!("{class}: {e}"))?;
        return crate::multilang::run_spout(spout).map_err(|e| e.to_string());
    }
    if let Some(make) = registry.bolts.get(class) {
        let bolt = make(&args).map_err(|e| format!("{class}: {e}"))?;
        return crate::multilang::run_bolt(bolt).map_err(|e| e.to_string());
    }
    Err(format!(
        "no class {class:?} is registered (registered: {})",
        list(registry).replace('\n', ", ").trim_end_matches(", ")
    ))
}

/// The registered classes, one a line: `spout CLASS` / `bolt CLASS`.
fn list(registry: &Registry) -> String {
    let mut s = String::new();
    for c in registry.spouts.keys() {
        s.push_str(&format!("spout {c}\n"));
    }
    for c in registry.bolts.keys() {
        s.push_str(&format!("bolt {c}\n"));
    }
    s
}

/// The binary's entry point: parses `std::env::args()` and runs the
/// subcommand (see the module's documentation). Exit codes: 0 ok, 1 the
/// run failed, 2 usage.
pub fn main(registry: Registry) -> ExitCode {
    main_with_args(registry, std::env::args())
}

/// [`main`] with explicit arguments (the first is the program's name).
pub fn main_with_args(registry: Registry, args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut args = args.into_iter();
    let program = args
        .next()
        .map(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or(p)
        })
        .unwrap_or_else(|| "topology".into());
    let args: Vec<String> = args.collect();
    let fail = |code: u8, msg: &str| {
        eprintln!("{program}: {msg}");
        ExitCode::from(code)
    };
    match args.first().map(String::as_str) {
        Some("run") => match parse_run_args(&args[1..]) {
            Ok(cmd) => match run_command(cmd, &registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e.to_string()),
            },
            Err(e) => fail(2, &format!("{e}\n{}", usage(&program))),
        },
        Some("multilang") => match (args.get(1), args.len()) {
            (Some(class), 2 | 3) => {
                match multilang(&registry, class, args.get(2).map(String::as_str)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(1, &e),
                }
            }
            _ => fail(2, &usage(&program)),
        },
        Some("list") => {
            print!("{}", list(&registry));
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") => {
            println!("{}", usage(&program));
            ExitCode::SUCCESS
        }
        Some(other) => fail(2, &format!("no subcommand {other:?}\n{}", usage(&program))),
        None => fail(2, &usage(&program)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_arguments() {
        let c = parse_run_args(&s(&[
            "t.yaml",
            "--duration",
            "2.5",
            "--stop-when-idle=500ms",
            "--stats-json",
            "st.json",
            "--log-dir=logs",
            "--quiet",
        ]))
        .unwrap();
        assert_eq!(c.file, PathBuf::from("t.yaml"));
        assert_eq!(c.options.duration, Some(Duration::from_millis(2500)));
        assert_eq!(c.options.stop_when_idle, Some(Duration::from_millis(500)));
        assert_eq!(c.options.stats_json, Some(PathBuf::from("st.json")));
        assert_eq!(c.options.log_dir, Some(PathBuf::from("logs")));
        assert!(!c.options.terminal);
        assert!(c.options.ctrl_c);
        assert!(parse_run_args(&s(&["t.yaml"])).unwrap().options.terminal);

        assert!(parse_run_args(&s(&[]))
            .unwrap_err()
            .contains("which topology"));
        assert!(parse_run_args(&s(&["a", "b"]))
            .unwrap_err()
            .contains("one topology"));
        assert!(parse_run_args(&s(&["a", "--duration"]))
            .unwrap_err()
            .contains("--duration needs a value"));
        assert!(parse_run_args(&s(&["a", "--duration", "soon"]))
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_run_args(&s(&["a", "--fast"]))
            .unwrap_err()
            .contains("unknown option --fast"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn list_and_unknown_class() {
        struct Nop;
        impl crate::Bolt for Nop {
            fn outputs(&self) -> crate::Outputs {
                crate::Outputs::none()
            }
            fn process(
                &mut self,
                _: &crate::Tuple,
                _: &mut crate::BoltCollector<'_>,
            ) -> Result<(), crate::BoxError> {
                Ok(())
            }
        }
        let r = Registry::new().bolt("x.Nop", |_| Ok(Nop));
        assert_eq!(list(&r), "bolt x.Nop\n");
        let e = multilang(&r, "x.Other", None).unwrap_err();
        assert!(
            e.contains("no class \"x.Other\"") && e.contains("bolt x.Nop"),
            "{e}"
        );
        let e = multilang(&r, "x.Nop", Some("[1,")).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    /// Emits `0..n` tracked, then nothing.
    struct Count {
        next: u64,
        n: u64,
    }
    impl crate::Spout for Count {
        fn outputs(&self) -> crate::Outputs {
            crate::Outputs::fields(["n"])
        }
        fn next_tuple(
            &mut self,
            out: &mut crate::SpoutCollector<'_>,
        ) -> Result<(), crate::BoxError> {
            if self.next < self.n {
                out.emit(vec![self.next.into()], self.next.into())?;
                self.next += 1;
            }
            Ok(())
        }
    }
    /// Passes numbers on, doubled.
    struct Double;
    impl crate::Bolt for Double {
        fn outputs(&self) -> crate::Outputs {
            crate::Outputs::fields(["n"])
        }
        fn process(
            &mut self,
            t: &crate::Tuple,
            out: &mut crate::BoltCollector<'_>,
        ) -> Result<(), crate::BoxError> {
            let n = t
                .values
                .first()
                .and_then(|v| v.as_u64())
                .ok_or("not a number")?;
            out.emit(&[t], vec![(2 * n).into()])?;
            Ok(())
        }
    }

    #[test]
    fn runs_a_flux_file_with_registered_classes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        std::fs::write(
            &file,
            "name: app-test\nspouts:\n  - id: numbers\n    className: test.Count\n    constructorArgs: [50]\nbolts:\n  - id: double\n    className: test.Double\n    parallelism: 2\nstreams:\n  - from: numbers\n    to: double\n    grouping: {type: SHUFFLE}\n",
        )
        .unwrap();
        let registry = Registry::new()
            .spout("test.Count", |args| {
                let n = args.first().and_then(|v| v.as_u64()).ok_or("Count(n)")?;
                Ok(Count { next: 0, n })
            })
            .bolt("test.Double", |_| Ok(Double));
        let stats_file = dir.path().join("stats.json");
        let cmd = parse_run_args(&[
            file.display().to_string(),
            "--stop-when-idle".into(),
            "300ms".into(),
            "--duration".into(),
            "60".into(),
            "--stats-json".into(),
            stats_file.display().to_string(),
            "--quiet".into(),
        ])
        .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let stats = rt.block_on(run_file(&cmd, &registry)).unwrap();
        assert_eq!(stats.topology, "app-test");
        assert_eq!(stats.trees.started, 50);
        assert_eq!(stats.trees.acked, 50);
        assert_eq!(stats.components["numbers"].emitted, 50);
        assert_eq!(stats.components["double"].executed, 50);
        assert_eq!(stats.components["double"].tasks, 2);
        let written: RunStats =
            serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
        assert_eq!(written, stats);
        let table = render_table(&stats);
        assert!(
            table.contains("numbers") && table.contains("double"),
            "{table}"
        );
        // A class the registry lacks is named.
        let e = rt
            .block_on(run_file(&cmd, &Registry::new()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is registered as \"test.") && e.contains("registered: none"),
            "{e}"
        );
    }
}
