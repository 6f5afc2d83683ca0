//! The daemon's fedmsg-facing endpoints: the PUB fan-out (`[topic,
//! envelope]`, what fedmsg subscribers read) and fedmsg's REQ/REP replay.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zerorpc::zmtp::{Message as Frames, PubSocket, RouterSocket, SocketOptions};

use super::writer::{Fresh, Shared};
use crate::replay::{self, ReplayQuery};
use crate::store::Record;
use crate::Error;

/// Messages waiting for the PUB socket (the log writer waits beyond: the
/// queue holds at most this many envelopes in memory).
const FANOUT_QUEUE: usize = 4096;
/// Most messages in one replay answer (fedmsg's client takes them all in
/// one multipart message).
const REPLAY_MAX: usize = 10_000;
/// Largest replay query.
const REPLAY_QUERY_MAX: u64 = 64 * 1024;

/// The PUB endpoint and the queue the log writer feeds it through.
pub(crate) struct Fanout {
    socket: Arc<PubSocket>,
    endpoint: String,
    tx: mpsc::Sender<Fresh>,
    rx: mpsc::Receiver<Fresh>,
}

impl Fanout {
    pub async fn bind(endpoint: &str) -> Result<Fanout, Error> {
        let socket = Arc::new(PubSocket::new());
        let bound = socket
            .bind(endpoint)
            .await
            .map_err(|e| Error::Transport(format!("publish {endpoint}: {e}")))?
            .to_string();
        let (tx, rx) = mpsc::channel(FANOUT_QUEUE);
        Ok(Fanout {
            socket,
            endpoint: bound,
            tx,
            rx,
        })
    }

    /// The bound endpoint and the writer's side of the queue.
    pub fn sender(&self) -> (String, mpsc::Sender<Fresh>) {
        (self.endpoint.clone(), self.tx.clone())
    }

    /// The PUB socket (to close it: see [`super::Daemon::shutdown`]).
    pub fn socket(&self) -> Arc<PubSocket> {
        self.socket.clone()
    }

    /// Sends every stored message, in order, as fedmsg frames.
    pub async fn run(self, shared: Arc<Shared>) {
        let Fanout {
            socket, mut rx, tx, ..
        } = self;
        drop(tx);
        let mut before = socket.dropped();
        while let Some((record, signed)) = rx.recv().await {
            if socket.peer_count() == 0 {
                // Nobody listens: PUB would drop it; spare the encoding.
                continue;
            }
            let body = fedmsg_wire(&record, signed);
            let frames = Frames::from_iter([Bytes::from(record.topic.clone()), Bytes::from(body)]);
            if let Err(e) = socket.send(frames) {
                tracing::warn!("bus PUB endpoint: {e}");
            }
            let now = socket.dropped();
            if now != before {
                shared
                    .pub_dropped
                    .fetch_add(now - before, Ordering::Relaxed);
                before = now;
            }
        }
    }
}

/// The envelope as fedmsg subscribers get it: an unsigned one gains
/// `seq_id` (as fedmsg's own store adds it, which its `check_for_replay`
/// reads); a signed one is sent as published, since its signature covers
/// every other key.
fn fedmsg_wire(record: &Record, signed: bool) -> String {
    if signed {
        return record.json.to_string();
    }
    replay::with_seq_id(&record.json, record.seq).unwrap_or_else(|e| {
        tracing::warn!(seq = record.seq, "bus PUB: cannot add seq_id: {e}");
        record.json.to_string()
    })
}

/// Serves fedmsg's replay queries (REQ/REP: `[query]` in, the messages'
/// frames or one `error: '...'` frame out): the bound endpoint, the
/// socket (to close it) and the task serving it.
pub(crate) async fn serve_replay(
    endpoint: &str,
    shared: Arc<Shared>,
) -> Result<(String, Arc<RouterSocket>, JoinHandle<()>), Error> {
    let mut opts = SocketOptions::default();
    opts.limits.max_message_size = REPLAY_QUERY_MAX;
    opts.limits.max_frames = 8;
    let socket = Arc::new(RouterSocket::with_options(opts));
    let bound = socket
        .bind(endpoint)
        .await
        .map_err(|e| Error::Transport(format!("replay {endpoint}: {e}")))?
        .to_string();
    let serving = socket.clone();
    let task = tokio::spawn(async move {
        let socket = serving;
        loop {
            let mut request = match socket.recv().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("bus replay endpoint stopped: {e}");
                    return;
                }
            };
            // [identity, (empty delimiter), query]
            let Some(identity) = request.pop_front() else {
                continue;
            };
            let query = request.frames().last().cloned().unwrap_or_default();
            let answer = answer(&shared, &query).await;
            let mut reply = Frames::from_iter([identity, Bytes::new()]);
            for frame in answer {
                reply.push_back(Bytes::from(frame));
            }
            if let Err(e) = socket.send(reply).await {
                tracing::warn!("bus replay: cannot answer: {e}");
            }
        }
    });
    Ok((bound, socket, task))
}

async fn answer(shared: &Arc<Shared>, query: &[u8]) -> Vec<String> {
    let parsed = match ReplayQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return vec![replay::error_reply(&e)],
    };
    let store = match shared.store() {
        Ok(s) => s,
        Err(e) => return vec![format!("error: '{e}'")],
    };
    match tokio::task::spawn_blocking(move || replay::answer(&store, &parsed, REPLAY_MAX)).await {
        Ok(Ok(frames)) => frames,
        Ok(Err(e)) => vec![replay::error_reply(&e)],
        Err(e) => vec![format!("error: 'replay failed: {e}'")],
    }
}
