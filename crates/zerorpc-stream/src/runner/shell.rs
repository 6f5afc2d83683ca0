//! Shell (multi-lang) components in the runner: a subprocess per task,
//! driven like Storm's ShellSpout/ShellBolt, without their pains:
//! - a stray line on stdout is reported with the component and the line,
//!   and the protocol goes on (see the codec);
//! - liveness is judged by [`Liveness`]: a subprocess that sends nothing
//!   for `topology.subprocess.timeout.secs` but whose CPU time advances is
//!   busy (reported, not killed); one that sends nothing and uses no CPU is
//!   stuck, and is killed with a message that says so;
//! - a subprocess that dies or is killed is reported (exit status and the
//!   last lines of its stderr), its tuples in flight are failed (their trees
//!   replay from the spouts) and it is started again, with a back-off.
//!
//! A first start that fails (a wrong command, no handshake) fails the run
//! with the reason: that is a topology mistake, not a crash to retry.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::io::{BoltIo, SpoutControl, SpoutIo};
use super::logs::ComponentLog;
use crate::component::TaskContext;
use crate::error::Error;
use crate::multilang::codec::Decoded;
use crate::multilang::protocol::{TupleOut, WorkerWire};
use crate::multilang::{
    Decoder, FromComponent, Handshake, InputTuple, Serializer, ToComponent, TupleId,
};
use crate::topology::Topology;
use crate::tuple::{Tuple, Value, DEFAULT_STREAM};

/// How to start one shell component's subprocesses.
#[derive(Clone)]
pub(crate) struct ShellSpec {
    pub(crate) command: Vec<String>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) serializer: Serializer,
    pub(crate) conf: Arc<serde_json::Map<String, Value>>,
    /// Silence (without CPU progress) after which a subprocess is stuck.
    pub(crate) timeout: Duration,
    /// Tuples a bolt subprocess may hold unanswered
    /// (`topology.shellbolt.max.pending`, [`MAX_IN_FLIGHT`] when unset).
    pub(crate) max_in_flight: usize,
}

impl ShellSpec {
    pub(crate) fn new(command: Vec<String>, topology: &Topology) -> Result<ShellSpec, Error> {
        if command.is_empty() {
            return Err(Error::Topology(
                "a shell component has an empty command".into(),
            ));
        }
        let serializer = match topology.config.get("topology.multilang.serializer") {
            Some(Value::String(s)) if s.to_ascii_lowercase().contains("msgpack") => {
                Serializer::Msgpack
            }
            _ => Serializer::Json,
        };
        let timeout = super::conf_number(&topology.config, "topology.subprocess.timeout.secs")
            .filter(|s| *s > 0.0)
            .unwrap_or(30.0);
        let max_in_flight = super::conf_number(&topology.config, "topology.shellbolt.max.pending")
            .filter(|n| *n >= 1.0)
            .map_or(MAX_IN_FLIGHT, |n| n.min(1e7) as usize);
        let mut conf = topology.config.clone();
        conf.entry("topology.name")
            .or_insert_with(|| Value::String(topology.name.clone()));
        Ok(ShellSpec {
            command,
            dir: topology.base_dir.clone(),
            serializer,
            conf: Arc::new(conf),
            timeout: Duration::from_secs_f64(timeout),
            max_in_flight,
        })
    }
}

/// Whether a subprocess is alive, busy or stuck, from when it last sent a
/// message and whether its CPU time moves (sans-IO: the caller passes
/// `now` and the CPU reading).
#[derive(Debug)]
pub(crate) struct Liveness {
    timeout: Duration,
    last_message: Instant,
    last_cpu: Option<u64>,
    last_cpu_advance: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Alive,
    /// Silent this long, but working.
    Busy(Duration),
    /// Silent and idle this long.
    Stuck(Duration),
}

impl Liveness {
    pub(crate) fn new(timeout: Duration, now: Instant) -> Liveness {
        Liveness {
            timeout,
            last_message: now,
            last_cpu: None,
            last_cpu_advance: now,
        }
    }

    /// The subprocess sent something (or was just asked something it
    /// answers at once).
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_message = now;
    }

    pub(crate) fn check(&mut self, now: Instant, cpu: Option<u64>) -> Verdict {
        if let Some(c) = cpu {
            if self.last_cpu.is_some_and(|prev| c > prev) {
                self.last_cpu_advance = now;
            }
            self.last_cpu = Some(c);
        }
        let silent = now.saturating_duration_since(self.last_message);
        if silent < self.timeout {
            return Verdict::Alive;
        }
        let progress = self.last_message.max(self.last_cpu_advance);
        if now.saturating_duration_since(progress) >= self.timeout {
            Verdict::Stuck(silent)
        } else {
            Verdict::Busy(silent)
        }
    }
}

