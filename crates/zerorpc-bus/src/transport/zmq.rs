//! Our ZeroMQ bus daemon as a transport: batches go to its `publish`
//! method and are confirmed once durable in its log. A batch lost on the
//! way (no heartbeat, a restarting daemon) is sent again until the confirm
//! timeout; the daemon recognises a retry by its `msg_id`, so nothing is
//! stored twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BoxFuture, Outgoing, Receipt, Transport};
use crate::daemon::BusServiceClient;
use crate::protocol::{DUPLICATE, REJECTED, UNAVAILABLE};
use crate::Error;

/// The transport's name in receipts.
pub const NAME: &str = "zmq";

/// A connection to the daemon's ingest endpoint.
#[derive(Clone)]
pub struct Daemon {
    client: BusServiceClient,
    confirm_timeout: Duration,
}

impl Daemon {
    /// Connects to the daemon at `ingest` (in the background: a publish
    /// made before it is up waits for it, within `confirm_timeout`).
    pub async fn connect(ingest: &str, confirm_timeout: Duration) -> Result<Daemon, Error> {
        let client = zerorpc::Client::connect(ingest).await?;
        Ok(Daemon {
            client: BusServiceClient::new(client.with_timeout(confirm_timeout)),
            confirm_timeout,
        })
    }
}

impl Transport for Daemon {
    fn name(&self) -> &str {
        NAME
    }

    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>> {
        let client = self.client.clone();
        let timeout = self.confirm_timeout;
        Box::pin(async move { send_batch(client, &batch, timeout).await })
    }
}

async fn send_batch(
    client: BusServiceClient,
    batch: &[Outgoing],
    timeout: Duration,
) -> Vec<Result<Receipt, Error>> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(20);
    let jsons: Vec<String> = batch.iter().map(|o| o.json.clone()).collect();
    let outcome = loop {
        match client.publish(jsons.clone()).await {
            Ok(outcomes) if outcomes.len() == batch.len() => break Ok(outcomes),
            Ok(outcomes) => {
                break Err(format!(
                    "the bus answered {} outcomes for {} messages",
                    outcomes.len(),
                    batch.len()
                ))
            }
            Err(e) if worth_retrying(&e) && Instant::now() + backoff < deadline => {
                tracing::debug!("bus publish lost ({e}); sending the batch again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    match outcome {
        Ok(outcomes) => batch
            .iter()
            .zip(outcomes)
            .map(|(o, (seq, status, detail))| {
                if status == REJECTED {
                    Err(Error::Rejected {
                        msg_id: o.message.msg_id.clone(),
                        reason: detail,
                    })
                } else {
                    Ok(Receipt {
                        transport: NAME.to_owned(),
                        seq: Some(seq),
                        duplicate: status == DUPLICATE,
                        alternate: false,
                    })
                }
            })
            .collect(),
        Err(why) => batch
            .iter()
            .map(|o| {
                Err(Error::Unconfirmed {
                    msg_id: o.message.msg_id.clone(),
                    reason: why.clone(),
                })
            })
            .collect(),
    }
}

/// A batch that may not have reached the log: lost on the way, or the
/// daemon said it stored nothing for now.
fn worth_retrying(e: &zerorpc::Error) -> bool {
    match e {
        zerorpc::Error::Remote(r) => r.name == UNAVAILABLE || e.is_lost(),
        _ => e.is_lost(),
    }
}
