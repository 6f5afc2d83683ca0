//! Whether a subprocess is alive, busy or stuck (sans-IO), and the CPU
//! time it reads that from.

use std::time::{Duration, Instant};

/// Whether a subprocess is alive, busy or stuck, from when it last sent a
/// message and whether its CPU time moves (sans-IO: the caller passes
/// `now` and the CPU reading).
#[derive(Debug)]
pub(crate) struct Liveness {
    timeout: Duration,
    last_message: Instant,
    last_cpu: Option<u64>,
    last_cpu_advance: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Alive,
    /// Silent this long, but working.
    Busy(Duration),
    /// Silent and idle this long.
    Stuck(Duration),
}

impl Liveness {
    pub(crate) fn new(timeout: Duration, now: Instant) -> Liveness {
        Liveness {
            timeout,
            last_message: now,
            last_cpu: None,
            last_cpu_advance: now,
        }
    }

    /// The subprocess sent something (or was just asked something it
    /// answers at once).
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_message = now;
    }

    pub(crate) fn check(&mut self, now: Instant, cpu: Option<u64>) -> Verdict {
        if let Some(c) = cpu {
            if self.last_cpu.is_some_and(|prev| c > prev) {
                self.last_cpu_advance = now;
            }
            self.last_cpu = Some(c);
        }
        let silent = now.saturating_duration_since(self.last_message);
        if silent < self.timeout {
            return Verdict::Alive;
        }
        let progress = self.last_message.max(self.last_cpu_advance);
        if now.saturating_duration_since(progress) >= self.timeout {
            Verdict::Stuck(silent)
        } else {
            Verdict::Busy(silent)
        }
    }
}

/// CPU time (user + system, in clock ticks) of a process, from
/// `/proc/<pid>/stat`; `None` where there is no procfs.
pub(super) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields count from the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

pub(super) fn heartbeat_period(timeout: Duration) -> Duration {
    (timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_but_working_is_busy_and_silent_and_idle_is_stuck() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = Liveness::new(Duration::from_secs(10), t0);
        assert_eq!(l.check(t0 + 5 * s, Some(100)), Verdict::Alive);
        // Silent for 12s, CPU moved since the last look: busy.
        assert_eq!(l.check(t0 + 12 * s, Some(900)), Verdict::Busy(12 * s));
        assert_eq!(l.check(t0 + 20 * s, Some(1700)), Verdict::Busy(20 * s));
        // CPU stops at 20s; stuck once 10s pass without either.
        assert_eq!(l.check(t0 + 25 * s, Some(1700)), Verdict::Busy(25 * s));
        assert_eq!(l.check(t0 + 30 * s, Some(1700)), Verdict::Stuck(30 * s));
        // A message resets it.
        l.heard(t0 + 31 * s);
        assert_eq!(l.check(t0 + 32 * s, Some(1700)), Verdict::Alive);
    }

    #[test]
    fn without_cpu_readings_silence_is_stuck() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(2), t0);
        assert_eq!(l.check(t0 + Duration::from_secs(1), None), Verdict::Alive);
        assert!(matches!(
            l.check(t0 + Duration::from_secs(3), None),
            Verdict::Stuck(_)
        ));
    }

    #[test]
    fn cpu_ticks_of_this_process() {
        let busy_until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < busy_until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(cpu_ticks(std::process::id()).is_some_and(|t| t > 0));
    }
}