/// CPU time (user + system, in clock ticks) of a process, from
/// `/proc/<pid>/stat`; `None` where there is no procfs.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields count from the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// What a subprocess said.
enum Event {
    Message(FromComponent),
    Stray(String),
    Closed,
}

/// What the reader thread decoded from one read of stdout; an error ends
/// it (the subprocess broke the protocol).
type Events = Vec<Result<Event, Error>>;

/// One running subprocess.
struct Proc {
    child: Child,
    pid: u32,
    stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Buffers the writer is done with.
    spare: mpsc::UnboundedReceiver<Vec<u8>>,
    /// What the reader thread decoded from stdout (see [`read_stdout`]);
    /// its end is the end of stdout.
    stdout: mpsc::Receiver<Events>,
    /// Of the last batch, what was not taken yet.
    ready: std::vec::IntoIter<Result<Event, Error>>,
    /// Tuples the subprocess holds unanswered, for the reader's lingering.
    backlog: Arc<AtomicUsize>,
    serializer: Serializer,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pid_dir: PathBuf,
    out: Vec<u8>,
}

impl Proc {
    async fn start(spec: &ShellSpec, ctx: &TaskContext, log: &ComponentLog) -> Result<Proc, Error> {
        let fail = |message: String| Error::Subprocess {
            component: ctx.component.clone(),
            task: ctx.task,
            message,
        };
        let pid_dir = std::env::temp_dir().join(format!(
            "zerorpc-stream-{}-{}-{}",
            std::process::id(),
            ctx.task,
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&pid_dir)
            .map_err(|e| fail(format!("pid directory {}: {e}", pid_dir.display())))?;
        // stdout is a plain pipe read by a thread, not by the reactor
        // (see `read_stdout`).
        let (stdout_r, stdout_w) =
            std::io::pipe().map_err(|e| fail(format!("cannot make a pipe: {e}")))?;
        let mut cmd = Command::new(&spec.command[0]);
        cmd.args(&spec.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(stdout_w))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &spec.dir {
            cmd.current_dir(dir);
        }
        let spawned = cmd.spawn();
        // Our copy of the pipe's write end goes, so that its exit reads as
        // the end of stdout.
        drop(cmd);
        let mut child =
            spawned.map_err(|e| fail(format!("cannot start {:?}: {e}", spec.command)))?;
        let pid = child.id().unwrap_or(0);
        let (Some(mut stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(fail("no pipes to the subprocess".into()));
        };
        let backlog = Arc::new(AtomicUsize::new(0));
        let (stdout_tx, stdout) = mpsc::channel(STDOUT_CHUNKS);
        {
            let backlog = backlog.clone();
            let name = format!("{}-{}-stdout", ctx.component, ctx.task);
            let decoder = Decoder::new(spec.serializer);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || read_stdout(stdout_r, decoder, stdout_tx, backlog))
                .map_err(|e| fail(format!("cannot start a reader thread: {e}")))?;
        }
        // The writer: a task, so that a subprocess that does not read its
        // stdin never stops us from reading its stdout.
        // Written buffers come back (emptied) for the next burst: a fresh
        // one per burst would grow by doubling, copying as it goes.
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (spare_tx, spare) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(mut bytes) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    bytes.extend_from_slice(&more);
                    recycle(&spare_tx, more);
                }
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
                recycle(&spare_tx, bytes);
            }
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        {
            let (tail, log, task) = (stderr_tail.clone(), log.clone(), ctx.task);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.log(task, 3, &format!("stderr: {line}"));
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == 20 {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            });
        }
        let mut proc = Proc {
            child,
            pid,
            stdin: Some(tx),
            spare,
            stdout,
            ready: Vec::new().into_iter(),
            backlog,
            serializer: spec.serializer,
            stderr_tail,
            pid_dir: pid_dir.clone(),
            out: Vec::new(),
        };
        let mut context = serde_json::Map::new();
        context.insert("taskid".into(), ctx.task.into());
        context.insert("componentid".into(), ctx.component.clone().into());
        context.insert("stormid".into(), ctx.topology.clone().into());
        context.insert(
            "task->component".into(),
            Value::Object(
                ctx.component_tasks
                    .iter()
                    .map(|t| (t.to_string(), Value::String(ctx.component.clone())))
                    .collect(),
            ),
        );
        proc.send(&ToComponent::Handshake(Handshake {
            conf: (*spec.conf).clone(),
            pid_dir: pid_dir.display().to_string(),
            context,
        }));
        proc.flush();
        // Interpreters can take a while to import: the handshake gets at
        // least a minute.
        let handshake_timeout = spec.timeout.max(Duration::from_secs(60));
        let answer = tokio::time::timeout(handshake_timeout, async {
            loop {
                match proc.next_event().await? {
                    Event::Message(FromComponent::Pid(p)) => return Ok(p),
                    Event::Message(other) => {
                        return Err(fail(format!("answered the handshake with {other:?}")))
                    }
                    Event::Stray(line) => {
                        log.log(ctx.task, 3, &format!("stray output on stdout: {line}"))
                    }
                    Event::Closed => return Err(fail("exited during the handshake".into())),
                }
            }
        })
        .await;
        let answered = match answer {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                let e = Error::Subprocess {
                    component: ctx.component.clone(),
                    task: ctx.task,
                    message: format!("{e}{}", proc.stderr_text()),
                };
                proc.kill().await;
                return Err(e);
            }
            Err(_) => {
                proc.kill().await;
                return Err(fail(format!(
                    "no handshake answer within {:?}{}",
                    handshake_timeout,
                    proc.stderr_text()
                )));
            }
        };
        if !pid_dir.join(answered.to_string()).exists() {
            log.log(
                ctx.task,
                3,
                &format!("answered pid {answered} without writing its pid file"),
            );
        }
        Ok(proc)
    }

    /// Queues a message; [`Proc::flush`] hands what is queued to the
    /// writer (one write for a burst).
    fn send(&mut self, msg: &ToComponent) {
        msg.encode(self.serializer, &mut self.out);
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let bytes = std::mem::replace(&mut self.out, next);
        if let Some(tx) = &self.stdin {
            // Fails only when the writer stopped: the exit shows on stdout.
            let _ = tx.send(bytes);
        }
    }

    /// A decoded event without waiting (for draining what arrived).
    fn ready_event(&mut self) -> Result<Option<Event>, Error> {
        self.ready.next().transpose()
    }

    /// The next event, waiting as needed (cancel-safe).
    async fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(e) = self.ready_event()? {
                return Ok(e);
            }
            match self.stdout.recv().await {
                Some(batch) => self.ready = batch.into_iter(),
                None => return Ok(Event::Closed),
            }
        }
    }

    fn stderr_text(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with:\n{}", Vec::from(tail).join("\n"))
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.pid_dir);
    }

    /// Closes stdin, gives the subprocess a moment to exit, then kills it.
    async fn shutdown(mut self) {
        self.stdin = None;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.pid_dir);
    }

    /// Why it ended, for the report.
    async fn exit_text(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                "killed".to_string()
            }
        };
        let _ = std::fs::remove_dir_all(&self.pid_dir);
        format!("{status}{}", self.stderr_text())
    }
}

