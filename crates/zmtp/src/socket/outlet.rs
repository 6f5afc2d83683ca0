//! [`Outlet`]: a connection's write side (its stream, encoder, and what is
//! encoded but not written yet), shared by the connection's writer task
//! and, while that task is idle, the tasks that send on the connection.
//!
//! A message sent to an idle connection used to wake the writer task,
//! which encoded and wrote it: a hand-off per message, on each side of a
//! call, which a sequential caller pays in full. Now:
//! - **An idle connection is written by its sender.** The queue gives the
//!   outlet a message only while the writer task waits on an empty queue
//!   with nothing of its own to write (see [`super::queue::Direct`]); the
//!   sender encodes and writes it without waiting. What the stream does
//!   not take at once, or an error, is left here for the writer task,
//!   which the queue wakes.
//! - **A delivery's answers leave together.** While the connection's
//!   reader delivers what it read ([`Outlet::cork`]), what is sent on the
//!   connection is only encoded; the reader writes it all in one write
//!   when the delivery is done ([`Outlet::uncork`]). A server answering
//!   quick calls on its reader thus reads, serves and writes on one task.
//!   (Up to [`HOLD_MAX`] bytes: past it, what is sent is queued, under
//!   the queue's limits.)
//! - **A busy connection declines**, so that its messages still leave
//!   together through the writer task: when the writer's [`Coalesce`]
//!   would wait for more, or the reader's last delivery held several
//!   messages (the tasks it woke are about to send one after another).
//!
//! On one connection, 16 calls in flight, sequential p50 11.4 → 11.0 µs
//! (a sequential call 31,926 → 29,659 instructions), calls/s level at 16
//! and 256 in flight, 64 KiB calls 1.2–1.4× → 1.5–1.8× raw libzmq:
//! `bench-results/2026-12-07-outlet.md`.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;

use super::coalesce::Coalesce;
use super::queue::{Direct, Queue, Taken};
use crate::codec::{Encoder, WriteBuffer};
use crate::error::{Result, ZmtpError};
use crate::message::Message;
use crate::transport::BoxWrite;

/// What a delivery holds at most (bytes encoded, not written) before what
/// it sends goes to the queue instead, under the queue's limits.
pub(crate) const HOLD_MAX: usize = 256 * 1024;

/// See the module's doc.
pub(crate) struct Outlet(Mutex<Side>);

pub(crate) struct Side {
    pub(crate) write: BoxWrite,
    pub(crate) encoder: Encoder,
    /// Encoded, not written yet.
    pub(crate) buf: WriteBuffer,
    pub(crate) coalesce: Coalesce,
    /// A sender's write failed: the writer task ends the connection with it.
    pub(crate) failed: Option<ZmtpError>,
    /// The writer task has ended: senders queue (for nobody) instead.
    pub(crate) closed: bool,
    /// The connection's reader is delivering what it read: a message
    /// taken now is only encoded, to leave with the others in one write
    /// when the reader is done ([`Outlet::uncork`]).
    corked: bool,
    /// Messages encoded while corked, not written yet.
    held: usize,
    /// The reader's last delivery held several messages: their answers
    /// (sent from the tasks it woke) are about to follow one another, and
    /// leave together through the writer task instead.
    several: bool,
}

impl Outlet {
    pub(crate) fn new(write: BoxWrite, encoder: Encoder) -> Self {
        Outlet(Mutex::new(Side {
            write,
            encoder,
            buf: WriteBuffer::new(),
            coalesce: Coalesce::default(),
            failed: None,
            closed: false,
            corked: false,
            held: 0,
            several: false,
        }))
    }

    /// The connection's reader starts delivering `n` messages: what its
    /// deliveries send waits in the buffer (see [`Outlet::uncork`]).
    pub(crate) fn cork(&self, n: usize) {
        let mut side = self.lock();
        side.corked = true;
        side.several = n > 1;
    }

    /// The reader has delivered: writes what the deliveries sent, in one
    /// write, on the reader's task if the writer task is idle (a claim on
    /// `queue`), else leaves it to the writer task. Returns whether the
    /// deliveries sent anything.
    pub(crate) fn uncork(&self, queue: &Queue<Message>) -> bool {
        let held = {
            let mut side = self.lock();
            side.corked = false;
            std::mem::take(&mut side.held)
        };
        if held == 0 {
            return false;
        }
        let wrote = queue.claim(|| {
            let mut side = self.lock();
            let start = Instant::now();
            side.write_now();
            side.coalesce.wrote(held, false, start, Instant::now());
            side.left_over()
        });
        if !wrote {
            // (busy: it writes them with its own)
            queue.kick();
        }
        true
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Side> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what is buffered, waiting for the stream (the writer task).
    pub(crate) async fn flush(&self) -> Result<()> {
        std::future::poll_fn(|cx| self.lock().poll_flush(cx)).await
    }
}

impl Side {
    /// Encodes `msg` into the buffer; a failure is kept for the writer
    /// task. Returns whether it was encoded.
    fn encode(&mut self, msg: &Message) -> bool {
        match self.encoder.encode_message(msg, &mut self.buf) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    /// Writes what the stream takes now, without waiting: the rest is
    /// left to the writer task, whose own poll registers its wake-up; a
    /// failure is kept for it.
    fn write_now(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(Err(e)) = self.poll_flush(&mut cx) {
            self.failed = Some(e);
        }
    }

    /// Whether the writer task has work left: bytes or a failure.
    fn left_over(&self) -> bool {
        !self.buf.is_empty() || self.failed.is_some()
    }

    /// Writes buffered bytes until none are left or the stream is full.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while !self.buf.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let k = self.buf.io_slices(&mut slices);
            let n = match Pin::new(&mut self.write).poll_write_vectored(cx, &slices[..k]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(ZmtpError::ConnectionClosed));
            }
            self.buf.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl Direct<Message> for Outlet {
    fn take(&self, msg: Message) -> Taken<Message> {
        // (uncontended: the writer task is parked, and the queue lets one
        // sender in at a time)
        let Ok(mut side) = self.0.try_lock() else {
            return Taken::Declined(msg);
        };
        if side.closed || side.failed.is_some() {
            return Taken::Declined(msg);
        }
        if side.corked {
            if side.buf.len() >= HOLD_MAX {
                return Taken::Declined(msg);
            }
            if side.encode(&msg) {
                side.held += 1;
            }
            return Taken::Done {
                wake: side.failed.is_some(),
            };
        }
        let start = Instant::now();
        if side.several || !side.buf.is_empty() || side.coalesce.should_wait(1, start) {
            return Taken::Declined(msg);
        }
        if side.encode(&msg) {
            side.write_now();
            side.coalesce.wrote(1, false, start, Instant::now());
        }
        Taken::Done {
            wake: side.left_over(),
        }
    }
}
