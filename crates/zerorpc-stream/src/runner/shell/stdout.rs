//! A subprocess's stdout: read by a thread of its own, decoded there, and
//! handed to the task in batches; when to read (lingering) is decided here.

use super::*;

/// What a subprocess said.
pub(super) enum Event {
    Message(FromComponent),
    Stray(String),
    Closed,
}

/// What the reader thread decoded from one read of stdout; an error ends
/// it (the subprocess broke the protocol).
pub(super) type Events = Vec<Result<Event, Error>>;

/// Batches decoded from a subprocess's stdout and not yet taken, at most
/// (each from one read of at most [`READ_CHUNK`]: with the decoder's
/// message limit, the memory a fast subprocess can take).
pub(super) const STDOUT_CHUNKS: usize = 16;
const READ_CHUNK: usize = 64 * 1024;

/// With at least this many tuples in flight a bolt subprocess has a
/// backlog of work, and reading its answers can wait: see [`LINGER`].
const LINGER_BACKLOG: usize = 128;

/// How long at most the reader leaves a busy subprocess's stdout unread
/// after emptying it. A pipe that is polled (epoll, the reactor) wakes its
/// poller on every write, and a write into an empty pipe wakes a blocked
/// reader: answered at once, every message of a subprocess that writes
/// each message on its own (pystorm) pays a wake-up in its `write`
/// (measured: a pystorm bolt spent 2.4× the kernel time in `write` driven
/// by the reactor than by a batching driver). A thread that reads, then
/// waits while the pipe keeps filling, lets such answers gather: the
/// subprocess writes into a non-empty pipe nobody waits on, and its
/// backlog keeps it working meanwhile.
///
/// A subprocess that answers a burst in one write (ours) leaves the pipe
/// still after it: the reader sees no growth after one [`LINGER_STEP`]
/// and reads again. Measured once each on a shared machine (our
/// multi-lang word count, trees/s; a pystorm bolt, runner ÷ driver.py):
/// a fixed 1 ms wait 49.4 k, 1.20×; no wait 55–59 k, 0.67×; this 50.6 k,
/// 0.98× (1.02–1.06× in the full runs): close to the fixed wait on both,
/// which is a weak case for it; what the no-wait figure leaves on the
/// table for ours is still open.
///
/// That one look is not free either: it delays every burst by a
/// [`LINGER_STEP`], and with a bounded window of tuples in flight a delay
/// is lost throughput. So the reader learns ([`LingerPolicy`]): after a
/// few lingers in a row that saw the pipe still, it stops lingering for a
/// while, and looks again later (our word count, the same build: 89 k
/// trees/s lingering, 101 k never lingering).
///
/// Subprocesses that ask for task ids wait for our answer to each emit:
/// they never linger ([`NO_LINGER`]).
const LINGER: Duration = Duration::from_millis(1);

/// How often a lingering reader looks at how much its pipe holds.
const LINGER_STEP: Duration = Duration::from_micros(100);

/// The backlog value that turns lingering off for good.
pub(super) const NO_LINGER: usize = usize::MAX;

/// Whether lingering pays off for a subprocess, from what the last
/// lingers saw (sans-IO).
#[derive(Debug, Default)]
struct LingerPolicy {
    /// Reads left before lingering is tried again.
    skip: u32,
    /// The last pause (reads), doubled each time lingering fails again.
    pause: u32,
    /// Lingers in a row that saw the pipe still.
    misses: u32,
}

impl LingerPolicy {
    /// Lingers in a row that see no growth before a pause.
    const MISSES: u32 = 4;
    const FIRST_PAUSE: u32 = 16;
    const MAX_PAUSE: u32 = 1024;

    /// Whether to linger after this read.
    fn try_linger(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// What a linger saw: whether the pipe grew while it waited.
    fn lingered(&mut self, grew: bool) {
        if grew {
            self.misses = 0;
            self.pause = 0;
            return;
        }
        self.misses += 1;
        if self.misses >= Self::MISSES {
            self.misses = 0;
            self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::MAX_PAUSE);
            self.skip = self.pause;
        }
    }
}

