//! Interop: real zerorpc-python 0.6.3 clients (and raw pyzmq peers playing
//! misbehaving or Node-like clients) against our server.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Server, ServerOptions};

async fn serve(hb: Duration) -> (Arc<Server>, String) {
    let opts = ServerOptions {
        channel: ChannelConfig {
            heartbeat: hb,
            first_reply_timeout: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let server = Arc::new(Server::with_options(demo_service(), opts));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

/// Runs a Python script to completion off the async runtime; asserts it
/// printed `ALL DONE` and exited 0.
async fn run_script(code: &'static str, ep: String) -> String {
    run_script_with(python(), code, ep).await
}

/// Runs a Python script under every Python we test with (the venv's, and
/// pyenv's 3.9 where there is one), one after the other.
async fn run_script_everywhere(code: &'static str, ep: &str) -> Vec<String> {
    let mut outs = Vec::new();
    for (label, py) in pythons() {
        eprintln!("running under {label} ({})", py.display());
        outs.push(run_script_with(py, code, ep.to_owned()).await);
    }
    outs
}

async fn run_script_with(py: &'static std::path::Path, code: &'static str, ep: String) -> String {
    run_python_script_with(py, "python client script", code, vec![ep]).await
}

const CLIENT: &str = r#"
import sys, gevent, zerorpc
from gevent.pool import Pool
ep = sys.argv[1]
c = zerorpc.Client(timeout=10, heartbeat=1)
c.connect(ep)
def check(name, got, want):
    assert got == want, "%s: got %r, want %r" % (name, got, want)
    assert type(got) == type(want), "%s: got type %r, want %r" % (name, type(got), type(want))
    print("OK", name, flush=True)
for v in [u"h\u00e9llo", b"\x00\xff", 12345678901, -3, 0.25, None, [1, u"x", None], {u"k": 1}, True]:
    check("echo %r" % (v,), c.echo(v), v)
# long strings and binaries: our server sends them back in pieces of their own
for name, v in [("long bytes", b"\x09" * 100000), ("long str", u"\u00e9" * 20000),
                ("long nested", [b"\x01" * 70000, 7, {u"k": u"x" * 30000}])]:
    check(name, c.echo(v), v)
check("add", c.add(2, 40), 42)
check("add str", c.add(u"a", u"b"), u"ab")
check("lolita", c.lolita(), 42)
check("bytes", c.bytes(3), b"\x00\x01\x02")
check("range", list(c.range(10000)), list(range(10000)))
n = 0
for x in c.range(3000):
    if x % 500 == 0:
        gevent.sleep(0.05)   # a slow consumer: we must not overflow its queue
    n += 1
check("slow consumer", n, 3000)
try:
    c.fail(u"boom")
    raise AssertionError("fail() did not raise")
except zerorpc.RemoteError as e:
    check("fail", (e.name, e.msg), (u"DemoError", u"boom"))
    assert "demo.fail" in e.traceback, e.traceback
try:
    c.nope()
    raise AssertionError("nope() did not raise")
except zerorpc.RemoteError as e:
    check("unknown", (e.name, e.msg), (u"NameError", u"nope"))
try:
    c.add(1)
    raise AssertionError("add(1) did not raise")
except zerorpc.RemoteError as e:
    check("arg count", e.name, u"TypeError")
check("slow", c.slow(2.5), 2.5)
t = zerorpc.Client(timeout=1, heartbeat=1)
t.connect(ep)
try:
    t.slow(3)
    raise AssertionError("no timeout")
except zerorpc.TimeoutExpired:
    print("OK timeout", flush=True)
check("ping", c._zerorpc_ping(), [u"pong", u"demo"])
check("name", c._zerorpc_name(), u"demo")
check("list", c._zerorpc_list(), [u"echo", u"add", u"lolita", u"range", u"slow", u"fail", u"bytes", u"record"])
check("help", c._zerorpc_help(u"add"), u"Add a and b (numbers, strings or lists).")
check("args", c._zerorpc_args(u"add"), [[u"a", u"b"], None, None, None])
insp = c._zerorpc_inspect()
check("inspect name", insp[u"name"], u"demo")
check("inspect add", insp[u"methods"][u"add"],
      {u"args": [{u"name": u"a"}, {u"name": u"b"}], u"doc": u"Add a and b (numbers, strings or lists)."})
pool = Pool(200)
check("concurrent", pool.map(lambda i: c.echo(i), range(150)), list(range(150)))
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_full_tour() {
    let (_server, ep) = serve(Duration::from_secs(1)).await;
    for out in run_script_everywhere(CLIENT, &ep).await {
        assert!(out.contains("OK inspect add"));
        assert!(out.contains("OK long nested"), "{out}");
    }
}

const CLI_LIST: &str = r#"
import sys
sys.argv = ["zerorpc", sys.argv[1]]
from zerorpc.cli import main
main()
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cli_lists_our_service() {
    let (_server, ep) = serve(Duration::from_secs(1)).await;
    let out = run_script(CLI_LIST, ep).await;
    assert!(out.contains("[demo]"), "{out}");
    let add = out
        .lines()
        .find(|l| l.starts_with("add "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        add.ends_with("Add a and b (numbers, strings or lists)."),
        "{add}"
    );
    assert!(out
        .lines()
        .any(|l| l.starts_with("range") && l.ends_with("Stream the integers 0 to n-1.")));
}

const LOST: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=30, heartbeat=0.5)
c.connect(sys.argv[1])
print("CALLING", flush=True)
try:
    c.slow(60)
    print("NO ERROR", flush=True)
except zerorpc.LostRemote as e:
    print("LOST", e, flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_sees_lost_remote_when_our_server_dies() {
    let (server, ep) = serve(Duration::from_millis(500)).await;
    let mut py = tokio::task::spawn_blocking(move || {
        let mut p = Proc::python(LOST, &[&ep]);
        p.wait_line("CALLING");
        p
    })
    .await
    .unwrap();
    within("call in progress", async {
        while server.active_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.shutdown();
    drop(server);
    let line = within(
        "python notices",
        tokio::task::spawn_blocking(move || py.wait_line("LOST")),
    )
    .await
    .unwrap();
    assert!(line.contains("Lost remote"), "{line}");
}

const MISBEHAVING: &str = r#"
import sys, time, uuid, zmq, msgpack
ep = sys.argv[1]
ctx = zmq.Context()
def req(name, args, mid=None):
    mid = mid if mid is not None else uuid.uuid4().hex.encode()
    return mid, msgpack.packb([{"message_id": mid, "v": 3}, name, args], use_bin_type=True)

# 1. garbage: not msgpack, not an event, a wrong-shaped event
g = ctx.socket(zmq.DEALER); g.connect(ep)
for junk in [b"\xc1\xc1\xc1", b"not msgpack at all", msgpack.packb([1, 2]), msgpack.packb({"a": 1})]:
    g.send_multipart([b"", junk])

# 2. opens a big stream and vanishes (never heartbeats, never grants)
v = ctx.socket(zmq.DEALER); v.connect(ep)
v.send_multipart([b"", req("range", [10**8])[1]])
time.sleep(0.2)
v.close(linger=0)

# 3. keeps a stream open, heart-beats, never grants credit
n = ctx.socket(zmq.DEALER); n.connect(ep)
mid, r = req("range", [10**8])
n.send_multipart([b"", r])
got = []
deadline = time.time() + 3
while time.time() < deadline:
    if n.poll(100):
        ev = msgpack.unpackb(n.recv_multipart()[-1], raw=False)
        if ev[1] == "STREAM":
            got.append(ev[2])
    hb = msgpack.packb([{"message_id": uuid.uuid4().hex.encode(), "v": 3, "response_to": mid}, "_zpc_hb", [0]], use_bin_type=True)
    n.send_multipart([b"", hb])
assert got == [0], "without credit exactly one item may come, got %r" % got[:5]
print("OK no-credit client got exactly one item", flush=True)

# Meanwhile a well-behaved client is served.
import zerorpc
c = zerorpc.Client(timeout=5, heartbeat=1); c.connect(ep)
assert c.add(1, 2) == 3
assert list(c.range(300)) == list(range(300))
print("OK good client served", flush=True)

# 4. a Node-like client: string ids, absolute credit, [] args
s = ctx.socket(zmq.DEALER); s.connect(ep)
mid = str(uuid.uuid4())
s.send_multipart([b"", msgpack.packb([{"message_id": mid, "v": 3}, "range", [500]], use_bin_type=True)])
items, outstanding, granted = [], 1, 1
while True:
    assert s.poll(5000), "node-like client starved"
    ev = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    assert ev[0]["response_to"] == mid and isinstance(ev[0]["response_to"], str), ev[0]
    if ev[1] == "_zpc_hb":
        continue
    if ev[1] == "STREAM_DONE":
        break
    assert ev[1] == "STREAM", ev
    items.append(ev[2])
    outstanding -= 1
    assert outstanding >= 0, "server exceeded absolute credit"
    if len(items) % 7 == 1:
        # absolute: "you may have 10 in flight now"
        outstanding = 10
        s.send_multipart([b"", msgpack.packb([{"message_id": str(uuid.uuid4()), "v": 3, "response_to": mid}, "_zpc_more", [10]], use_bin_type=True)])
assert items == list(range(500)), items[:10]
print("OK node-like client", flush=True)
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_do_not_harm_others() {
    let (server, ep) = serve(Duration::from_millis(300)).await;
    run_script(MISBEHAVING, ep).await;
    // The vanished client's stream is cancelled once its heartbeats are
    // missed; only the no-credit client's channel may remain until it
    // goes silent too.
    within("abandoned calls cleaned up", async {
        while server.active_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

const RECORD: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=10, heartbeat=1)
c.connect(sys.argv[1])
r = c.record(u"kiwi", 1.0)
assert type(r) is dict, "a struct must arrive as a dict, got %r" % (r,)
assert r == {u"name": u"kiwi", u"value": 1.0}, r
print("OK record", sys.version_info[:2], r, flush=True)
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_receives_a_struct_as_a_dict() {
    let (_server, ep) = serve(Duration::from_secs(1)).await;
    for out in run_script_everywhere(RECORD, &ep).await {
        assert!(out.contains("OK record"), "{out}");
    }
}

/// The Python CLI's way of calling: its first heartbeat comes only after
/// it hears ours, an interval later. A call of 6 heartbeat intervals must
/// get through (the issue saw 12 s calls cancelled with the default 5 s
/// heartbeat; 1 s keeps the test short).
const PASSIVE: &str = r#"
import sys, time, zerorpc
c = zerorpc.Client(timeout=30, heartbeat=1, passive_heartbeat=True)
c.connect(sys.argv[1])
t = time.time()
got = c.slow(6)
assert got == 6, got
print("OK passive slow(6) in %.1fs" % (time.time() - t), flush=True)
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_heartbeat_python_client_gets_a_long_call_through() {
    let (server, ep) = serve(Duration::from_secs(1)).await;
    for out in run_script_everywhere(PASSIVE, &ep).await {
        assert!(out.contains("OK passive slow(6)"), "{out}");
    }
    assert_eq!(server.active_calls(), 0);
}

/// The case as users hit it: the default 5 s heartbeat, a 12 s call (it
/// was cancelled at 10 s, two silent intervals).
const PASSIVE_12S: &str = r#"
import sys, time, zerorpc
c = zerorpc.Client(timeout=30, passive_heartbeat=True)
c.connect(sys.argv[1])
t = time.time()
got = c.slow(12)
assert got == 12, got
print("OK passive slow(12) in %.1fs" % (time.time() - t), flush=True)
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_heartbeat_python_client_gets_a_12_s_call_through_at_the_default_heartbeat() {
    let (server, ep) = serve(Duration::from_secs(5)).await;
    for out in run_script_everywhere(PASSIVE_12S, &ep).await {
        assert!(out.contains("OK passive slow(12)"), "{out}");
    }
    assert_eq!(server.active_calls(), 0);
}

/// What a Python user sees of our errors: `str(e)` (zerorpc-python shows
/// the traceback when it is not nil, else `Name: message`) and what an
/// uncaught error prints.
const ERRORS: &str = r#"
import sys, traceback, zerorpc
c = zerorpc.Client(timeout=10, heartbeat=1)
c.connect(sys.argv[1])
def shown(what, f, *args):
    try:
        f(*args)
    except zerorpc.RemoteError as e:
        text = str(e)
        printed = "".join(traceback.format_exception_only(type(e), e))
        assert e.msg and e.msg in text, "%s: %r not in %r" % (what, e.msg, text)
        assert e.name in text, "%s: %r not in %r" % (what, e.name, text)
        assert e.msg in printed, "%s: %r not in %r" % (what, e.msg, printed)
        print("SHOWN", what, repr(text), flush=True)
        return e
    raise AssertionError("%s did not raise" % what)
e = shown("arg count", c.add, 1)
assert e.name == "TypeError" and "add() takes 2" in str(e), str(e)
e = shown("arg type", c.slow, u"soon")
assert e.name == "TypeError" and "seconds" in str(e), str(e)
e = shown("unknown", c.nope)
assert (e.name, e.msg) == ("NameError", "nope"), (e.name, e.msg)
e = shown("fail", c.fail, u"boom")
assert "DemoError: boom" in str(e), str(e)
assert "demo.fail" in e.traceback, e.traceback
print("ALL DONE", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_shows_readable_error_messages() {
    let (_server, ep) = serve(Duration::from_secs(1)).await;
    for out in run_script_everywhere(ERRORS, &ep).await {
        assert_eq!(out.matches("SHOWN").count(), 4, "{out}");
    }
}

/// The Python CLI itself (it runs on Python < 3.10 only, so under pyenv's
/// 3.9): its calls are passive-heartbeat ones, and it prints what
/// `str(error)` gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cli_gets_a_long_call_through_and_prints_readable_errors() {
    let Some(py) = python39() else {
        eprintln!("NOTE: python_cli_gets_a_long_call_through_and_prints_readable_errors needs a Python < 3.10 for zerorpc-python's CLI: not run");
        return;
    };
    let (_server, ep) = serve(Duration::from_secs(1)).await;
    // `-j`: arguments as JSON (else the CLI sends strings)
    let cli = |args: &[&str]| {
        let (flags, args) = match args.first() {
            Some(&"-j") => (&args[..1], &args[1..]),
            _ => (&args[..0], args),
        };
        let mut cmd = std::process::Command::new(py);
        cmd.args([
            "-c",
            "import sys; from zerorpc.cli import main; sys.argv[0] = 'zerorpc'; sys.exit(main())",
        ])
        .args(flags)
        .args(["--timeout", "30", "--heartbeat", "1", &ep])
        .args(args);
        async move {
            within(
                "python cli",
                tokio::task::spawn_blocking(move || cmd.output().expect("run the python cli")),
            )
            .await
            .unwrap()
        }
    };
    let out = cli(&["-j", "slow", "6"]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim().parse::<f64>().ok() == Some(6.0),
        "{}\n{stdout}\n{stderr}",
        out.status
    );
    for (args, shown) in [
        (&["-j", "add", "1"][..], "TypeError: add() takes 2"),
        (&["nope"][..], "NameError: nope"),
        (&["fail", "boom"][..], "DemoError: boom"),
    ] {
        let out = cli(args).await;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("python cli {args:?}:\n{all}");
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(all.contains(shown), "{args:?}: {shown:?} not in:\n{all}");
    }
}