/// Hands a written buffer back for reuse, unless it grew large (a burst
/// of big tuples need not stay allocated).
fn recycle(spare: &mpsc::UnboundedSender<Vec<u8>>, mut bytes: Vec<u8>) {
    if bytes.capacity() <= 1 << 20 {
        bytes.clear();
        let _ = spare.send(bytes);
    }
}

/// Batches decoded from a subprocess's stdout and not yet taken, at most
/// (each from one read of at most [`READ_CHUNK`]: with the decoder's
/// message limit, the memory a fast subprocess can take).
const STDOUT_CHUNKS: usize = 16;
const READ_CHUNK: usize = 64 * 1024;

/// With at least this many tuples in flight a bolt subprocess has a
/// backlog of work, and reading its answers can wait: see [`LINGER`].
const LINGER_BACKLOG: usize = 128;

/// How long at most the reader leaves a busy subprocess's stdout unread
/// after emptying it. A pipe that is polled (epoll, the reactor) wakes its
/// poller on every write, and a write into an empty pipe wakes a blocked
/// reader: answered at once, every message of a subprocess that writes
/// each message on its own (pystorm) pays a wake-up in its `write`
/// (measured: a pystorm bolt spent 2.4× the kernel time in `write` driven
/// by the reactor than by a batching driver). A thread that reads, then
/// waits while the pipe keeps filling, lets such answers gather: the
/// subprocess writes into a non-empty pipe nobody waits on, and its
/// backlog keeps it working meanwhile.
///
/// A subprocess that answers a burst in one write (ours) leaves the pipe
/// still after it: the reader sees no growth after one [`LINGER_STEP`]
/// and reads again. Measured once each on a shared machine (our
/// multi-lang word count, trees/s; a pystorm bolt, runner ÷ driver.py):
/// a fixed 1 ms wait 49.4 k, 1.20×; no wait 55–59 k, 0.67×; this 50.6 k,
/// 0.98× (1.02–1.06× in the full runs): close to the fixed wait on both,
/// which is a weak case for it; what the no-wait figure leaves on the
/// table for ours is still open.
///
/// That one look is not free either: it delays every burst by a
/// [`LINGER_STEP`], and with a bounded window of tuples in flight a delay
/// is lost throughput. So the reader learns ([`LingerPolicy`]): after a
/// few lingers in a row that saw the pipe still, it stops lingering for a
/// while, and looks again later (our word count, the same build: 89 k
/// trees/s lingering, 101 k never lingering).
///
/// Subprocesses that ask for task ids wait for our answer to each emit:
/// they never linger ([`NO_LINGER`]).
const LINGER: Duration = Duration::from_millis(1);

