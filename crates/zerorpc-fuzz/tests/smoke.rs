//! Every fuzz target over its committed seeds and deterministic mutations
//! of them (bit flips, cuts, insertions, splices), 20 s each (see
//! [`budget`]): the CI smoke. Not coverage-guided (that is `fuzz/run.sh`, under
//! libFuzzer), but a parser that panics near a seed fails every change.
//! A failing input is written to `target/fuzz-smoke-failures/` and printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut all: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (seeds: cargo run -p zerorpc-fuzz --example seeds)",
                dir.display()
            )
        })
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    all.sort();
    assert!(!all.is_empty(), "{target} has no seeds");
    all
}

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xFF, 0x7F, 0x80, b'"', b'\n'][rng.below(6)];
            }
            2 => {
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
            }
            3 => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let i = rng.below(v.len() + 1);
                v.splice(i..i, other[from..].iter().copied());
            }
            _ if v.len() > 1 => {
                let i = rng.below(v.len());
                let j = rng.below(v.len());
                v.swap(i, j);
            }
            _ => {}
        }
    }
    v
}

/// How long each target's mutations run: 20 s (the fuzzing issue's CI
/// smoke), or `ZERORPC_FUZZ_SMOKE_SECS`. The targets share one thread per
/// core: 17 targets add about three minutes to the suite on 2 cores.
fn budget() -> Duration {
    let secs = std::env::var("ZERORPC_FUZZ_SMOKE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(20.0);
    Duration::from_secs_f64(secs)
}

fn run(target: &str, f: fn(&[u8])) -> u64 {
    let seeds = seeds(target);
    let check = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
            let dir =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-smoke-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(target);
            std::fs::write(&path, input).unwrap();
            panic!(
                "{target} failed on {} (input: {input:02x?})",
                path.display()
            );
        }
    };
    for s in &seeds {
        check(s);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    let t0 = Instant::now();
    let mut n = seeds.len() as u64;
    let budget = budget();
    while t0.elapsed() < budget {
        check(&mutate(&mut rng, &seeds));
        n += 1;
    }
    n
}

#[test]
fn every_target_survives_its_seeds_and_their_neighbours() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((name, f)) = zerorpc_fuzz::TARGETS.get(i) else {
                        return;
                    };
                    let n = run(name, *f);
                    eprintln!("{name}: {n} inputs");
                    assert!(n > 100, "{name} ran only {n} inputs");
                })
            })
            .collect();
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}
