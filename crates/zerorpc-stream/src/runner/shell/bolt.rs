//! A shell bolt task: tuples to the subprocess, its emits, acks and fails
//! back, heartbeats, and a restart when it dies.

use super::liveness::{cpu_ticks, heartbeat_period, Liveness, Verdict};
use super::stdout::{Event, NO_LINGER};
use super::*;

/// Tuples sent to a bolt subprocess and not yet acked or failed, by the
/// id we gave them (sequential numbers, sent as their decimal text).
type InFlight = crate::runner::in_flight::InFlight<(Tuple, Instant)>;

/// Tuples a bolt subprocess may hold unacked before we stop sending more,
/// unless `topology.shellbolt.max.pending` says otherwise (Storm's
/// default there is 100, made for a JVM worker; a subprocess that answers
/// in bursts needs a window several bursts deep: 1,000 held our
/// multi-lang word count to ~80% of what 4,000 gives).
pub(super) const MAX_IN_FLIGHT: usize = 4000;

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