/// How often a lingering reader looks at how much its pipe holds.
const LINGER_STEP: Duration = Duration::from_micros(100);

/// The backlog value that turns lingering off for good.
const NO_LINGER: usize = usize::MAX;

/// Whether lingering pays off for a subprocess, from what the last
/// lingers saw (sans-IO).
#[derive(Debug, Default)]
struct LingerPolicy {
    /// Reads left before lingering is tried again.
    skip: u32,
    /// The last pause (reads), doubled each time lingering fails again.
    pause: u32,
    /// Lingers in a row that saw the pipe still.
    misses: u32,
}

impl LingerPolicy {
    /// Lingers in a row that see no growth before a pause.
    const MISSES: u32 = 4;
    const FIRST_PAUSE: u32 = 16;
    const MAX_PAUSE: u32 = 1024;

    /// Whether to linger after this read.
    fn try_linger(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// What a linger saw: whether the pipe grew while it waited.
    fn lingered(&mut self, grew: bool) {
        if grew {
            self.misses = 0;
            self.pause = 0;
            return;
        }
        self.misses += 1;
        if self.misses >= Self::MISSES {
            self.misses = 0;
            self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::MAX_PAUSE);
            self.skip = self.pause;
        }
    }
}

/// The reader thread of a subprocess's stdout: blocking reads, decoded
/// here (off the task, which has the routing to do) and handed to the task
/// a batch per read; the end of the channel is the end of stdout.
fn read_stdout(
    mut pipe: std::io::PipeReader,
    mut decoder: Decoder,
    tx: mpsc::Sender<Events>,
    backlog: Arc<AtomicUsize>,
) {
    use std::io::Read;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_batch = 0;
    let mut policy = LingerPolicy::default();
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading a subprocess's stdout");
                return;
            }
        };
        decoder.feed(&buf[..n]);
        let (batch, broken) = decode_ready(&mut decoder, last_batch);
        last_batch = batch.len();
        if !batch.is_empty() && tx.blocking_send(batch).is_err() || broken {
            return;
        }
        let b = backlog.load(Relaxed);
        if n < READ_CHUNK && b >= LINGER_BACKLOG && b != NO_LINGER && policy.try_linger() {
            policy.lingered(linger(&pipe) > 1);
        }
    }
}

/// Every event the decoder holds; `true` with it when the last is an
/// error (nothing after it is read). `hint`: the last batch's length (a
/// batch that grows by doubling copies its events each time).
fn decode_ready(decoder: &mut Decoder, hint: usize) -> (Events, bool) {
    let mut batch = Vec::with_capacity(hint.min(4096));
    loop {
        let event = match decoder.next_decoded::<WorkerWire>() {
            Ok(Some(Decoded::Message(w))) => FromComponent::from_wire(w).map(Event::Message),
            Ok(Some(Decoded::Stray(line))) => Ok(Event::Stray(line)),
            Ok(None) => return (batch, false),
            Err(e) => Err(e),
        };
        let broken = event.is_err();
        batch.push(event);
        if broken {
            return (batch, true);
        }
    }
}

/// Waits while the pipe fills (up to [`LINGER`], or a chunk's worth);
/// the number of looks at the pipe it took.
fn linger(pipe: &std::io::PipeReader) -> u32 {
    let Some(mut held) = pipe_bytes(pipe) else {
        std::thread::sleep(LINGER);
        return 0;
    };
    let until = Instant::now() + LINGER;
    let mut looks = 0;
    loop {
        std::thread::sleep(LINGER_STEP);
        looks += 1;
        match pipe_bytes(pipe) {
            Some(now) if now > held && now < READ_CHUNK && Instant::now() < until => held = now,
            _ => return looks,
        }
    }
}

