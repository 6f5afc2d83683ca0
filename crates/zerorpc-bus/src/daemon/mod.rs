//! The bus daemon (`zerorpc bus serve`).
//!
//! Publishers send envelopes to the **ingest** endpoint (a ZeroRPC service,
//! see [`crate::protocol`]): any number of them, from any thread or
//! process, with nothing to declare or distribute. Each envelope is checked
//! (size, JSON, schema, signature when configured), given the next
//! sequence number and written to the durable log; only **then** is it
//! confirmed to its publisher and fanned out:
//! * on the fedmsg-wire **PUB** endpoint (`[topic, envelope]` frames, what
//!   `fedmsg.tail_messages`, `fedmsg-tail` and fedmsg consumers read; an
//!   unsigned envelope carries its `seq_id` there, as fedmsg's own store
//!   adds it, so fedmsg's `check_for_replay` works against our replay
//!   endpoint; a signed one is never altered);
//! * to our own subscribers, which read through the ingest endpoint from
//!   any sequence number: recent messages from memory, older ones from the
//!   log, then live, flow-controlled, so they never miss one;
//! * fedmsg's REQ/REP **replay** queries are answered from the log.
//!
//! Writes are group-committed: one thread owns the log and takes every
//! batch that arrived while the previous commit was being synced.

mod fedmsg;
mod service;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use zerorpc::Server;

pub use service::BusService;
#[doc(hidden)]
pub use service::BusServiceClient;

use crate::crypto::Validator;
use crate::schema::SchemaRegistry;
use crate::store::{Store, StoreOptions};
use crate::Error;

/// How a daemon is set up. [`DaemonOptions::new`] gives fedmsg's ports on
/// localhost and a store directory.
#[derive(Debug)]
pub struct DaemonOptions {
    /// Where publishers and our subscribers connect (ZeroRPC).
    pub ingest: String,
    /// The fedmsg-wire PUB endpoint.
    pub publish: String,
    /// fedmsg's REQ/REP replay endpoint (`None`: not served).
    pub replay: Option<String>,
    /// The durable log's directory.
    pub store: PathBuf,
    /// Messages older than this are pruned (`None`: kept).
    pub retention: Option<Duration>,
    /// Largest envelope accepted, in bytes.
    pub max_message_bytes: usize,
    /// Schemas checked on ingest.
    pub schemas: Option<Arc<SchemaRegistry>>,
    /// Signatures checked on ingest (unsigned or invalid: rejected).
    pub validator: Option<Arc<Validator>>,
    /// How many recent messages are kept in memory for subscribers (and
    /// at most 64 MiB of them).
    pub recent: usize,
}

impl DaemonOptions {
    /// Defaults around a store directory: ingest on
    /// `tcp://127.0.0.1:9941`, PUB on `tcp://127.0.0.1:9940`, replay on
    /// `tcp://127.0.0.1:9943`, 7 days of retention, 1 MiB messages.
    pub fn new(store: impl Into<PathBuf>) -> DaemonOptions {
        DaemonOptions {
            ingest: "tcp://127.0.0.1:9941".into(),
            publish: "tcp://127.0.0.1:9940".into(),
            replay: Some("tcp://127.0.0.1:9943".into()),
            store: store.into(),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            max_message_bytes: 1 << 20,
            schemas: None,
            validator: None,
            recent: 65_536,
        }
    }

    /// Every endpoint on `127.0.0.1` with a port the system chooses (tests,
    /// embedding).
    pub fn ephemeral(store: impl Into<PathBuf>) -> DaemonOptions {
        DaemonOptions {
            ingest: "tcp://127.0.0.1:0".into(),
            publish: "tcp://127.0.0.1:0".into(),
            replay: Some("tcp://127.0.0.1:0".into()),
            ..DaemonOptions::new(store)
        }
    }
}

/// A running daemon. Dropping it stops it (the log stays consistent: every
/// confirmed message is already synced).
pub struct Daemon {
    shared: Arc<writer::Shared>,
    server: Arc<Server>,
    ingest: String,
    publish: String,
    replay: Option<String>,
    /// The fedmsg PUB and replay sockets, closed by [`Daemon::shutdown`]
    /// (the ingest server's is closed through `server`).
    fanout: Arc<zerorpc::zmtp::PubSocket>,
    replay_socket: Option<Arc<zerorpc::zmtp::RouterSocket>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Opens the log, binds every endpoint and starts serving.
    pub async fn start(opts: DaemonOptions) -> Result<Daemon, Error> {
        let store = Store::open(
            &opts.store,
            StoreOptions {
                retention: opts.retention,
                ..StoreOptions::default()
            },
        )?;
        let publisher = fedmsg::Fanout::bind(&opts.publish).await?;
        let shared = writer::Shared::start(Arc::new(store), &opts, publisher.sender())?;
        let fanout = publisher.socket();
        let mut tasks = vec![tokio::spawn(publisher.run(shared.clone()))];
        let (replay, replay_socket) = match &opts.replay {
            Some(ep) => {
                let (bound, socket, task) = fedmsg::serve_replay(ep, shared.clone()).await?;
                tasks.push(task);
                (Some(bound), Some(socket))
            }
            None => (None, None),
        };
        let pub_ep = shared.publish_endpoint();
        let server = Arc::new(Server::with_options(
            BusService::new(shared.clone(), pub_ep.clone(), replay.clone()),
            service::server_options(opts.max_message_bytes),
        ));
        let ingest = server
            .bind(&opts.ingest)
            .await
            .map_err(|e| Error::Transport(format!("ingest {}: {e}", opts.ingest)))?
            .to_string();
        let running = server.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = running.run().await {
                tracing::error!("bus ingest server stopped: {e}");
            }
        }));
        if opts.retention.is_some() {
            tasks.push(tokio::spawn(writer::prune_periodically(shared.clone())));
        }
        tracing::info!(
            ingest = %ingest, publish = %pub_ep, replay = ?replay,
            last_seq = shared.last_seq(), "bus daemon serving"
        );
        Ok(Daemon {
            shared,
            server,
            ingest,
            publish: pub_ep,
            replay,
            fanout,
            replay_socket,
            tasks,
        })
    }

    /// The ingest endpoint as bound (publishers' and subscribers' `--bus`).
    pub fn ingest_endpoint(&self) -> &str {
        &self.ingest
    }

    /// The fedmsg PUB endpoint as bound.
    pub fn publish_endpoint(&self) -> &str {
        &self.publish
    }

    /// The fedmsg replay endpoint as bound.
    pub fn replay_endpoint(&self) -> Option<&str> {
        self.replay.as_deref()
    }

    /// The daemon's counters and positions.
    pub fn info(&self) -> crate::protocol::BusInfo {
        self.shared
            .info(&self.publish, self.replay.as_deref().unwrap_or(""))
    }

    /// Stops serving and waits for the log writer to finish its last
    /// commit.
    ///
    /// Its endpoints are released when this returns: a daemon started
    /// next on the same endpoints (a restart in the same process) can
    /// bind them.
    pub async fn shutdown(mut self) {
        self.stop();
        self.server.close().await;
        self.fanout.close().await;
        if let Some(replay) = &self.replay_socket {
            replay.close().await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.close()).await;
    }

    fn stop(&mut self) {
        self.server.shutdown();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
