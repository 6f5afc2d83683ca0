#!/bin/sh
# Instructions per sequential call and per stream item, counted by
# valgrind's callgrind (repeatable on a noisy machine, unlike timings).
# Each workload runs at two sizes; the difference over the extra calls or
# items is the count per call or item (start-up and set-up cancel out).
#
# usage: crates/zerorpc-bench/callgrind.sh   (from the workspace root;
# needs valgrind: apt-get install valgrind)
set -eu
cargo build --release -p zerorpc-bench >&2
bin=${CARGO_TARGET_DIR:-target}/release/zerorpc-bench
count() { # kind n -> instructions
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" instructions "$1" "$2" 2>"$out" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out"
    rm -f "$out"
}
per() { # kind small large label
    a=$(count "$1" "$2")
    b=$(count "$1" "$3")
    echo "$4: $(( (b - a) / ($3 - $2) )) instructions ($1 $2 → $3: $a → $b)"
}
per calls 200 1200 "per sequential call (client and server; a root trace context each, the default)"
per untraced 200 1200 "per sequential call without a trace context (trace_roots off)"
per recorded 200 1200 "per sequential call recorded by client and server into an embedded store"
per big 50 300 "per sequential 64 KiB echo call (client and server)"
per hub 200 1200 "per sequential call through a hub with one worker (client, hub and worker)"
per curve 200 1200 "per sequential call over CURVE (client and server)"
per stream 2000 22000 "per stream item (client and server)"
per stream-api 2000 22000 "per stream item taken one by one through call_stream (client and server)"
per tarpc 200 1200 "per sequential tarpc call (client and server, for comparison)"
per concurrent 3000 9000 "per call with 256 in flight (client and server)"
per recorded-concurrent 3000 9000 "per call with 256 in flight, recorded by client and server into an embedded store that is full (every record evicts one)"
