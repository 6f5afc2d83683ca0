//! Rust component instances as tokio tasks: the loop around a [`Bolt`] or
//! a [`Spout`], with panics caught (the instance is made again and
//! prepared, its tuple failed) and errors counted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::io::{BoltIo, SpoutControl, SpoutIo};
use crate::component::{Bolt, BoltCollector, Spout, SpoutCollector, SpoutWaker, TaskContext};
use crate::error::{BoxError, Error};

/// Makes a bolt instance.
pub(crate) type MakeBolt = Arc<dyn Fn() -> Result<Box<dyn Bolt>, BoxError> + Send + Sync>;
/// Makes a spout instance.
pub(crate) type MakeSpout = Arc<dyn Fn() -> Result<Box<dyn Spout>, BoxError> + Send + Sync>;

/// Time one `process` call in this many (the clock costs as much as a
/// small bolt's work).
const SAMPLE_EVERY: u32 = 16;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

fn component_error(ctx: &TaskContext, source: BoxError) -> Error {
    Error::Component {
        component: ctx.component.clone(),
        source,
    }
}

fn prepared_bolt(make: &MakeBolt, ctx: &TaskContext) -> Result<Box<dyn Bolt>, Error> {
    let mut bolt = make().map_err(|e| component_error(ctx, e))?;
    bolt.prepare(ctx).map_err(|e| component_error(ctx, e))?;
    Ok(bolt)
}

/// Runs one bolt instance until its input ends.
pub(crate) async fn run_bolt(
    first: Box<dyn Bolt>,
    make: MakeBolt,
    ctx: TaskContext,
    mut io: BoltIo,
) -> Result<(), Error> {
    let mut bolt = first;
    bolt.prepare(&ctx).map_err(|e| component_error(&ctx, e))?;
    let auto_ack = bolt.auto_ack();
    let mut n: u32 = 0;
    while let Some(tuple) = io.recv().await {
        n = n.wrapping_add(1);
        let start = n.is_multiple_of(SAMPLE_EVERY).then(Instant::now);
        let tick = tuple.is_tick();
        let result = {
            let mut out = BoltCollector::new(io.sink());
            catch_unwind(AssertUnwindSafe(|| {
                if tick {
                    bolt.tick(&mut out)
                } else {
                    bolt.process(&tuple, &mut out)
                }
            }))
        };
        match result {
            Ok(Ok(())) => {
                if auto_ack && !tick {
                    io.sink().ack(&tuple);
                }
            }
            Ok(Err(e)) => {
                io.sink().report_error(&format!("{e}"));
                if auto_ack && !tick {
                    io.sink().fail(&tuple);
                }
            }
            Err(panic) => {
                let msg = panic_message(&*panic);
                io.sink().report_error(&format!(
                    "panicked: {msg}; the instance is made again and its tuple failed"
                ));
                if !tick && !tuple.done.get() {
                    io.sink().fail(&tuple);
                }
                io.restarted();
                bolt = prepared_bolt(&make, &ctx)?;
            }
        }
        if !tick {
            io.executed(start.map(|s| s.elapsed()));
        }
    }
    io.flush().await;
    bolt.cleanup();
    Ok(())
}

/// How long an idle spout sleeps at most between `next_tuple` calls.
const IDLE_MAX: Duration = Duration::from_millis(20);
/// `next_tuple` calls per round between flushes.
const ROUND: usize = 64;

/// Runs one spout instance until the run drains or halts.
pub(crate) async fn run_spout(
    first: Box<dyn Spout>,
    make: MakeSpout,
    ctx: TaskContext,
    mut io: SpoutIo,
) -> Result<(), Error> {
    let mut spout = first;
    let waker = SpoutWaker {
        notify: Some(io.waker.clone()),
    };
    spout
        .open(&ctx, waker.clone())
        .map_err(|e| component_error(&ctx, e))?;
    spout.activate();
    let mut idle = Duration::ZERO;
    loop {
        // Acks and fails first: they free `max.spout.pending` room.
        while let Some(c) = io.try_control() {
            spout = control(spout, c, &make, &ctx, &waker, &mut io)?;
        }
        let mut emitted_any = false;
        if io.may_emit() {
            for _ in 0..ROUND {
                let before = io.emitted();
                let r = {
                    let mut out = SpoutCollector::new(io.sink());
                    catch_unwind(AssertUnwindSafe(|| spout.next_tuple(&mut out)))
                };
                spout = outcome(spout, r, &make, &ctx, &waker, &mut io)?;
                if io.emitted() == before {
                    break;
                }
                emitted_any = true;
                if !io.may_emit() {
                    break;
                }
            }
        }
        io.flush().await;
        let deadline = if emitted_any {
            idle = Duration::ZERO;
            if io.may_emit() {
                continue;
            }
            // At max pending: wait for an ack.
            Instant::now() + Duration::from_secs(3600)
        } else if io.may_emit() {
            idle = (idle * 2).clamp(Duration::from_micros(500), IDLE_MAX);
            Instant::now() + idle
        } else {
            Instant::now() + Duration::from_secs(3600)
        };
        match io.recv_control(deadline).await {
            Ok(Some(c)) => spout = control(spout, c, &make, &ctx, &waker, &mut io)?,
            Ok(None) => {}
            Err(()) => break,
        }
    }
    spout.deactivate();
    spout.close();
    io.flush().await;
    Ok(())
}

fn control(
    mut spout: Box<dyn Spout>,
    c: SpoutControl,
    make: &MakeSpout,
    ctx: &TaskContext,
    waker: &SpoutWaker,
    io: &mut SpoutIo,
) -> Result<Box<dyn Spout>, Error> {
    let r = {
        let mut out = SpoutCollector::new(io.sink());
        catch_unwind(AssertUnwindSafe(|| match c {
            SpoutControl::Ack(id) => spout.ack(id, &mut out),
            SpoutControl::Fail(id) => spout.fail(id, &mut out),
        }))
    };
    outcome(spout, r, make, ctx, waker, io)
}

/// Deals with what a spout call returned: errors are reported; a panic
/// makes the instance again (its trees in flight still end, and their acks
/// and fails reach the new instance).
fn outcome(
    spout: Box<dyn Spout>,
    r: std::thread::Result<Result<(), BoxError>>,
    make: &MakeSpout,
    ctx: &TaskContext,
    waker: &SpoutWaker,
    io: &mut SpoutIo,
) -> Result<Box<dyn Spout>, Error> {
    match r {
        Ok(Ok(())) => Ok(spout),
        Ok(Err(e)) => {
            io.sink().report_error(&format!("{e}"));
            Ok(spout)
        }
        Err(panic) => {
            let msg = panic_message(&*panic);
            io.sink()
                .report_error(&format!("panicked: {msg}; the instance is made again"));
            io.restarted();
            let mut s = make().map_err(|e| component_error(ctx, e))?;
            s.open(ctx, waker.clone())
                .map_err(|e| component_error(ctx, e))?;
            s.activate();
            Ok(s)
        }
    }
}
