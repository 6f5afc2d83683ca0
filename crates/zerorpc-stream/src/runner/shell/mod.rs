//! Shell (multi-lang) components in the runner: a subprocess per task,
//! driven like Storm's ShellSpout/ShellBolt, without their pains:
//! - a stray line on stdout is reported with the component and the line,
//!   and the protocol goes on (see the codec);
//! - liveness is judged by `liveness::Liveness`: a subprocess that sends nothing
//!   for `topology.subprocess.timeout.secs` but whose CPU time advances is
//!   busy (reported, not killed); one that sends nothing and uses no CPU is
//!   stuck, and is killed with a message that says so;
//! - a subprocess that dies or is killed is reported (exit status and the
//!   last lines of its stderr), its tuples in flight are failed (their trees
//!   replay from the spouts) and it is started again, with a back-off.
//!
//! A first start that fails (a wrong command, no handshake) fails the run
//! with the reason: that is a topology mistake, not a crash to retry.
//!
//! Here: how a subprocess is started, fed and stopped ([`Proc`]); the
//! tasks are in `bolt` and `spout`, stdout's reader thread in `stdout`,
//! the liveness verdicts in `liveness`.

mod bolt;
mod liveness;
mod spout;
mod stdout;

pub(crate) use bolt::run_shell_bolt;
pub(crate) use spout::run_shell_spout;

use bolt::MAX_IN_FLIGHT;
use stdout::{read_stdout, Event, Events, STDOUT_CHUNKS};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
