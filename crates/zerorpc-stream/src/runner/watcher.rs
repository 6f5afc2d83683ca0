//! Watching a run: statistics, stop conditions, draining and errors, and
//! reporting the statistics (file and terminal table) at the end.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::io::Phase;
use super::metrics::RunCounters;
use super::RunOptions;
use crate::error::Error;
use crate::stats::RunStats;

/// Watches a run: statistics, stop conditions, draining, errors.
pub(super) async fn watch_run(
    mut set: JoinSet<(String, Result<(), Error>)>,
    phase: watch::Sender<Phase>,
    counters: RunCounters,
    timeout: Duration,
    options: &RunOptions,
) -> Result<RunStats, Error> {
    let start = Instant::now();
    let grace = (timeout + Duration::from_secs(5)).min(Duration::from_secs(60));
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut last_stats = start;
    let mut last_activity = (counters.activity(), start);
    let mut draining_since: Option<Instant> = None;
    let mut first_error: Option<Error> = None;
    let mut ctrl_c = std::pin::pin!(async {
        if options.ctrl_c && tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await
    });
    loop {
        let mut stop = false;
        tokio::select! {
            _ = ticker.tick() => {}
            joined = set.join_next() => match joined {
                None => break,
                Some(Ok((_, Ok(())))) => {}
                Some(Ok((component, Err(e)))) => {
                    tracing::error!(component, "{e}");
                    first_error.get_or_insert(e);
                    stop = true;
                }
                Some(Err(e)) => {
                    let e = Error::Component {
                        component: "runner".into(),
                        source: format!("a task failed: {e}").into(),
                    };
                    tracing::error!("{e}");
                    first_error.get_or_insert(e);
                    stop = true;
                }
            },
            _ = &mut ctrl_c => {
                tracing::info!("interrupted: draining");
                stop = true;
            }
        }
        let now = Instant::now();
        if let Some(d) = options.duration {
            stop |= now - start >= d;
        }
        let activity = counters.activity();
        if activity != last_activity.0 || counters.trees.pending.load(Relaxed) > 0 {
            last_activity = (activity, now);
        } else if let Some(idle) = options.stop_when_idle {
            stop |= now - last_activity.1 >= idle;
        }
        if stop && draining_since.is_none() {
            draining_since = Some(now);
            let _ = phase.send(Phase::Draining);
        }
        if let Some(since) = draining_since {
            if now - since >= grace && *phase.borrow() != Phase::Halt {
                tracing::warn!("trees still pending after {grace:?} of draining: halting");
                let _ = phase.send(Phase::Halt);
            }
        }
        if now - last_stats >= options.stats_every {
            last_stats = now;
            report(&counters.snapshot(now - start), options)?;
        }
    }
    let stats = counters.snapshot(start.elapsed());
    report(&stats, options)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// Writes the statistics file and the terminal table.
fn report(stats: &RunStats, options: &RunOptions) -> Result<(), Error> {
    if let Some(path) = &options.stats_json {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(stats)
            .map_err(|e| Error::io("statistics", std::io::Error::other(e)))?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io(format!("statistics file {}", path.display()), e))?;
    }
    if options.terminal {
        eprintln!("{}", crate::stats::render_table(stats));
    }
    Ok(())
}