/// The reader thread of a subprocess's stdout: blocking reads, decoded
/// here (off the task, which has the routing to do) and handed to the task
/// a batch per read; the end of the channel is the end of stdout.
pub(super) fn read_stdout(
    mut pipe: std::io::PipeReader,
    mut decoder: Decoder,
    tx: mpsc::Sender<Events>,
    backlog: Arc<AtomicUsize>,
) {
    use std::io::Read;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_batch = 0;
    let mut policy = LingerPolicy::default();
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading a subprocess's stdout");
                return;
            }
        };
        decoder.feed(&buf[..n]);
        let (batch, broken) = decode_ready(&mut decoder, last_batch);
        last_batch = batch.len();
        if !batch.is_empty() && tx.blocking_send(batch).is_err() || broken {
            return;
        }
        let b = backlog.load(Relaxed);
        if n < READ_CHUNK && b >= LINGER_BACKLOG && b != NO_LINGER && policy.try_linger() {
            policy.lingered(linger(&pipe) > 1);
        }
    }
}

/// Every event the decoder holds; `true` with it when the last is an
/// error (nothing after it is read). `hint`: the last batch's length (a
/// batch that grows by doubling copies its events each time).
fn decode_ready(decoder: &mut Decoder, hint: usize) -> (Events, bool) {
    let mut batch = Vec::with_capacity(hint.min(4096));
    loop {
        let event = match decoder.next_decoded::<WorkerWire>() {
            Ok(Some(Decoded::Message(w))) => FromComponent::from_wire(w).map(Event::Message),
            Ok(Some(Decoded::Stray(line))) => Ok(Event::Stray(line)),
            Ok(None) => return (batch, false),
            Err(e) => Err(e),
        };
        let broken = event.is_err();
        batch.push(event);
        if broken {
            return (batch, true);
        }
    }
}

/// Waits while the pipe fills (up to [`LINGER`], or a chunk's worth);
/// the number of looks at the pipe it took.
fn linger(pipe: &std::io::PipeReader) -> u32 {
    let Some(mut held) = pipe_bytes(pipe) else {
        std::thread::sleep(LINGER);
        return 0;
    };
    let until = Instant::now() + LINGER;
    let mut looks = 0;
    loop {
        std::thread::sleep(LINGER_STEP);
        looks += 1;
        match pipe_bytes(pipe) {
            Some(now) if now > held && now < READ_CHUNK && Instant::now() < until => held = now,
            _ => return looks,
        }
    }
}

/// Bytes waiting in a pipe (`FIONREAD`); `None` where that cannot be
/// asked.
#[cfg(unix)]
fn pipe_bytes(pipe: &std::io::PipeReader) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on a descriptor we own writes one c_int.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    (r == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(not(unix))]
fn pipe_bytes(_pipe: &std::io::PipeReader) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn a_lingering_reader_sees_what_the_pipe_holds_and_stops_when_it_is_still() {
        use std::io::Write;
        let (r, mut w) = std::io::pipe().unwrap();
        assert_eq!(pipe_bytes(&r), Some(0));
        w.write_all(b"0123456789").unwrap();
        assert_eq!(pipe_bytes(&r), Some(10));
        // Nothing more comes: the linger ends at its first look.
        assert_eq!(linger(&r), 1);
    }

    #[test]
    fn lingering_that_never_sees_growth_pauses_longer_each_time() {
        let mut p = LingerPolicy::default();
        // Lingering that pays goes on.
        for _ in 0..10 {
            assert!(p.try_linger());
            p.lingered(true);
        }
        // Four still pipes in a row: 16 reads without lingering.
        let pause = |p: &mut LingerPolicy| {
            for _ in 0..LingerPolicy::MISSES {
                assert!(p.try_linger());
                p.lingered(false);
            }
            let mut skipped = 0;
            while !p.try_linger() {
                skipped += 1;
            }
            skipped
        };
        assert_eq!(pause(&mut p), 16);
        assert_eq!(pause(&mut p), 32);
        for _ in 0..10 {
            pause(&mut p);
        }
        assert_eq!(pause(&mut p), LingerPolicy::MAX_PAUSE);
        // One linger that sees the pipe fill starts over.
        p.lingered(true);
        assert_eq!(pause(&mut p), 16);
    }
}
