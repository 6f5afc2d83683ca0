//! The local runner: runs a [`Topology`] in this process, no JVM.
//!
//! Every Rust component instance is a tokio task and every shell component
//! instance a subprocess driven by a task; bounded queues between tasks
//! give back-pressure; the XOR acker tracks every spout tree with
//! `topology.message.timeout.secs` and `topology.max.spout.pending`, and
//! failed or timed-out trees go back to their spout's `fail`.
//!
//! Task I/O contract (what `shell` and the Rust executors share): a bolt
//! task reads tuples from `BoltIo::recv`, hands emits/acks/fails to its
//! `BoltIo::sink` (a [`crate::BoltSink`]: routing happens at emit, so task
//! ids are known at once) and calls `BoltIo::flush` after each input or
//! batch to push what it produced downstream (waiting for queue room: this
//! is the back-pressure). A spout task asks `SpoutIo::may_emit` whether
//! `max.spout.pending` and activation allow a `next_tuple`, gets acks and
//! fails of its trees from `SpoutIo::recv_control`, emits through
//! `SpoutIo::sink` and flushes the same way.
//!
//! Modules: `emitter` (routing, edge ids, batches), `io` (the task I/O
//! above), `executor` (Rust instances), `shell` (multi-lang subprocesses),
//! `metrics` (live counters), `logs` (component logs), `watcher` (watching
//! the run and reporting it); this file wires a topology into tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::acker::{Acker, AckerOp, TreeEnd};
use crate::component::{Bolt, Outputs, Spout, TaskContext};
use crate::error::Error;
use crate::router::Subscription;
use crate::stats::RunStats;
use crate::topology::{ComponentDef, ComponentKind, Registry, Topology};
use crate::tuple::{TaskId, Value};

mod emitter;
mod executor;
mod in_flight;
mod io;
mod logs;
mod metrics;
mod shell;
mod watcher;

use emitter::{Batch, Dest, Emitter, StreamOut};
use executor::{MakeBolt, MakeSpout};
pub(crate) use io::{BoltIo, Phase, SpoutIo};
use logs::ComponentLog;
use metrics::{RunCounters, TaskCounters, Timed, TreeCounters};
use watcher::watch_run;

/// How a run is bounded and reported.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once no tuple has moved and no tree has been pending for this
    /// long.
    pub stop_when_idle: Option<Duration>,
    /// Write the statistics as JSON here every `stats_every` and at the end.
    pub stats_json: Option<PathBuf>,
    /// How often statistics are refreshed (terminal and file).
    pub stats_every: Duration,
    /// Print a statistics table to stderr every `stats_every`.
    pub terminal: bool,
    /// Where component logs go, one file per component
    /// (`<dir>/<component>.log`, what `zerorpc stream tail` reads); logs
    /// also go to `tracing`.
    pub log_dir: Option<PathBuf>,
    /// Stop (drain, then halt) on Ctrl-C.
    pub ctrl_c: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            duration: None,
            stop_when_idle: None,
            stats_json: None,
            stats_every: Duration::from_secs(2),
            terminal: false,
            log_dir: None,
            ctrl_c: false,
        }
    }
}

/// Batches a bolt's input queue holds before its emitters wait.
const QUEUE_BATCHES: usize = 16;
/// Batches of updates the acker's queue holds.
const ACKER_QUEUE: usize = 256;

/// A number from the configuration (Storm accepts numbers as strings too).
fn conf_number(conf: &serde_json::Map<String, Value>, key: &str) -> Option<f64> {
    match conf.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How instances of one component are made.
enum Instances {
    Spouts(Vec<Box<dyn Spout>>, MakeSpout),
    Bolts(Vec<Box<dyn Bolt>>, MakeBolt),
    Shell(shell::ShellSpec),
}

struct Planned<'a> {
    def: &'a ComponentDef,
    spout: bool,
    outputs: Outputs,
    instances: Option<Instances>,
    task_ids: Vec<TaskId>,
    counters: Vec<Arc<TaskCounters>>,
    log: ComponentLog,
}

