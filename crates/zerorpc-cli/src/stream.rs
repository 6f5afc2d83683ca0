//! `zerorpc stream ...`: Storm-style stream processing with no JVM
//! (`zerorpc-stream`): run a Flux topology with the local runner, start a
//! project, read its logs and statistics.

mod logs;
mod quickstart;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use zerorpc_stream::app::{self, RunCommand};
use zerorpc_stream::runner::RunOptions;
use zerorpc_stream::{render_table, Registry};

use logs::{stats, tail};
use quickstart::print_quickstart_done;
pub use quickstart::quickstart;

const EXAMPLES: &str = "\
Examples:
  zerorpc stream quickstart wordcount           a project: Rust spout and split bolt, Python count bolt, Flux file
  cd wordcount && zerorpc stream run topologies/wordcount.yaml --stop-when-idle 3 --log-dir logs
  zerorpc stream run shell.yaml --duration 30 --stats-json stats.json   shell (multi-lang) components only
  zerorpc stream tail --log-dir logs count -f   follow the count bolt's log
  zerorpc stream stats stats.json --watch       the statistics table, refreshed as the run writes it

`run` runs shell components (FluxShellSpout/FluxShellBolt) itself. A Flux file that names
Rust classes is run by the Cargo project next to it or above it, which registers them:
`cargo run --release --quiet -- run FILE [options]` there. Exit codes: 0 ok, 1 the run
failed, 2 usage or an invalid topology.";

/// Storm topologies with no JVM: Flux files, Rust and multi-lang components
#[derive(Parser, Debug)]
#[command(name = "zerorpc stream", after_help = EXAMPLES)]
pub struct StreamArgs {
    #[command(subcommand)]
    pub command: StreamCommand,
}

#[derive(Subcommand, Debug)]
pub enum StreamCommand {
    /// Run a Flux topology with the local runner
    Run(RunArgs),
    /// Create a word count project (Rust spout and bolt, Python bolt, Flux file)
    Quickstart(QuickstartArgs),
    /// Print component logs written by `run --log-dir`
    Tail(TailArgs),
    /// Print a statistics file written by `run --stats-json` as a table
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The Flux file (YAML)
    pub file: PathBuf,
    /// Stop after this long (seconds, or 500ms, 10s, 5m, 1h)
    #[arg(long, value_name = "S", value_parser = app::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop once no tuple moved and no tree was pending for this long
    #[arg(long, value_name = "S", value_parser = app::parse_duration)]
    pub stop_when_idle: Option<Duration>,
    /// Write the statistics as JSON here (every 2 s and at the end)
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Write component logs to DIR/<component>.log
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// No live statistics table on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// When the file names Rust classes: build the project without
    /// --release (quicker to build, slower to run)
    #[arg(long)]
    pub debug: bool,
}

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// The project's directory (created; its last part names the package)
    pub name: PathBuf,
    /// The Python interpreter the count bolt runs with (one with
    /// streamparse installed); default `python3` from PATH
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Only this component's log (default: every component's, merged by time)
    pub component: Option<String>,
    /// The directory given to `run --log-dir`
    #[arg(long, value_name = "DIR", default_value = "logs")]
    pub log_dir: PathBuf,
    /// Keep printing lines as they are written
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print only the last N lines first
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The file given to `run --stats-json`
    pub file: PathBuf,
    /// Print it again whenever it changes
    #[arg(long, short = 'w')]
    pub watch: bool,
}

/// Runs a `zerorpc stream` command.
pub fn run(args: StreamArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let result = match args.command {
        StreamCommand::Run(a) => run_topology(a, rt),
        StreamCommand::Quickstart(a) => quickstart(&a).map(|dir| {
            print_quickstart_done(&dir);
            ExitCode::SUCCESS
        }),
        StreamCommand::Tail(a) => tail(&a, rt),
        StreamCommand::Stats(a) => stats(&a, rt),
    };
    match result {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("zerorpc stream: {msg}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run_topology(a: RunArgs, rt: &tokio::runtime::Runtime) -> Result<ExitCode, Failure> {
    let topology = zerorpc_stream::flux::load(&a.file).map_err(|e| (2, e.to_string()))?;
    let classes = app::rust_classes(&topology);
    if !classes.is_empty() {
        let project = cargo_project(&absolute(&a.file)).ok_or_else(|| {
            (
                2,
                format!(
                    "{} names Rust classes ({}), which only a binary that registers them can \
                     run, and no Cargo project is next to it or above it: run it with that \
                     binary (`cargo run -- run {}`)",
                    a.file.display(),
                    classes.join(", "),
                    a.file.display()
                ),
            )
        })?;
        return delegate(&a, &project, rt);
    }
    let cmd = RunCommand {
        file: a.file.clone(),
        options: RunOptions {
            duration: a.duration,
            stop_when_idle: a.stop_when_idle,
            stats_json: a.stats_json.clone(),
            log_dir: a.log_dir.clone(),
            terminal: !a.quiet,
            ctrl_c: true,
            ..RunOptions::default()
        },
    };
    let stats = rt
        .block_on(zerorpc_stream::runner::run(
            topology,
            &Registry::new(),
            cmd.options,
        ))
        .map_err(|e| (1, e.to_string()))?;
    print!("{}", render_table(&stats));
    Ok(ExitCode::SUCCESS)
}

/// The directory of the nearest `Cargo.toml` with a package at or above
/// the file's directory.
fn cargo_project(file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        let manifest = d.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|l| l.trim() == "[package]") {
                return Some(d.to_path_buf());
            }
        }
        dir = d.parent();
    }
    None
}

/// `cargo run --release --quiet -- run FILE ...` in the project.
fn delegate(
    a: &RunArgs,
    project: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode, Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    if !a.debug {
        args.push("--release".into());
    }
    args.extend([
        "--quiet".into(),
        "--".into(),
        "run".into(),
        absolute(&a.file).into(),
    ]);
    let secs = |d: Duration| format!("{}", d.as_secs_f64());
    if let Some(d) = a.duration {
        args.extend(["--duration".into(), secs(d).into()]);
    }
    if let Some(d) = a.stop_when_idle {
        args.extend(["--stop-when-idle".into(), secs(d).into()]);
    }
    if let Some(p) = &a.stats_json {
        args.extend(["--stats-json".into(), absolute(p).into()]);
    }
    if let Some(p) = &a.log_dir {
        args.extend(["--log-dir".into(), absolute(p).into()]);
    }
    if a.quiet {
        args.push("--quiet".into());
    }
    eprintln!(
        "zerorpc stream: the topology names Rust classes: running it with the project in {} \
         (cargo run{})",
        project.display(),
        if a.debug { "" } else { " --release" }
    );
    let status = rt.block_on(async {
        let mut child = tokio::process::Command::new(&cargo)
            .args(&args)
            .current_dir(project)
            .spawn()?;
        loop {
            tokio::select! {
                s = child.wait() => return s,
                // The child (same process group) gets Ctrl-C too and
                // drains; wait for it.
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    });
    match status {
        Ok(s) if s.success() => Ok(ExitCode::SUCCESS),
        Ok(s) => Ok(ExitCode::from(
            s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        )),
        Err(e) => Err((1, format!("cannot run {cargo:?}: {e}"))),
    }
}
