#!/bin/sh
# Runs every fuzz target (or the ones named) under libFuzzer for SECONDS
# each, from its committed seeds (fuzz/seeds/T, read-only) and its working
# corpus (fuzz/corpus/T, not committed), and appends executions, coverage
# and findings to bench-results/fuzz-DATE.md. A crash leaves its input in
# fuzz/artifacts/T/: turn it into a seed (fuzz/seeds/T/) once fixed, so the
# smoke test (cargo test -p zerorpc-fuzz) keeps it.
#
#   fuzz/run.sh 120                 # every target, two minutes each
#   fuzz/run.sh 60 event channel    # some
#   RUNS=10000000 fuzz/run.sh 3600  # until ten million executions (or an hour)
#   FORK=2 RUNS=10000000 fuzz/run.sh 3600 curve   # on two cores (libFuzzer's -fork)
#
# Needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain, or
# RUSTC_BOOTSTRAP=1 on stable. No sanitizer by default (the code under
# test is safe Rust but for zmtp's two calls into its SIMD Salsa20, which
# touch memory only through references: panics, overflows in debug
# assertions, hangs and unbounded memory are what is looked for);
# SANITIZER=address to use one.
set -eu
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=${*:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^zerorpc-fuzz-targets$')}
out=../bench-results/fuzz-$(date -u +%Y-%m-%d).md
if [ ! -f "$out" ]; then
    printf '# Fuzzing, %s\n\n`fuzz/run.sh` on %s (%s cores), no sanitizer, -rss_limit_mb=2048, -timeout=10.\n\n| target | seconds | executions | exec/s | coverage (cov) | features (ft) | corpus | result |\n|---|---:|---:|---:|---:|---:|---:|---|\n' \
        "$(date -u +%Y-%m-%d)" "$(uname -n)" "$(nproc)" > "$out"
fi
toolchain=${FUZZ_TOOLCHAIN:-+nightly}
for t in $targets; do
    mkdir -p "corpus/$t" "seeds/$t"
    log=$(mktemp)
    result=ok
    cargo $toolchain fuzz run --sanitizer "${SANITIZER:-none}" --release "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" ${RUNS:+-runs=$RUNS} ${FORK:+-fork=$FORK} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        > "$log" 2>&1 || result="FAILED (see fuzz/artifacts/$t)"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(ls "corpus/$t" | wc -l)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}')
    if [ -n "${FORK:-}" ]; then
        # -fork: the parent's status lines, "#N: cov: .. time: Ss job: .."
        execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -1)
        took=$(grep -o ' time: [0-9]*s' "$log" | tail -1 | tr -dc 0-9)
        [ -n "$execs" ] && [ -n "$took" ] && [ "$took" -gt 0 ] && rate=$((execs / took))
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${took:-$secs}" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$result" | tee -a "$out"
    [ "$result" = ok ] || tail -30 "$log"
    rm -f "$log"
done
