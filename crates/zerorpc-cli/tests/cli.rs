//! The `zerorpc` binary against our demo server (itself run by the binary)
//! and against a real zerorpc-python 0.6.3 server.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use zerorpc_testkit as common;

use std::io::{BufRead, BufReader};

use futures::StreamExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_zerorpc");

fn zerorpc(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zerorpc");
    // Never hang the suite: a wedged CLI is killed and fails the test.
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("zerorpc {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Our demo server, run by the binary itself; killed on drop.
struct DemoServer {
    child: Bg,
    ep: String,
}

impl DemoServer {
    fn start() -> DemoServer {
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let child = Bg::start(
            &["--server", "--heartbeat", "1", "--bind", &ep, "demo"],
            "serving demo on",
        );
        DemoServer { child, ep }
    }

    fn terminate(&mut self) {
        let pid = self.child.0.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

#[test]
fn lists_calls_streams_and_reports_errors() {
    let s = DemoServer::start();
    let ep = s.ep.as_str();

    let o = zerorpc(&[ep]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = "[demo]\n\
        echo   Return x unchanged.\n\
        add    Add a and b (numbers, strings or lists).\n\
        lolita Return 42.\n\
        range  Stream the integers 0 to n-1.\n\
        slow   Sleep for the given seconds, then return them.\n\
        fail   Raise DemoError with the given message.\n\
        bytes  Return n bytes (msgpack bin).\n\
        record Return a record {name, value}: a struct, which peers receive as a map.\n";
    assert_eq!(stdout(&o), expected);
    assert!(stderr(&o).contains(&format!("connecting to \"{ep}\"")));

    let o = zerorpc(&["-?", ep, "add"]);
    assert_eq!(
        stdout(&o),
        "[demo]\nadd(a, b)\n\nAdd a and b (numbers, strings or lists).\n\n"
    );
    let o = zerorpc(&["--inspect", ep]);
    assert!(stdout(&o).contains("\nslow(seconds)\n"), "{}", stdout(&o));

    let o = zerorpc(&[ep, "add", "2", "40"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "42\n"));
    let o = zerorpc(&[ep, "add", "-1.5", "1"]);
    assert_eq!(stdout(&o), "-0.5\n");
    let o = zerorpc(&[ep, "echo", "hello world"]);
    assert_eq!(stdout(&o), "'hello world'\n");
    let o = zerorpc(&[ep, "echo", "[1, 'a', None, True, b'\\x00']"]);
    assert_eq!(stdout(&o), "[1, 'a', None, True, b'\\x00']\n");
    let o = zerorpc(&[ep, "range", "3"]);
    assert_eq!(stdout(&o), "0\n1\n2\n");
    let o = zerorpc(&["-j", ep, "echo", "{\"a\": [1, null]}"]);
    assert_eq!(stdout(&o), "{'a': [1, None]}\n");
    let o = zerorpc(&["-j", ep, "echo", "not json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = zerorpc(&["-pj", ep, "echo", "[1, 'x', None]"]);
    assert_eq!(stdout(&o), "[1,\"x\",null]\n");
    let o = zerorpc(&["-pj", ep, "range", "2"]);
    assert_eq!(stdout(&o), "0\n1\n");

    let o = zerorpc(&[ep, "fail", "boom"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("DemoError: boom"), "{err}");
    assert!(err.contains("Remote traceback:\n  in demo.fail"), "{err}");
    let o = zerorpc(&[ep, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("NameError: nope"));

    // Named arguments, placed by introspection (add(a, b) with strings:
    // the order shows).
    let o = zerorpc(&["--named", ep, "add", "b='y'", "a='x'"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "'xy'\n"),
        "{}",
        stderr(&o)
    );
    let o = zerorpc(&["--named", "-j", ep, "add", "b=[2]", "a=[1]"]);
    assert_eq!(stdout(&o), "[1, 2]\n", "{}", stderr(&o));
    let o = zerorpc(&["--named", ep, "add", "c=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("add() got an unexpected keyword argument 'c'"),
        "{}",
        stderr(&o)
    );
    let o = zerorpc(&["--named", ep, "add", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("arguments are NAME=VALUE"),
        "{}",
        stderr(&o)
    );

    let o = zerorpc(&["--timeout", "0.5", ep, "slow", "5"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("timeout after 0.5s waiting for a reply to slow()"));
    let o = zerorpc(&[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn server_shuts_down_cleanly_on_sigterm() {
    let mut s = DemoServer::start();
    let ep = s.ep.clone();
    let ep2 = ep.clone();
    // Same heartbeat as the server: each side judges loss by its own interval.
    let short = std::thread::spawn(move || zerorpc(&["--heartbeat", "1", &ep, "slow", "1"]));
    let long = std::thread::spawn(move || zerorpc(&["--heartbeat", "1", &ep2, "slow", "60"]));
    std::thread::sleep(Duration::from_millis(400));
    s.terminate();
    // The short call finishes within the grace period...
    let o = short.join().unwrap();
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "1.0\n"),
        "{}",
        stderr(&o)
    );
    // ...the long one gets an error rather than a hang.
    let o = long.join().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("ServerShutdown"), "{}", stderr(&o));
    let status = s.child.0.wait().unwrap();
    assert!(status.success(), "server exit {status:?}");
}

#[test]
fn bench_reports_rates_latency_and_errors() {
    let s = DemoServer::start();
    let o = zerorpc(&[
        "bench",
        "--connect",
        &s.ep,
        "--method",
        "echo",
        "--calls",
        "2000",
        "-c",
        "8",
        "--json",
        "hi",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["calls"], 2000);
    assert_eq!(j["errors"]["remote"], 0);
    assert!(j["calls_per_sec"].as_f64().unwrap() > 0.0);
    assert!(j["latency_us"]["p99"].as_u64().unwrap() >= j["latency_us"]["p50"].as_u64().unwrap());
    let o = zerorpc(&[
        "bench",
        "--connect",
        &s.ep,
        "--method",
        "range",
        "--stream",
        "--calls",
        "20",
        "--json",
        "500",
    ]);
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["items"], 20 * 500);
    // errors are counted, and make the exit code non-zero
    let o = zerorpc(&[
        "bench",
        "--connect",
        &s.ep,
        "--method",
        "fail",
        "--calls",
        "10",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("remote 10"), "{}", stdout(&o));
    let o = zerorpc(&[
        "bench",
        "--connect",
        &s.ep,
        "--method",
        "echo",
        "--duration",
        "0.5",
        "-c",
        "4",
        "x",
    ]);
    assert!(stdout(&o).contains("calls/s"), "{}", stdout(&o));
}

#[test]
fn help_and_completions() {
    let o = zerorpc(&["--help"]);
    assert!(stdout(&o).contains("Examples:"));
    let o = zerorpc(&["bench", "--help"]);
    assert!(stdout(&o).contains("--concurrency"));
    assert!(!stdout(&o).contains("--collector"), "{}", stdout(&o));
    let o = zerorpc(&["completions", "bash"]);
    assert!(o.status.success() && stdout(&o).contains("zerorpc"));
}

const PY_SERVER: &str = common::PY_DEMO_SERVER;

#[test]
fn against_a_python_server() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut py = Proc::python(PY_SERVER, &[&ep, "1.0"]);
    py.wait_line("READY");
    // zerorpc-python 0.6.3 on Python 3.11 fails _zerorpc_inspect: the
    // listing falls back to _zerorpc_list/_zerorpc_help.
    let o = zerorpc(&[&ep]);
    assert_eq!(
        stdout(&o),
        "[PyDemo]\nadd   Add a and b.\necho  Return x.\nfail  <undocumented>\nrange Stream 0..n-1.\nslow  <undocumented>\ntypes <undocumented>\n"
    );
    let o = zerorpc(&[&ep, "add", "2", "40"]);
    assert_eq!(stdout(&o), "42\n");
    let o = zerorpc(&[&ep, "add", "'a'", "'b'"]);
    assert_eq!(stdout(&o), "'ab'\n");
    let o = zerorpc(&[&ep, "range", "3"]);
    assert_eq!(stdout(&o), "0\n1\n2\n");
    let o = zerorpc(&[&ep, "fail", "boom"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ValueError: boom"));
    assert!(stderr(&o).contains("Traceback"));
    let o = zerorpc(&["--timeout", "0.5", &ep, "slow", "3"]);
    assert_eq!(o.status.code(), Some(3));
    // the server dies mid-call: lost remote, its own exit code
    let ep2 = ep.clone();
    let call = std::thread::spawn(move || zerorpc(&["--heartbeat", "1", &ep2, "slow", "60"]));
    std::thread::sleep(Duration::from_millis(700));
    py.kill();
    let o = call.join().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("lost remote"), "{}", stderr(&o));
}

/// A child process killed on drop, its stderr drained in the background.
struct Bg(Child);

impl Bg {
    fn start(args: &[&str], ready: &str) -> Bg {
        Bg::start_line(args, ready).0
    }

    /// Starts it and returns its first stderr line too.
    fn start_line(args: &[&str], ready: &str) -> (Bg, String) {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zerorpc");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("output");
        assert!(line.contains(ready), "{args:?}: {line}");
        // keep draining stderr so the child never blocks on it
        std::thread::spawn(move || {
            let mut sink = String::new();
            while err.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        (Bg(child), line)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A zerohub-style config on two free ports (heartbeat 1 s), in a
/// directory of its own named after `name`: its path and the ports.
fn hub_config(name: &str) -> (std::path::PathBuf, u16, u16) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pin, pout) = (free_port(), free_port());
    let cfg = dir.join("hub.yml");
    std::fs::write(
        &cfg,
        format!("in: \"tcp://127.0.0.1:{pin}\"\nout: \"tcp://127.0.0.1:{pout}\"\ntype: queue\nheartbeat: 1\n"),
    )
    .unwrap();
    (cfg, pin, pout)
}

#[test]
fn hub_from_a_zerohub_config_with_cli_workers() {
    let (cfg, pin, pout) = hub_config("zerorpc-hub");
    let _hub = Bg::start(&["hub", cfg.to_str().unwrap()], "hub: clients connect to");
    let out = format!("tcp://127.0.0.1:{pout}");
    let _w1 = Bg::start(
        &["--server", "--heartbeat", "1", "--connect", &out, "demo"],
        "serving demo through",
    );
    let _w2 = Bg::start(
        &["--server", "--heartbeat", "1", "--connect", &out, "demo"],
        "serving demo through",
    );
    let input = format!("tcp://127.0.0.1:{pin}");
    let o = zerorpc(&["--heartbeat", "1", &input, "add", "40", "2"]);
    assert_eq!(stdout(&o).trim(), "42", "{}", stderr(&o));
    // Listing goes through to a worker.
    let o = zerorpc(&["--heartbeat", "1", &input]);
    assert!(stdout(&o).contains("lolita"), "{}", stdout(&o));
    // Both workers show up in the hub's statistics, once each has joined.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = zerorpc(&["-pj", "--heartbeat", "1", &input, "_zerorpc_hub_stats"]);
        let stats: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("stats json");
        let alive = stats["workers"]
            .as_array()
            .map(|w| w.iter().filter(|w| w["alive"] == true).count())
            .unwrap_or(0);
        if alive == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers never both joined: {stats}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hub_refuses_a_bad_config_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("zerorpc-hub-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.yml");
    std::fs::write(
        &cfg,
        "in: tcp://127.0.0.1:1\nout: tcp://127.0.0.1:2\ntype: fanout\n",
    )
    .unwrap();
    let o = zerorpc(&["hub", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("only hub type is \"queue\""),
        "{}",
        stderr(&o)
    );
    let o = zerorpc(&["hub", "/nonexistent/hub.yml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

const REDIS: &str = "redis://127.0.0.1:6379/";

#[test]
fn trace_collector_into_redis_and_trace_show() {
    use zerorpc::record::Recorder;
    use zerorpc::{ClientOptions, Server, ServerOptions, TraceContext, Value};
    let port = free_port();
    let prefix = format!("zerorpc-cli-test-{}", std::process::id());
    let ep = format!("tcp://127.0.0.1:{port}");
    let _collector = Bg::start(
        &[
            "trace-collector",
            "--bind",
            &ep,
            "--query",
            &format!("tcp://127.0.0.1:{}", free_port()),
            "--redis",
            REDIS,
            "--prefix",
            &prefix,
        ],
        "collecting records on",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let rec = Recorder::new(
            zerorpc::collector::PushSink::connect(&ep).await.unwrap(),
            1000,
        );
        let server = std::sync::Arc::new(Server::with_options(
            zerorpc::demo::Demo,
            ServerOptions {
                recorder: Some(rec.clone()),
                ..Default::default()
            },
        ));
        let sep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let s = server.clone();
        tokio::spawn(async move { s.run().await });
        let c = zerorpc::Client::connect_with(
            &[&sep],
            ClientOptions {
                recorder: Some(rec.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let root = TraceContext::new_root();
        let id = root.trace_id_hex();
        root.scope(c.call("echo", vec![Value::from("hi")]))
            .await
            .unwrap();
        id
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = zerorpc(&["trace", "show", &id, "--redis", REDIS, "--prefix", &prefix]);
        if o.status.success() {
            let out = stdout(&o);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out}");
            assert!(
                lines[0].starts_with("call tcp://127.0.0.1:")
                    && lines[0].contains(" echo ")
                    && lines[0].ends_with(" OK"),
                "{out}"
            );
            assert!(
                lines[1].starts_with("  serve demo echo ") && lines[1].ends_with(" OK"),
                "{out}"
            );
            break;
        }
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            Instant::now() < deadline,
            "the trace never reached redis: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = zerorpc(&[
        "trace",
        "show",
        "00000000000000000000000000000001",
        "--redis",
        REDIS,
        "--prefix",
        &prefix,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no trace"), "{}", stderr(&o));
    rt.block_on(async {
        let store = zerorpc::collector::RedisStore::connect(
            "redis://127.0.0.1:6379/",
            &prefix,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        store.clear_counters().await.unwrap();
    });
}

/// An embedded collector (with `collector_args` added), a demo server
/// recording every call into it, and `trace tail` following `count`
/// records from before the first call: the addresses, the processes, and
/// the tail's lines as they come.
struct Recording {
    rec: String,
    q: String,
    srv: String,
    _collector: Bg,
    _server: Bg,
    tail: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Recording {
    fn start(collector_args: &[&str], count: usize) -> Recording {
        let rec = format!("tcp://127.0.0.1:{}", free_port());
        let q = format!("tcp://127.0.0.1:{}", free_port());
        let srv = format!("tcp://127.0.0.1:{}", free_port());
        let mut args = vec!["trace-collector", "--bind", &rec, "--query", &q];
        args.extend_from_slice(collector_args);
        let collector = Bg::start(&args, "collecting records on");
        let server = Bg::start(
            &["--server", "--records", &rec, "--bind", &srv, "demo"],
            "serving demo on",
        );
        let mut tail = Command::new(BIN)
            .args([
                "trace",
                "tail",
                "--query",
                &q,
                "--count",
                &count.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tail");
        let mut err = BufReader::new(tail.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("following records"), "{line}");
        let out = tail.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Recording {
            rec,
            q,
            srv,
            _collector: collector,
            _server: server,
            tail,
            lines,
        }
    }

    /// The tail's next line.
    fn next(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = self.tail.kill();
                panic!("trace tail saw no further record")
            }
        }
    }
}

#[test]
fn an_embedded_collector_keeps_at_most_max_records() {
    let mut r = Recording::start(&["--max-records", "2"], 4);
    let (rec, q, srv) = (r.rec.clone(), r.q.clone(), r.srv.clone());
    let id = |l: String| l.split_whitespace().nth(1).unwrap().to_owned();
    // Two recorded calls, two records each, the second made once the
    // first's are stored: the second's push out the first's.
    let o = zerorpc(&["--records", &rec, &srv, "echo", "first"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = [id(r.next()), id(r.next())];
    assert_eq!(first[0], first[1], "a call's two sides share its trace");
    let o = zerorpc(&["--records", &rec, &srv, "echo", "second"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let second = [id(r.next()), id(r.next())];
    let _ = r.tail.wait();
    let (first, second) = (&first[0], &second[0]);
    assert_ne!(first, second);
    let o = zerorpc(&["trace", "show", second, "--query", &q]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    let o = zerorpc(&["trace", "show", first, "--query", &q]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("no trace"), "{}", stderr(&o));
    // (a bound on memory has no meaning with Redis)
    let o = zerorpc(&[
        "trace-collector",
        "--redis",
        "redis://x",
        "--max-records",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn the_cli_records_calls_and_trace_tail_top_show_read_them() {
    // An embedded collector, a demo server that records every call, and
    // a follower, before the calls.
    let mut r = Recording::start(&[], 4);
    let (rec, q, srv) = (r.rec.clone(), r.q.clone(), r.srv.clone());
    // Two recorded CLI calls: one OK, one failing.
    // (the old spelling still works, with a note)
    let o = zerorpc(&["--collector", &rec, &srv, "echo", "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--collector is deprecated: use --records"),
        "{}",
        stderr(&o)
    );
    let o = zerorpc(&["--records", &rec, &srv, "fail", "boom"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines: Vec<String> = (0..4).map(|_| r.next()).collect();
    let _ = r.tail.wait();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let echo: Vec<&String> = lines.iter().filter(|l| l.contains(" echo ")).collect();
    let fail: Vec<&String> = lines.iter().filter(|l| l.contains(" fail ")).collect();
    assert_eq!((echo.len(), fail.len()), (2, 2), "{lines:#?}");
    assert!(echo.iter().all(|l| l.ends_with(" OK")), "{lines:#?}");
    assert!(
        fail.iter()
            .all(|l| l.contains(" ERR ") && l.contains("boom")),
        "{lines:#?}"
    );
    // Each call's two sides share its trace id (the second column).
    let id = |l: &str| l.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(id(echo[0]), id(echo[1]));
    assert_ne!(id(echo[0]), id(fail[0]));
    // The tree, from the collector.
    let trace = id(echo[0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let tree = loop {
        let o = zerorpc(&["trace", "show", &trace, "--query", &q]);
        if o.status.success() && stdout(&o).lines().count() == 2 {
            break stdout(&o);
        }
        assert!(
            Instant::now() < deadline,
            "no tree: {}{}",
            stdout(&o),
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(tree.starts_with("call tcp://127.0.0.1:"), "{tree}");
    assert!(
        tree.lines()
            .nth(1)
            .unwrap()
            .starts_with("  serve demo echo "),
        "{tree}"
    );
    // The table: one echo and one failed fail per side.
    let o = zerorpc(&["trace", "top", "--collector", &q, "--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--collector is deprecated here: use --query"),
        "{}",
        stderr(&o)
    );
    let table = stdout(&o);
    let row = |side: &str, method: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(side) && l.split_whitespace().nth(2) == Some(method))
            .unwrap_or_else(|| panic!("no {side} {method} row: {table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("server", "echo")[4], "0.0", "{table}");
    assert_eq!(row("server", "fail")[4], "100.0", "{table}");
    assert_eq!(row("client", "fail")[4], "100.0", "{table}");
    // Nothing is listening: a clear error, not a hang.
    let o = zerorpc(&[
        "trace",
        "show",
        &trace,
        "--query",
        &format!("tcp://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trace-collector` running"),
        "{}",
        stderr(&o)
    );
}

/// One HTTP/1.1 POST (the connection closed after it): the status line
/// and the body.
fn http_post(addr: &str, path: &str, extra_headers: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the gateway");
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

#[test]
fn gateway_in_front_of_the_demo_server() {
    let s = DemoServer::start();
    let (_gw, line) = Bg::start_line(
        &[
            "gateway",
            "--connect",
            &s.ep,
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t0k",
            "--header-timeout",
            "0.5",
        ],
        "gateway for demo on http://",
    );
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    let auth = "Authorization: Bearer t0k\r\n";
    let (status, body) = http_post(&addr, "/add", auth, r#"{"a": 2, "b": 40}"#);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "42"));
    let (status, body) = http_post(&addr, "/range", auth, "[3]");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "[0,1,2]")
    );
    let (status, _) = http_post(&addr, "/add", "", "[2, 40]");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    // --header-timeout: a client that stalls mid-head is disconnected
    use std::io::{Read, Write};
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    slow.write_all(b"POST /add HTTP/1.1\r\nHo").unwrap();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    assert!(
        closed.is_ok()
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "not closed: {closed:?}"
    );
    let o = zerorpc(&["gateway", "--help"]);
    assert!(stdout(&o).contains("--listen"), "{}", stdout(&o));
    assert!(stdout(&o).contains("--idle-timeout"), "{}", stdout(&o));
    // no service there: it says so, with the timeout's exit code
    let nobody = format!("tcp://127.0.0.1:{}", free_port());
    let o = zerorpc(&["gateway", "--connect", &nobody, "--timeout", "0.5"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot describe the service"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keygen_curve_flags_and_authorization_rules() {
    let dir = std::env::temp_dir().join(format!("zerorpc-cli-curve-{}", std::process::id()));
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let d = dir.to_string_lossy().into_owned();
    for (name, at) in [("server", &dir), ("alice", &clients), ("mallory", &dir)] {
        let o = zerorpc(&["keygen", name, "--dir", &at.to_string_lossy()]);
        assert!(o.status.success(), "{}", stderr(&o));
        // stdout: the public key, in Z85
        assert_eq!(stdout(&o).trim().len(), 40, "{}", stdout(&o));
    }
    // alice's secret file stays with alice; the allow-list holds her public one
    std::fs::rename(
        clients.join("alice.key_secret"),
        dir.join("alice.key_secret"),
    )
    .unwrap();
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "rules:\n  - user: alice\n    allow: [\"echo\", \"_zerorpc_*\"]\n",
    )
    .unwrap();
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let _server = Bg::start(
        &[
            "--server",
            "--curve-keys",
            &format!("{d}/server.key_secret"),
            "--curve-allow",
            &clients.to_string_lossy(),
            "--authorize",
            &rules.to_string_lossy(),
            "--bind",
            &ep,
            "demo",
        ],
        "serving demo on",
    );
    let call = |who: &str, args: &[&str]| {
        let keys = format!("{d}/{who}.key_secret");
        let server_key = format!("{d}/server.key");
        let mut all = vec![
            "--curve-keys",
            &keys,
            "--curve-server-key",
            &server_key,
            &ep,
        ];
        // (options first: --timeout given by the caller, or 3 s)
        let (opts, rest) = match args {
            ["--timeout", t, rest @ ..] => (vec!["--timeout", *t], rest),
            rest => (vec!["--timeout", "3"], rest),
        };
        let mut all: Vec<&str> = opts.into_iter().chain(all.drain(..)).collect();
        all.extend_from_slice(rest);
        zerorpc(&all)
    };
    let o = call("alice", &["echo", "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "'hi'");
    // allowed to connect, not to call add
    let o = call("alice", &["add", "1", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("PermissionDenied"), "{}", stderr(&o));
    // a key the server does not know: refused at once (exit 6), not after
    // the timeout (exit 3)
    let o = call("mallory", &["--timeout", "60", "echo", "hi"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // flags in the wrong mode are refused
    let o = zerorpc(&["--curve-allow", &d, &ep, "echo", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn registry_register_and_call_by_name() {
    let reg = format!("tcp://127.0.0.1:{}", free_port());
    let _registry = Bg::start(&["registry", "--bind", &reg], "registry on");
    // a wildcard bind on a free port registers a connectable address
    let (_server, line) = Bg::start_line(
        &[
            "--server",
            "--heartbeat",
            "1",
            "--register",
            &reg,
            "--name",
            "calc",
            "--register-ttl",
            "2",
            "--bind",
            "tcp://0.0.0.0:0",
            "demo",
        ],
        "serving demo on",
    );
    let port = line.trim().rsplit(':').next().unwrap().to_owned();
    let want = format!("['tcp://127.0.0.1:{port}']\n");
    // registration follows the bind: poll the registry until it lists it
    let start = Instant::now();
    loop {
        let o = zerorpc(&[&reg, "resolve", "calc"]);
        if stdout(&o) == want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never registered: {} {}",
            stdout(&o),
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = zerorpc(&["--registry", &reg, "zerorpc://calc", "add", "2", "40"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "42\n"),
        "{}",
        stderr(&o)
    );
    let o = zerorpc(&[
        "--registry",
        &reg,
        "--connect",
        "zerorpc://calc",
        "range",
        "2",
    ]);
    assert_eq!(stdout(&o), "0\n1\n", "{}", stderr(&o));
    // a name nobody registered: a clear error, exit 5
    let o = zerorpc(&["--registry", &reg, "zerorpc://nobody", "add", "1", "2"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no source knows the service \"nobody\""),
        "{}",
        stderr(&o)
    );
    // no resolver at all
    let o = zerorpc(&["zerorpc://calc", "add", "1", "2"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("no resolver"), "{}", stderr(&o));
    // a directory file works the same way
    let dir = std::env::temp_dir().join(format!("zerorpc-cli-naming-{}.yml", std::process::id()));
    std::fs::write(&dir, format!("calc: tcp://127.0.0.1:{port}\n")).unwrap();
    let o = zerorpc(&[
        "--directory",
        dir.to_str().unwrap(),
        "zerorpc://calc",
        "echo",
        "hi",
    ]);
    assert_eq!(stdout(&o), "'hi'\n", "{}", stderr(&o));
}

#[test]
fn hub_and_workers_found_by_name() {
    let dir = std::env::temp_dir().join(format!("zerorpc-hub-naming-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pin, pout) = (free_port(), free_port());
    let cfg = dir.join("hub.yml");
    std::fs::write(
        &cfg,
        format!("in: \"tcp://127.0.0.1:{pin}\"\nout: \"tcp://127.0.0.1:{pout}\"\ntype: queue\nheartbeat: 1\n"),
    )
    .unwrap();
    let names = dir.join("services.yml");
    std::fs::write(
        &names,
        format!("calc: tcp://127.0.0.1:{pin}\ncalc-workers: tcp://127.0.0.1:{pout}\n"),
    )
    .unwrap();
    let names = names.to_str().unwrap();
    let _hub = Bg::start(&["hub", cfg.to_str().unwrap()], "hub: clients connect to");
    // a worker connects by name
    let _w = Bg::start(
        &[
            "--server",
            "--heartbeat",
            "1",
            "--directory",
            names,
            "--connect",
            "zerorpc://calc-workers",
            "demo",
        ],
        &format!("serving demo through tcp://127.0.0.1:{pout}"),
    );
    let o = zerorpc(&[
        "--heartbeat",
        "1",
        "--directory",
        names,
        "zerorpc://calc",
        "add",
        "40",
        "2",
    ]);
    assert_eq!(stdout(&o).trim(), "42", "{}", stderr(&o));
    // an unknown name is a clear failure for a worker too
    let o = zerorpc(&[
        "--server",
        "--directory",
        names,
        "--connect",
        "zerorpc://nope",
        "demo",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot resolve zerorpc://nope"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_prints_help_instead_of_calling_an_address_named_help() {
    let o = zerorpc(&["help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Usage: zerorpc"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Examples:"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("connecting to"), "{}", stderr(&o));
    // each subcommand's help, as `SUBCOMMAND --help` gives it
    for (sub, shows) in [
        (&["bench"][..], "--concurrency"),
        (&["trace"], "show"),
        (&["trace", "show"], "--query"),
        (&["trace-collector"], "--records"),
        (&["keygen"], "--dir"),
        (&["demo"], "Usage: zerorpc demo"),
        (&["completions"], "bash"),
    ] {
        let args: Vec<&str> = std::iter::once("help").chain(sub.iter().copied()).collect();
        let o = zerorpc(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains(shows), "{args:?}: {}", stdout(&o));
    }
    let o = zerorpc(&["help", "nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no subcommand"), "{}", stderr(&o));
}

#[test]
fn curve_refusals_exit_6_at_once_with_a_clear_message_and_no_colours() {
    let dir = std::env::temp_dir().join(format!("zerorpc-cli-auth-{}", std::process::id()));
    let allow = dir.join("allow");
    std::fs::create_dir_all(&allow).unwrap();
    let d = dir.to_string_lossy().into_owned();
    for name in ["server", "alice", "other"] {
        let o = zerorpc(&["keygen", name, "--dir", &d]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // (an allow-list without alice)
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let _server = Bg::start(
        &[
            "--server",
            "--curve-keys",
            &format!("{d}/server.key_secret"),
            "--curve-allow",
            &allow.to_string_lossy(),
            "--bind",
            &ep,
            "demo",
        ],
        "serving demo on",
    );
    let alice = format!("{d}/alice.key_secret");
    let server_key = format!("{d}/server.key");
    let wrong_key = format!("{d}/other.key");
    // Each of these would once have retried for the whole 60 s and exited
    // 3 (the helper's 60 s wedge guard catches that).
    for (args, says, hint) in [
        (
            vec!["--curve-keys", &alice, "--curve-server-key", &server_key],
            "is not allowed",
            "--curve-allow",
        ),
        (
            vec!["--curve-keys", &alice, "--curve-server-key", &wrong_key],
            "wrong server key",
            "--curve-server-key",
        ),
        (vec![], "mechanism mismatch", "--curve-server-key"),
    ] {
        let mut all = vec!["--timeout", "60"];
        all.extend(args.iter().copied());
        all.extend([ep.as_str(), "echo", "hi"]);
        let o = zerorpc(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(6), "{all:?}: {err}");
        assert!(
            err.contains(&format!("zerorpc: authentication failed with {ep}: ")),
            "{err}"
        );
        assert!(err.contains(says), "{all:?}: {err}");
        assert!(err.contains(hint), "{all:?}: {err}");
        assert!(!err.contains("timeout"), "{err}");
        // stderr is a pipe here: no ANSI colours in the log lines
        assert!(!err.contains('\x1b'), "{err:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_commands_and_records_flags_say_when_pointed_at_the_wrong_port() {
    let rec = format!("tcp://127.0.0.1:{}", free_port());
    let q = format!("tcp://127.0.0.1:{}", free_port());
    let _collector = Bg::start(
        &["trace-collector", "--records", &rec, "--query", &q],
        "collecting records on",
    );
    // trace show at the records port (a PULL socket): said at once, with
    // the flag to use, not a 5 s timeout
    let id = "4bf92f3577b34da6a3ce929d0e0e4736";
    for cmd in [
        vec!["trace", "show", id, "--query", &rec],
        vec!["trace", "tail", "--query", &rec],
        vec!["trace", "top", "--once", "--query", &rec],
    ] {
        let o = zerorpc(&cmd);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(5), "{cmd:?}: {err}");
        assert!(
            err.contains("not a trace collector's query port"),
            "{cmd:?}: {err}"
        );
        assert!(err.contains("records port"), "{cmd:?}: {err}");
        assert!(err.contains("--query"), "{cmd:?}: {err}");
        assert!(!err.contains("did not answer"), "{cmd:?}: {err}");
    }
    // trace show at a plain zerorpc server
    let s = DemoServer::start();
    let o = zerorpc(&["trace", "show", id, "--query", &s.ep]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a trace collector"),
        "{}",
        stderr(&o)
    );
    // records sent to the query port: the call works, and we are told
    let o = zerorpc(&["--records", &q, &s.ep, "echo", "hi"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "--records {q} is not a trace collector's records port"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_undrained_stderr_pipe_never_stops_the_server() {
    // A server logging at debug level into a pipe that nobody reads: a
    // 64 KiB pipe fills after a few hundred calls; the server must keep
    // answering (its logs are dropped instead).
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["--server", "--bind", &ep, "demo"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zerorpc");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("serving demo on") {
        line.clear();
        assert!(err.read_line(&mut line).expect("output") > 0, "no start");
    }
    // (from now on nobody reads `err`; it stays open)
    let server = Bg(child);
    let rt = tokio::runtime::Runtime::new().unwrap();
    const CALLS: usize = 20_000;
    let answered = rt.block_on(async {
        let opts = zerorpc::ClientOptions::default().timeout(Duration::from_secs(30));
        let client = zerorpc::Client::connect_with(&[&ep], opts).await.unwrap();
        let guard = Duration::from_secs(120);
        tokio::time::timeout(guard, async {
            let mut answered = 0;
            // 16 at a time; each call logs about 100 bytes at debug level
            let mut calls = futures::stream::iter(0..CALLS)
                .map(|i| {
                    let c = client.clone();
                    async move { c.call("add", vec![i.into(), 1.into()]).await }
                })
                .buffer_unordered(16);
            while let Some(r) = futures::StreamExt::next(&mut calls).await {
                r.unwrap_or_else(|e| panic!("call {answered} failed: {e}"));
                answered += 1;
            }
            answered
        })
        .await
        .unwrap_or_else(|_| panic!("wedged: the server stopped answering"))
    });
    assert_eq!(answered, CALLS);
    // The pipe did fill: reading it now finds a full pipe's worth and
    // more queued behind it.
    let drained = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0usize;
        while n < 256 * 1024 {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        n
    });
    std::thread::sleep(Duration::from_secs(2));
    drop(server);
    let drained = drained.join().unwrap();
    eprintln!("drained {drained} bytes of logs after {CALLS} calls");
    assert!(drained >= 64 * 1024, "only {drained} bytes of logs");
}

#[test]
fn an_undrained_stderr_pipe_never_stops_the_hub() {
    // The hub prints a statistics line every --stats-interval; with a
    // stderr nobody reads, a 64 KiB pipe fills within seconds at 5 ms (100
    // bytes a line). The hub must keep routing and still stop on SIGTERM.
    let (cfg, pin, pout) = hub_config("zerorpc-hub-pipe");
    let mut child = Command::new(BIN)
        .args(["hub", cfg.to_str().unwrap(), "--stats-interval", "0.005"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the hub");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("output");
    assert!(line.contains("hub: clients connect to"), "{line}");
    // (from now on nobody reads `err`)
    let mut hub = Bg(child);
    let _w = Bg::start(
        &[
            "--server",
            "--heartbeat",
            "1",
            "--connect",
            &format!("tcp://127.0.0.1:{pout}"),
            "demo",
        ],
        "serving demo through",
    );
    // 10 s of statistics lines (2,000): the pipe is long full
    std::thread::sleep(Duration::from_secs(10));
    let input = format!("tcp://127.0.0.1:{pin}");
    for i in 0..20 {
        let o = zerorpc(&["--heartbeat", "1", &input, "add", &i.to_string(), "1"]);
        assert_eq!(stdout(&o).trim(), (i + 1).to_string(), "{}", stderr(&o));
    }
    let pid = hub.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    loop {
        if let Some(status) = hub.0.try_wait().unwrap() {
            assert!(status.success(), "hub exit {status:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the hub ignored SIGTERM (wedged on its stderr?)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(err);
    if let Some(dir) = cfg.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `inventory`, version `v`: 1 as recorded; 2 renames `item`; 3 gives
/// `add` a required argument more; 4 drops `size` from `item`'s result.
fn inventory(v: u8) -> zerorpc::DynamicService {
    use zerorpc::{CallError, DynamicService, Value};
    let item_name = if v == 2 { "get_item" } else { "item" };
    let add_args: &[&str] = if v == 3 {
        &["a", "b", "c"]
    } else {
        &["a", "b"]
    };
    DynamicService::new("inventory")
        .method(item_name, "an item", &["name"], move |a| async move {
            let mut fields = vec![
                (
                    Value::from("name"),
                    a.into_iter().next().unwrap_or(Value::Nil),
                ),
                (Value::from("tags"), Value::Array(vec!["new".into()])),
            ];
            if v != 4 {
                fields.push((Value::from("size"), 3.into()));
            }
            Ok(Value::Map(fields))
        })
        .method("add", "a + b", add_args, move |a| async move {
            if a.len() != add_args_len(v) {
                return Err(CallError::new("TypeError", "wrong number of arguments"));
            }
            let n: i64 = a.iter().filter_map(Value::as_i64).sum();
            Ok(Value::from(n))
        })
        .method("check", "x, unless negative", &["x"], |a| async move {
            match a.first().and_then(Value::as_i64) {
                Some(x) if x >= 0 => Ok(Value::from(x)),
                _ => Err(CallError::new("ValueError", "negative")),
            }
        })
}

fn add_args_len(v: u8) -> usize {
    if v == 3 {
        3
    } else {
        2
    }
}

/// Runs `zerorpc contract record` into `out` while the CLI makes `calls`
/// to `ep` with their payloads recorded, and waits for it to write.
fn record_contract(out: &str, ep: &str, calls: &[&[&str]]) {
    let records = format!("tcp://127.0.0.1:{}", free_port());
    let n = calls.len().to_string();
    let mut recorder = Bg::start(
        &[
            "contract",
            "record",
            "--records",
            &records,
            "--out",
            out,
            "--calls",
            &n,
        ],
        "recording calls",
    );
    for call in calls {
        let mut args = vec!["--records", records.as_str(), "--record-payloads", ep];
        args.extend_from_slice(call);
        let o = zerorpc(&args);
        // (`check -1` fails on purpose: an error is part of a contract)
        assert!(
            o.status.code() == Some(0) || call[0] == "check",
            "{call:?}: {}",
            stderr(&o)
        );
    }
    let t0 = Instant::now();
    while recorder.0.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the recorder did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(recorder.0.wait().unwrap().success());
}

#[test]
fn contracts_recorded_from_real_calls_catch_breaking_changes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let serve = |v: u8| {
        rt.block_on(async move {
            let s = std::sync::Arc::new(zerorpc::Server::new(inventory(v)));
            let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
            tokio::spawn(async move { s.run().await });
            ep
        })
    };
    let v1 = serve(1);
    let dir = common::scratch_dir("contract");
    let file = dir.join("inventory.contract.yml");
    let file_s = file.to_str().unwrap();
    // The client's real calls, their payloads recorded.
    record_contract(
        file_s,
        &v1,
        &[
            &["item", "'disk'"],
            &["add", "2", "40"],
            &["add", "2", "40"],
            &["check", "-1"],
            &["check", "5"],
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("service: inventory"), "{text}");
    assert!(text.contains("error: ValueError"), "{text}");
    assert!(text.contains("size: int"), "{text}");
    // (the same call twice is one example)
    assert_eq!(text.matches("- '2'").count(), 1, "{text}");

    let verify = |ep: &str| zerorpc(&["contract", "verify", ep, file_s]);
    let o = verify(&v1);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("all 3 methods keep their contract (4 calls replayed)"),
        "{}",
        stdout(&o)
    );
    for (v, says) in [
        (2, "the service has no method `item` any more"),
        (
            3,
            "it now requires 3 arguments (a, b, c); the recorded calls pass 2",
        ),
        (4, "item('disk'): result.size is gone"),
    ] {
        let o = verify(&serve(v));
        assert_eq!(o.status.code(), Some(1), "v{v}: {}", stdout(&o));
        assert!(stdout(&o).contains(says), "v{v}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("1 of 3 methods would break this client"),
            "{}",
            stdout(&o)
        );
    }
    // A contract against a zerorpc-python server: the same file format,
    // recorded from calls to it (its introspection fails on Python 3.11:
    // no argument names, the replay still checks).
    let py_ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut py = Proc::python(common::PY_DEMO_SERVER, &[&py_ep, "5.0"]);
    py.wait_line("READY");
    let py_file = dir.join("pydemo.contract.yml");
    let py_file_s = py_file.to_str().unwrap();
    record_contract(py_file_s, &py_ep, &[&["add", "2", "40"], &["range", "3"]]);
    let text = std::fs::read_to_string(&py_file).unwrap();
    assert!(
        text.contains("result: !list int"),
        "a stream's items: {text}"
    );
    let o = zerorpc(&["contract", "verify", &py_ep, py_file_s]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
