//! The hub's answer to full send queues: a call a worker's queue refused
//! goes back to the head of the line, a heartbeat to a waiting caller is
//! tried again, and a full worker takes no calls until it has room.

use super::*;

impl HubCore {
    /// Messages the driver could not hand to a peer because its send queue
    /// was full, in the order they were produced.
    ///
    /// * A new call a worker's queue refused was never sent: it leaves the
    ///   worker's calls in flight and goes back to the head of the waiting
    ///   line, and the worker takes no new call until
    ///   [`HubCore::worker_ready`]. Any other event for that worker is lost
    ///   (counted in [`HubStats::dropped`]), and the worker is also marked
    ///   full.
    /// * A heartbeat to the caller of a waiting call is tried again at the
    ///   next [`HubCore::handle_timeout`] instead of an interval later, so
    ///   a burst of waiting calls does not make their callers give up.
    ///   Other events for a client are lost (counted).
    ///
    /// Returns the workers newly marked full: the driver reports each back
    /// with [`HubCore::worker_ready`] once its queue has room.
    pub fn refused(&mut self, outputs: Vec<HubOutput>, now: Instant) -> Vec<Bytes> {
        let mut newly_full = Vec::new();
        for out in outputs.into_iter().rev() {
            match out {
                HubOutput::ToWorker(m) => {
                    let Some(worker) = m.frames().first().cloned() else {
                        continue;
                    };
                    if let Some(w) = self.workers.get_mut(&worker) {
                        if !w.full {
                            w.full = true;
                            newly_full.push(worker.clone());
                        }
                    }
                    if !self.take_back(&worker, &m, now) {
                        self.dropped += 1;
                    }
                }
                HubOutput::ToClient(m) => {
                    if !self.retry_heartbeat(&m, now) {
                        self.dropped += 1;
                    }
                }
            }
        }
        if !newly_full.is_empty() {
            tracing::debug!(
                workers = newly_full.len(),
                waiting = self.waiting.len(),
                "worker send queue full: calls wait in the hub"
            );
        }
        self.dispatch_pending(now);
        newly_full
    }

    /// A worker's send queue has room again: it takes calls again.
    pub fn worker_ready(&mut self, id: &Bytes, now: Instant) {
        if let Some(w) = self.workers.get_mut(id) {
            w.full = false;
        }
        self.dispatch_pending(now);
    }

    /// If `m` (to `worker`) is a new call the hub dispatched, undo the
    /// dispatch and put the call back at the head of the line.
    fn take_back(&mut self, worker: &Bytes, m: &Message, now: Instant) -> bool {
        let frames = m.frames();
        let (Some(client), Some(payload)) = (frames.get(1), frames.last()) else {
            return false;
        };
        if frames.len() < 3 || client.is_empty() {
            return false;
        }
        let Ok(head) = Event::route_head(payload, self.limits, None) else {
            return false;
        };
        if head.response_to.is_some() {
            return false;
        }
        let key = (client.clone(), head.message_id);
        if self.channels.get(&key).is_none_or(|c| c.worker != worker) {
            return false;
        }
        let Some(chan) = self.channels.remove(&key) else {
            return false;
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
        self.line.push_front(key.clone());
        self.waiting.insert(
            key,
            Pending {
                envelope: chan.envelope,
                payload: payload.clone(),
                next_heartbeat: now + self.opts_heartbeat,
                last_heard: chan.last_activity,
            },
        );
        true
    }

    /// If `m` is a heartbeat to the caller of a waiting call, have it sent
    /// again at the next timeout.
    fn retry_heartbeat(&mut self, m: &Message, now: Instant) -> bool {
        let frames = m.frames();
        let (Some(client), Some(payload)) = (frames.first(), frames.last()) else {
            return false;
        };
        let Ok(head) = Event::route_head(payload, self.limits, None) else {
            return false;
        };
        if EventKind::of(head.name) != Some(EventKind::Heartbeat) {
            return false;
        }
        let Some(ch) = head.response_to else {
            return false;
        };
        match self.waiting.get_mut(&(client.clone(), ch)) {
            Some(p) => {
                p.next_heartbeat = now;
                true
            }
            None => false,
        }
    }
}
