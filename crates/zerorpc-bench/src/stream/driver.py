"""A minimal multi-lang driver (the worker side, JSON): starts a bolt,
does the handshake, keeps WINDOW tuples in flight, and answers nothing but
what the protocol needs. Prints tuples/s and the CPU seconds per tuple
of the driver and of the bolt. The baseline our runner is
measured against when it drives the same pystorm bolt.

usage: driver.py SECONDS WINDOW -- COMMAND..."""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

secs, window = float(sys.argv[1]), int(sys.argv[2])
cmd = sys.argv[sys.argv.index("--") + 1:]
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        cwd=os.path.dirname(os.path.abspath(__file__)))
out, inp = proc.stdin, proc.stdout


def send(msg):
    out.write(json.dumps(msg).encode() + b"\nend\n")


def read():
    lines = []
    while True:
        line = inp.readline()
        if not line:
            raise SystemExit("the bolt exited")
        line = line.rstrip(b"\n")
        if line == b"end":
            return json.loads(b"\n".join(lines))
        lines.append(line)


send({"conf": {}, "pidDir": tempfile.mkdtemp(),
      "context": {"taskid": 1, "componentid": "count", "task->component": {"1": "count"}}})
out.flush()
read()
words = ["the", "cow", "jumped", "over", "moon", "apple", "day"]
sent = acked = 0
start = time.time()
deadline = start + secs
while time.time() < deadline:
    while sent - acked < window:
        send({"id": str(sent), "comp": "split", "stream": "default", "task": 2,
              "tuple": [words[sent % len(words)]]})
        sent += 1
    out.flush()
    while sent - acked >= window // 2:
        m = read()
        if m.get("command") == "ack":
            acked += 1
elapsed = time.time() - start
own = time.process_time()
proc.kill()
proc.wait()
bolt = resource.getrusage(resource.RUSAGE_CHILDREN)
# tuples/s, then CPU seconds per tuple: this driver's, the bolt's
print(acked / elapsed, own / acked, (bolt.ru_utime + bolt.ru_stime) / acked)
