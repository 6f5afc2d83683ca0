//! A shell spout task: `next`, `ack` and `fail` to the subprocess, each
//! answered until its `sync`.

use super::liveness::{cpu_ticks, heartbeat_period, Liveness, Verdict};
use super::stdout::Event;
use super::*;

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