/// Bytes waiting in a pipe (`FIONREAD`); `None` where that cannot be
/// asked.
#[cfg(unix)]
fn pipe_bytes(pipe: &std::io::PipeReader) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on a descriptor we own writes one c_int.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    (r == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(not(unix))]
fn pipe_bytes(_pipe: &std::io::PipeReader) -> Option<usize> {
    None
}

fn heartbeat_period(timeout: Duration) -> Duration {
    (timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Tuples sent to a bolt subprocess and not yet acked or failed, by the
/// id we gave them (sequential numbers, sent as their decimal text).
type InFlight = super::in_flight::InFlight<(Tuple, Instant)>;

/// Tuples a bolt subprocess may hold unacked before we stop sending more,
/// unless `topology.shellbolt.max.pending` says otherwise (Storm's
/// default there is 100, made for a JVM worker; a subprocess that answers
/// in bursts needs a window several bursts deep: 1,000 held our
/// multi-lang word count to ~80% of what 4,000 gives).
const MAX_IN_FLIGHT: usize = 4000;

/// Starts a subprocess again after a crash, backing off, until it
/// answers its handshake.
async fn restart(
    spec: &ShellSpec,
    ctx: &TaskContext,
    log: &ComponentLog,
    attempt: &mut u32,
) -> Proc {
    loop {
        let wait = Duration::from_millis(100 << (*attempt).min(6));
        *attempt += 1;
        tokio::time::sleep(wait).await;
        match Proc::start(spec, ctx, log).await {
            Ok(p) => return p,
            Err(e) => log.log(ctx.task, 4, &format!("restart failed: {e}")),
        }
    }
}

/// Runs one shell bolt task until its input ends.
pub(crate) async fn run_shell_bolt(
    spec: ShellSpec,
    ctx: TaskContext,
    mut io: BoltIo,
) -> Result<(), Error> {
    let log = io.component_log();
    let mut proc = Proc::start(&spec, &ctx, &log).await?;
    let mut pending: InFlight = InFlight::new(spec.max_in_flight.saturating_mul(2));
    let mut next_id: i64 = 1;
    let mut live = Liveness::new(spec.timeout, Instant::now());
    let mut ticks = tokio::time::interval(heartbeat_period(spec.timeout));
    let mut heartbeat_out = false;
    let mut busy_reported = false;
    let mut attempt = 0;
    let mut input_open = true;
    while input_open || !pending.is_empty() {
        if proc.backlog.load(Relaxed) != NO_LINGER {
            proc.backlog.store(pending.len(), Relaxed);
        }
        let can_take = input_open && pending.len() < spec.max_in_flight;
        let mut died: Option<String> = None;
        proc.flush();
        tokio::select! {
            t = io.recv(), if can_take => match t {
                Some(t) if t.is_tick() => {
                    proc.send(&ToComponent::Tuple(InputTuple {
                        id: TupleId::from(-2),
                        comp: "__system".into(),
                        stream: "__tick".into(),
                        task: -1,
                        tuple: t.values.clone(),
                    }));
                }
                Some(t) => {
                    // This tuple and the rest of its batch, up to the cap.
                    let now = Instant::now();
                    let mut next = Some(t);
                    while let Some(t) = next.take() {
                        let id = next_id;
                        next_id += 1;
                        let out = TupleOut {
                            id: &TupleId::from(id),
                            comp: t.component(),
                            stream: t.stream(),
                            task: t.source_task(),
                            tuple: &t.values,
                        };
                        out.write(proc.serializer, &mut proc.out);
                        pending.insert(id, (t, now));
                        if pending.len() < spec.max_in_flight {
                            next = io.try_recv();
                        }
                    }
                }
                None => input_open = false,
            },
            ev = proc.next_event() => {
                let mut ev = ev;
                let mut heard = false;
                loop {
                    match ev {
                        Ok(Event::Message(m)) => {
                            heard = true;
                            if matches!(m, FromComponent::Sync) {
                                heartbeat_out = false;
                            }
                            bolt_message(m, &mut proc, &mut io, &mut pending);
                        }
                        Ok(Event::Stray(line)) => {
                            io.sink().report_error(&format!("stray output on stdout (not protocol): {line}"));
                        }
                        Ok(Event::Closed) => {
                            died = Some(format!("exited: {}", proc.exit_text().await));
                            break;
                        }
                        Err(e) => {
                            died = Some(format!("broke the protocol: {e}"));
                            break;
                        }
                    }
                    ev = match proc.ready_event() {
                        Ok(Some(e)) => Ok(e),
                        Ok(None) => break,
                        Err(e) => Err(e),
                    };
                }
                if heard {
                    live.heard(Instant::now());
                    busy_reported = false;
                }
                io.flush().await;
            },
            _ = ticks.tick() => {
                match live.check(Instant::now(), cpu_ticks(proc.pid)) {
                    Verdict::Alive => {}
                    Verdict::Busy(silent) => {
                        if !busy_reported {
                            busy_reported = true;
                            io.sink().log(3, &format!(
                                "silent for {:.1}s but using CPU: busy, not killed", silent.as_secs_f64()
                            ));
                        }
                    }
                    Verdict::Stuck(silent) => {
                        died = Some(format!(
                            "stuck: no message and no CPU time for {:.1}s (topology.subprocess.timeout.secs): killed",
                            silent.as_secs_f64()
                        ));
                        proc.kill().await;
                    }
                }
                if died.is_none() && !heartbeat_out {
                    heartbeat_out = true;
                    proc.send(&ToComponent::Tuple(InputTuple {
                        id: TupleId::from(-1),
                        comp: "__system".into(),
                        stream: "__heartbeat".into(),
                        task: -1,
                        tuple: Vec::new(),
                    }));
                }
            }
        }
        if let Some(why) = died {
            io.sink().report_error(&format!(
                "subprocess {} {why}; its {} tuples in flight are failed and it is started again",
                proc.pid,
                pending.len()
            ));
            for (t, _) in pending.drain() {
                io.sink().fail(&t);
            }
            io.flush().await;
            io.restarted();
            proc = restart(&spec, &ctx, &log, &mut attempt).await;
            live = Liveness::new(spec.timeout, Instant::now());
            heartbeat_out = false;
        }
    }
    io.flush().await;
    proc.shutdown().await;
    Ok(())
}

/// Acks or fails the tuple a bolt subprocess names.
fn settle(id: &TupleId, ack: bool, io: &mut BoltIo, pending: &mut InFlight) {
    let Some((n, (t, sent))) = id.as_i64().and_then(|n| pending.remove(n).map(|x| (n, x))) else {
        io.sink().report_error(&format!(
            "ack or fail of tuple {id}, which is not in flight: ignored"
        ));
        return;
    };
    if ack {
        io.sink().ack(&t);
    } else {
        io.sink().fail(&t);
    }
    // The clock costs: one tuple in 16 gives the latency.
    io.executed((n % 16 == 0).then(|| sent.elapsed()));
}

/// One message from a bolt subprocess.
fn bolt_message(m: FromComponent, proc: &mut Proc, io: &mut BoltIo, pending: &mut InFlight) {
    match m {
        FromComponent::Emit(e) => {
            let mut anchors: smallvec::SmallVec<[&Tuple; 2]> = smallvec::SmallVec::new();
            for id in &e.anchors {
                match id.as_i64().and_then(|id| pending.get(id)) {
                    Some((t, _)) => anchors.push(t),
                    None => io.sink().report_error(&format!(
                        "emit anchored to tuple {id}, which is not in flight (acked, failed or unknown): that anchor is dropped"
                    )),
                }
            }
            let stream = e.stream.as_deref().unwrap_or(DEFAULT_STREAM);
            let answer = e.need_task_ids && e.task.is_none();
            let result = io
                .sink()
                .emit(stream, &anchors, e.tuple, e.task)
                .map(|ids| if answer { ids.to_vec() } else { Vec::new() });
            let ids = result.unwrap_or_else(|err| {
                io.sink().report_error(&err.to_string());
                Vec::new()
            });
            if answer {
                proc.send(&ToComponent::TaskIds(ids));
                // It waits for each answer: reading it late would cost
                // every emit the lingering.
                proc.backlog.store(NO_LINGER, Relaxed);
            }
        }
        FromComponent::Ack(id) => settle(&id, true, io, pending),
        FromComponent::Fail(id) => settle(&id, false, io, pending),
        FromComponent::Sync => {}
        FromComponent::Log { msg, level } => io.sink().log(level, &msg),
        FromComponent::Error(msg) => io.sink().report_error(&msg),
        FromComponent::Metrics { name, params } => {
            io.sink().log(1, &format!("metrics {name}: {params}"))
        }
        FromComponent::Pid(_) => io
            .sink()
            .report_error("sent a pid outside the handshake: ignored"),
    }
}

/// Runs one shell spout task until the run drains or halts.
pub(crate) async fn run_shell_spout(
    spec: ShellSpec,
    ctx: TaskContext,
    mut io: SpoutIo,
) -> Result<(), Error> {
    let log = io.component_log();
    let mut proc = Proc::start(&spec, &ctx, &log).await?;
    let mut attempt = 0;
    let mut idle = Duration::ZERO;
    if let Err(why) = spout_command(&mut proc, &mut io, &spec, ToComponent::Activate).await {
        proc = spout_died(&mut io, proc, why, &spec, &ctx, &log, &mut attempt).await;
    }
    loop {
        while let Some(c) = io.try_control() {
            let cmd = match c {
                SpoutControl::Ack(id) => ToComponent::Ack(id),
                SpoutControl::Fail(id) => ToComponent::Fail(id),
            };
            if let Err(why) = spout_command(&mut proc, &mut io, &spec, cmd).await {
                proc = spout_died(&mut io, proc, why, &spec, &ctx, &log, &mut attempt).await;
            }
        }
        let mut emitted = false;
        if io.may_emit() {
            let before = io.emitted();
            if let Err(why) = spout_command(&mut proc, &mut io, &spec, ToComponent::Next).await {
                proc = spout_died(&mut io, proc, why, &spec, &ctx, &log, &mut attempt).await;
            }
            emitted = io.emitted() > before;
        }
        io.flush().await;
        if emitted && io.may_emit() {
            idle = Duration::ZERO;
            continue;
        }
        let deadline = if io.may_emit() {
            idle = (idle * 2).clamp(Duration::from_millis(1), Duration::from_millis(50));
            Instant::now() + idle
        } else {
            Instant::now() + Duration::from_secs(3600)
        };
        match io.recv_control(deadline).await {
            Ok(Some(c)) => {
                let cmd = match c {
                    SpoutControl::Ack(id) => ToComponent::Ack(id),
                    SpoutControl::Fail(id) => ToComponent::Fail(id),
                };
                if let Err(why) = spout_command(&mut proc, &mut io, &spec, cmd).await {
                    proc = spout_died(&mut io, proc, why, &spec, &ctx, &log, &mut attempt).await;
                }
            }
            Ok(None) => {}
            Err(()) => break,
        }
    }
    let _ = spout_command(&mut proc, &mut io, &spec, ToComponent::Deactivate).await;
    io.flush().await;
    proc.shutdown().await;
    Ok(())
}

async fn spout_died(
    io: &mut SpoutIo,
    mut proc: Proc,
    why: String,
    spec: &ShellSpec,
    ctx: &TaskContext,
    log: &ComponentLog,
    attempt: &mut u32,
) -> Proc {
    let why = if why == "exited" {
        format!("exited: {}", proc.exit_text().await)
    } else {
        proc.kill().await;
        why
    };
    io.sink().report_error(&format!(
        "subprocess {} {why}; it is started again",
        proc.pid
    ));
    io.restarted();
    restart(spec, ctx, log, attempt).await
}

/// Sends a command to a spout subprocess and handles what it says until
/// its `sync`. `Err` says why the subprocess must be replaced.
async fn spout_command(
    proc: &mut Proc,
    io: &mut SpoutIo,
    spec: &ShellSpec,
    cmd: ToComponent,
) -> Result<(), String> {
    proc.send(&cmd);
    proc.flush();
    let mut live = Liveness::new(spec.timeout, Instant::now());
    let mut ticks = tokio::time::interval(heartbeat_period(spec.timeout));
    let mut busy_reported = false;
    loop {
        tokio::select! {
            ev = proc.next_event() => match ev {
                Ok(Event::Message(m)) => {
                    live.heard(Instant::now());
                    match m {
                        FromComponent::Sync => return Ok(()),
                        FromComponent::Emit(e) => {
                            let stream = e.stream.as_deref().unwrap_or(DEFAULT_STREAM);
                            let ids = io
                                .sink()
                                .emit(stream, e.tuple, e.id, e.task)
                                .map(|ids| ids.to_vec())
                                .unwrap_or_else(|err| {
                                    io.sink().report_error(&err.to_string());
                                    Vec::new()
                                });
                            if e.need_task_ids && e.task.is_none() {
                                proc.send(&ToComponent::TaskIds(ids));
                                proc.flush();
                            }
                        }
                        FromComponent::Log { msg, level } => io.sink().log(level, &msg),
                        FromComponent::Error(msg) => io.sink().report_error(&msg),
                        FromComponent::Metrics { name, params } => {
                            io.sink().log(1, &format!("metrics {name}: {params}"))
                        }
                        other => io.sink().report_error(&format!(
                            "a spout sent {other:?}, which spouts do not send: ignored"
                        )),
                    }
                }
                Ok(Event::Stray(line)) => io
                    .sink()
                    .report_error(&format!("stray output on stdout (not protocol): {line}")),
                Ok(Event::Closed) => return Err("exited".into()),
                Err(e) => return Err(format!("broke the protocol: {e}")),
            },
            _ = ticks.tick() => match live.check(Instant::now(), cpu_ticks(proc.pid)) {
                Verdict::Alive => {}
                Verdict::Busy(silent) => {
                    if !busy_reported {
                        busy_reported = true;
                        io.log(3, &format!(
                            "silent for {:.1}s but using CPU: busy, not killed",
                            silent.as_secs_f64()
                        ));
                    }
                }
                Verdict::Stuck(silent) => {
                    return Err(format!(
                        "stuck: no answer and no CPU time for {:.1}s (topology.subprocess.timeout.secs): killed",
                        silent.as_secs_f64()
                    ))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_but_working_is_busy_and_silent_and_idle_is_stuck() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = Liveness::new(Duration::from_secs(10), t0);
        assert_eq!(l.check(t0 + 5 * s, Some(100)), Verdict::Alive);
        // Silent for 12s, CPU moved since the last look: busy.
        assert_eq!(l.check(t0 + 12 * s, Some(900)), Verdict::Busy(12 * s));
        assert_eq!(l.check(t0 + 20 * s, Some(1700)), Verdict::Busy(20 * s));
        // CPU stops at 20s; stuck once 10s pass without either.
        assert_eq!(l.check(t0 + 25 * s, Some(1700)), Verdict::Busy(25 * s));
        assert_eq!(l.check(t0 + 30 * s, Some(1700)), Verdict::Stuck(30 * s));
        // A message resets it.
        l.heard(t0 + 31 * s);
        assert_eq!(l.check(t0 + 32 * s, Some(1700)), Verdict::Alive);
    }

    #[test]
    fn without_cpu_readings_silence_is_stuck() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(2), t0);
        assert_eq!(l.check(t0 + Duration::from_secs(1), None), Verdict::Alive);
        assert!(matches!(
            l.check(t0 + Duration::from_secs(3), None),
            Verdict::Stuck(_)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_lingering_reader_sees_what_the_pipe_holds_and_stops_when_it_is_still() {
        use std::io::Write;
        let (r, mut w) = std::io::pipe().unwrap();
        assert_eq!(pipe_bytes(&r), Some(0));
        w.write_all(b"0123456789").unwrap();
        assert_eq!(pipe_bytes(&r), Some(10));
        // Nothing more comes: the linger ends at its first look.
        assert_eq!(linger(&r), 1);
    }

    #[test]
    fn lingering_that_never_sees_growth_pauses_longer_each_time() {
        let mut p = LingerPolicy::default();
        // Lingering that pays goes on.
        for _ in 0..10 {
            assert!(p.try_linger());
            p.lingered(true);
        }
        // Four still pipes in a row: 16 reads without lingering.
        let pause = |p: &mut LingerPolicy| {
            for _ in 0..LingerPolicy::MISSES {
                assert!(p.try_linger());
                p.lingered(false);
            }
            let mut skipped = 0;
            while !p.try_linger() {
                skipped += 1;
            }
            skipped
        };
        assert_eq!(pause(&mut p), 16);
        assert_eq!(pause(&mut p), 32);
        for _ in 0..10 {
            pause(&mut p);
        }
        assert_eq!(pause(&mut p), LingerPolicy::MAX_PAUSE);
        // One linger that sees the pipe fill starts over.
        p.lingered(true);
        assert_eq!(pause(&mut p), 16);
    }

    #[test]
    fn storm_s_shellbolt_max_pending_sets_the_window() {
        use crate::topology::TopologyBuilder;
        let t = TopologyBuilder::new("t")
            .config("topology.shellbolt.max.pending", 100)
            .build();
        let spec = ShellSpec::new(vec!["x".into()], &t).unwrap();
        assert_eq!(spec.max_in_flight, 100);
        let t = TopologyBuilder::new("t").build();
        let spec = ShellSpec::new(vec!["x".into()], &t).unwrap();
        assert_eq!(spec.max_in_flight, MAX_IN_FLIGHT);
    }

    #[test]
    fn cpu_ticks_of_this_process() {
        let busy_until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < busy_until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(cpu_ticks(std::process::id()).is_some_and(|t| t > 0));
    }
}