fn make_instances(
    def: &ComponentDef,
    spout: bool,
    registry: &Registry,
    topology: &Topology,
) -> Result<(Outputs, Instances), Error> {
    let component_error = |source| Error::Component {
        component: def.id.clone(),
        source,
    };
    let unknown = |class: &str| Error::UnknownClass {
        component: def.id.clone(),
        class: class.to_string(),
        known: {
            let known = registry.classes();
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        },
    };
    let n = def.parallelism as usize;
    // `parallelism` instances, made up front (their outputs are needed to
    // wire the topology, and a failing constructor is a topology error).
    let spouts = |make: MakeSpout| {
        let all = (0..n)
            .map(|_| make().map_err(component_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((all[0].outputs(), Instances::Spouts(all, make)))
    };
    let bolts = |make: MakeBolt| {
        let all = (0..n)
            .map(|_| make().map_err(component_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((all[0].outputs(), Instances::Bolts(all, make)))
    };
    match (&def.kind, spout) {
        (ComponentKind::Shell { command, outputs }, _) => Ok((
            outputs.clone(),
            Instances::Shell(shell::ShellSpec::new(command.clone(), topology)?),
        )),
        (ComponentKind::Spout(f), true) => {
            let f = f.clone();
            spouts(Arc::new(move || f()))
        }
        (ComponentKind::Registered { class, args }, true) => {
            let f = registry
                .spouts
                .get(class)
                .ok_or_else(|| unknown(class))?
                .clone();
            let args = args.clone();
            spouts(Arc::new(move || f(&args)))
        }
        (ComponentKind::Bolt(f), false) => {
            let f = f.clone();
            bolts(Arc::new(move || f()))
        }
        (ComponentKind::Registered { class, args }, false) => {
            let f = registry
                .bolts
                .get(class)
                .ok_or_else(|| unknown(class))?
                .clone();
            let args = args.clone();
            bolts(Arc::new(move || f(&args)))
        }
        (ComponentKind::Spout(_), false) => Err(Error::Topology(format!(
            "{}: a spout is declared among the bolts",
            def.id
        ))),
        (ComponentKind::Bolt(_), true) => Err(Error::Topology(format!(
            "{}: a bolt is declared among the spouts",
            def.id
        ))),
    }
}

/// Runs a topology until `options` say stop (or it is stopped), and
/// returns its final statistics.
pub async fn run(
    topology: Topology,
    registry: &Registry,
    options: RunOptions,
) -> Result<RunStats, Error> {
    topology.validate()?;
    let conf = Arc::new(topology.config.clone());
    let timeout = Duration::from_secs_f64(
        conf_number(&conf, "topology.message.timeout.secs")
            .filter(|s| *s > 0.0)
            .unwrap_or(30.0),
    );
    let max_pending = conf_number(&conf, "topology.max.spout.pending")
        .filter(|n| *n >= 1.0)
        .map(|n| n as usize);
    let acking = conf_number(&conf, "topology.acker.executors").is_none_or(|n| n > 0.0);

    // Components in id order: Storm numbers tasks that way, from 1.
    let mut defs: Vec<(&ComponentDef, bool)> = topology
        .spouts
        .iter()
        .map(|d| (d, true))
        .chain(topology.bolts.iter().map(|d| (d, false)))
        .collect();
    defs.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let mut planned = Vec::new();
    let mut next_task: TaskId = 1;
    for (def, spout) in defs {
        let (outputs, instances) = make_instances(def, spout, registry, &topology)?;
        let n = def.parallelism as usize;
        let task_ids: Vec<TaskId> = (next_task..next_task + n as TaskId).collect();
        next_task += n as TaskId;
        planned.push(Planned {
            def,
            spout,
            outputs,
            instances: Some(instances),
            task_ids,
            counters: (0..n).map(|_| Arc::new(TaskCounters::default())).collect(),
            log: ComponentLog::open(options.log_dir.as_deref(), &def.id)?,
        });
    }
    let index: HashMap<&str, usize> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| (p.def.id.as_str(), i))
        .collect();
    for s in &topology.streams {
        let from = &planned[index[s.from.as_str()]];
        if from.outputs.get(&s.stream).is_none() {
            let declared: Vec<&str> = from.outputs.streams().map(|(n, _)| n).collect();
            return Err(Error::Topology(format!(
                "{} subscribes to stream {:?} of {}, which declares {declared:?}",
                s.to, s.stream, s.from
            )));
        }
    }

    // Bolt input queues, by (component index, task position).
    let mut senders: HashMap<(usize, usize), mpsc::Sender<Batch>> = HashMap::new();
    let mut receivers: HashMap<(usize, usize), mpsc::Receiver<Batch>> = HashMap::new();
    for (ci, p) in planned.iter().enumerate() {
        if !p.spout {
            for ti in 0..p.task_ids.len() {
                let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
                senders.insert((ci, ti), tx);
                receivers.insert((ci, ti), rx);
            }
        }
    }
    let spout_tasks: usize = planned
        .iter()
        .filter(|p| p.spout)
        .map(|p| p.task_ids.len())
        .sum();
    let (acker_tx, acker_rx) = mpsc::channel::<Vec<AckerOp>>(ACKER_QUEUE);
    let mut control_tx = Vec::with_capacity(spout_tasks);
    let mut control_rx = Vec::with_capacity(spout_tasks);
    for _ in 0..spout_tasks {
        let (tx, rx) = mpsc::unbounded_channel();
        control_tx.push(tx);
        control_rx.push(Some(rx));
    }

    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let trees = Arc::new(TreeCounters::default());
    let counters = RunCounters {
        topology: topology.name.clone(),
        components: planned
            .iter()
            .map(|p| {
                (
                    p.def.id.clone(),
                    if p.spout { "spout" } else { "bolt" },
                    p.counters.clone(),
                )
            })
            .collect(),
        trees: trees.clone(),
    };

    let mut set: JoinSet<(String, Result<(), Error>)> = JoinSet::new();
    let mut spout_index = 0;
    for ci in 0..planned.len() {
        let instances = planned[ci].instances.take();
        let p = &planned[ci];
        let component: Arc<str> = p.def.id.as_str().into();
        // The emitter of each task: its streams' subscriptions, with the
        // destination tasks numbered locally.
        let mut emitters = Vec::new();
        for (ti, &task) in p.task_ids.iter().enumerate() {
            let mut dests: Vec<Dest> = Vec::new();
            let mut slots: HashMap<(usize, usize), usize> = HashMap::new();
            let mut streams = Vec::new();
            for (name, decl) in p.outputs.streams() {
                let fields: Arc<[String]> = decl.fields.clone().into();
                let mut subs = Vec::new();
                for s in topology
                    .streams
                    .iter()
                    .filter(|s| s.from == p.def.id && s.stream == name)
                {
                    let to = index[s.to.as_str()];
                    let target = &planned[to];
                    let mut local = Vec::new();
                    for tj in 0..target.task_ids.len() {
                        let slot = *slots.entry((to, tj)).or_insert_with(|| {
                            dests.push(Dest {
                                tx: senders[&(to, tj)].clone(),
                                counters: target.counters[tj].clone(),
                            });
                            dests.len() - 1
                        });
                        local.push(slot);
                    }
                    subs.push(Subscription::new(
                        &s.to,
                        local,
                        target.task_ids.clone(),
                        &s.grouping,
                        &decl.fields,
                        ti,
                    )?);
                }
                streams.push(StreamOut {
                    name: name.into(),
                    fields,
                    direct: decl.direct,
                    subs,
                });
            }
            let my_spout_index = if p.spout {
                spout_index += 1;
                spout_index - 1
            } else {
                0
            };
            emitters.push(Emitter::new(
                component.clone(),
                task,
                streams,
                dests,
                acking.then(|| acker_tx.clone()),
                my_spout_index,
                p.counters[ti].clone(),
                p.log.clone(),
            ));
        }
        let tick_secs = |bolt_secs: Option<f64>| {
            conf_number(&p.def.config, "topology.tick.tuple.freq.secs")
                .or(bolt_secs)
                .or_else(|| conf_number(&conf, "topology.tick.tuple.freq.secs"))
        };
        let ctx_of = |ti: usize| TaskContext {
            topology: topology.name.clone(),
            component: p.def.id.clone(),
            task: p.task_ids[ti],
            component_tasks: p.task_ids.clone(),
            config: conf.clone(),
        };
        let first_spout = spout_index - if p.spout { p.task_ids.len() } else { 0 };
        let id = p.def.id.clone();
        match instances {
            Some(Instances::Bolts(all, make)) => {
                for (ti, (bolt, emitter)) in all.into_iter().zip(emitters).enumerate() {
                    let ticks = tick_secs(bolt.tick_secs());
                    let rx = receivers.remove(&(ci, ti)).ok_or_else(|| {
                        Error::Topology(format!("{id}: no input queue for task {ti}"))
                    })?;
                    let counters = emitter.counters.clone();
                    let io = BoltIo::new(rx, emitter, ticks, phase_rx.clone());
                    let fut = executor::run_bolt(bolt, make.clone(), ctx_of(ti), io);
                    let fut = Timed::new(fut, counters);
                    let id = id.clone();
                    set.spawn(async move { (id, fut.await) });
                }
            }
            Some(Instances::Spouts(all, make)) => {
                for (ti, (spout, emitter)) in all.into_iter().zip(emitters).enumerate() {
                    let control = if acking {
                        control_rx[first_spout + ti].take()
                    } else {
                        None
                    };
                    let counters = emitter.counters.clone();
                    let io = SpoutIo::new(emitter, control, max_pending, phase_rx.clone());
                    let fut = executor::run_spout(spout, make.clone(), ctx_of(ti), io);
                    let fut = Timed::new(fut, counters);
                    let id = id.clone();
                    set.spawn(async move { (id, fut.await) });
                }
            }
            Some(Instances::Shell(spec)) => {
                let spout = p.spout;
                for (ti, emitter) in emitters.into_iter().enumerate() {
                    let spec = spec.clone();
                    let ctx = ctx_of(ti);
                    let id = id.clone();
                    let counters = emitter.counters.clone();
                    if spout {
                        let control = if acking {
                            control_rx[first_spout + ti].take()
                        } else {
                            None
                        };
                        let io = SpoutIo::new(emitter, control, max_pending, phase_rx.clone());
                        let fut = Timed::new(shell::run_shell_spout(spec, ctx, io), counters);
                        set.spawn(async move { (id, fut.await) });
                    } else {
                        let rx = receivers.remove(&(ci, ti)).ok_or_else(|| {
                            Error::Topology(format!("{id}: no input queue for task {ti}"))
                        })?;
                        let io = BoltIo::new(rx, emitter, tick_secs(None), phase_rx.clone());
                        let fut = Timed::new(shell::run_shell_bolt(spec, ctx, io), counters);
                        set.spawn(async move { (id, fut.await) });
                    }
                }
            }
            None => {}
        }
    }
    drop(senders);
    drop(acker_tx);
    {
        let acker = Timed::new(
            run_acker(acker_rx, control_tx, timeout, trees.clone()),
            trees.clone(),
        );
        set.spawn(async move {
            acker.await;
            ("__acker".to_string(), Ok(()))
        });
    }
    watch_run(set, phase_tx, counters, timeout, &options).await
}

/// The acker task: applies batches of updates, expires trees, and tells
/// spout tasks how their trees ended.
async fn run_acker(
    mut rx: mpsc::Receiver<Vec<AckerOp>>,
    spouts: Vec<mpsc::UnboundedSender<Vec<(u64, TreeEnd)>>>,
    timeout: Duration,
    counters: Arc<TreeCounters>,
) {
    let mut acker = Acker::new(timeout);
    let mut out = Vec::new();
    let mut per_spout: Vec<Vec<(u64, TreeEnd)>> = spouts.iter().map(|_| Vec::new()).collect();
    let mut expiry = tokio::time::interval(
        (timeout / 20).clamp(Duration::from_millis(10), Duration::from_millis(500)),
    );
    loop {
        tokio::select! {
            ops = rx.recv() => match ops {
                Some(ops) => {
                    let now = Instant::now();
                    for op in ops {
                        acker.apply(op, now, &mut out);
                    }
                    // Take what else is queued before answering (batching).
                    while let Ok(ops) = rx.try_recv() {
                        for op in ops {
                            acker.apply(op, now, &mut out);
                        }
                    }
                }
                None => break,
            },
            _ = expiry.tick() => acker.expire(Instant::now(), &mut out),
        }
        for o in out.drain(..) {
            if let Some(v) = per_spout.get_mut(o.spout) {
                v.push((o.root, o.end));
            }
        }
        for (i, v) in per_spout.iter_mut().enumerate() {
            if !v.is_empty() {
                // A spout that has stopped no longer listens.
                let _ = spouts[i].send(std::mem::take(v));
            }
        }
        counters.started.store(acker.started, Relaxed);
        counters.acked.store(acker.acked, Relaxed);
        counters.failed.store(acker.failed, Relaxed);
        counters.timed_out.store(acker.timed_out, Relaxed);
        counters.pending.store(acker.pending() as u64, Relaxed);
    }
}
