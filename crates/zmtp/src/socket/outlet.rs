//! [`Outlet`]: a connection's write side (its stream, encoder, and what is
//! encoded but not written yet), shared by the connection's writer task
//! and, while that task is idle, the tasks that send on the connection.
//!
//! A message sent to an idle connection used to wake the writer task,
//! which encoded and wrote it: a hand-off per message, on each side of a
//! call, which a sequential caller pays in full (a wake-up is several µs
//! when the writer runs on the other worker). Now the sender encodes and
//! writes it itself, without waiting: the queue gives it the message only
//! while the writer task waits on an empty queue, with nothing of its
//! own to write (see [`super::queue::Direct`]). What the stream does not
//! take at once, or an error, is left here for the writer task, which the
//! queue wakes. A busy connection (the writer's [`Coalesce`] would wait
//! for more messages) declines, so that its messages still leave together
//! in one write.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;

use super::coalesce::Coalesce;
use super::queue::{Direct, Taken};
use crate::codec::{Encoder, WriteBuffer};
use crate::error::{Result, ZmtpError};
use crate::message::Message;
use crate::transport::BoxWrite;

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
        }))
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
        let start = Instant::now();
        if side.closed
            || side.failed.is_some()
            || !side.buf.is_empty()
            || side.coalesce.should_wait(1, start)
        {
            return Taken::Declined(msg);
        }
        let side = &mut *side;
        if let Err(e) = side.encoder.encode_message(&msg, &mut side.buf) {
            side.failed = Some(e);
            return Taken::Done { wake: true };
        }
        // Without waiting: what the stream does not take now is left to
        // the writer task, whose own poll registers its wake-up.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(Err(e)) = side.poll_flush(&mut cx) {
            side.failed = Some(e);
        }
        side.coalesce.wrote(1, false, start, Instant::now());
        Taken::Done {
            wake: !side.buf.is_empty() || side.failed.is_some(),
        }
    }
}
