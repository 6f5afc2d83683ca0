#!/usr/bin/env python3
"""Test-side emulation of Apache Storm's worker side of the multi-lang protocol.

This plays the part that Storm's Java ShellBolt / ShellSpout (with the
JsonSerializer, or a pystorm-style msgpack serializer) play against a
multi-lang subprocess.  It is written from Storm's protocol document
(docs/Multilang-protocol.md) and the behaviour of ShellBolt.java,
ShellSpout.java and JsonSerializer.java in storm-client, independently of
the code under test.

Usage:

    python storm_shell.py --serializer json|msgpack --mode bolt|spout \
        --need-task-ids yes|no --input FILE.json \
        [--heartbeat-every K] [--timeout SECS] [--direct-emit-reply] \
        -- COMMAND [ARGS...]

Input file (JSON object):

    {
      "conf": {...},                 # sent as "conf" in the handshake (default {})
      "componentid": "component",    # optional, the component id under test
      "context": {...},              # optional extra keys merged into "context"
      "emit_task_ids": [4],          # optional, task ids answered to non-direct emits
      "tuples": [                    # bolt mode
        {"id": "1", "comp": "src", "stream": "default", "task": 7, "tuple": ["a", 1]}
      ],
      "commands": [                  # spout mode
        "next", {"ack": "msg-1"}, {"fail": "msg-2"}, "activate", "deactivate"
      ]
    }

A single JSON summary is printed on stdout at the end:

    {"pid_file_ok", "pid", "emits", "acks", "fails", "logs", "errors",
     "reported_errors", "metrics", "heartbeats_sent", "syncs_for_heartbeats",
     "need_task_ids_seen", "exit_code", "killed"}

Behaviour that follows Storm rather than a naive reading of the protocol:

* JSON framing is line based like JsonSerializer: a message is all lines up
  to a line equal to "end" (a trailing "\\r" on a line is dropped, as Java's
  readLine does), joined with "\\n".
* Spout commands are written like JsonSerializer.writeSpoutMsg, i.e. always
  with an "id" key: "" for next/activate/deactivate.
* Heartbeat tuples are written like ShellBolt's createHeartbeatBoltMessage:
  {"id": <random long as string>, "comp": null, "stream": "__heartbeat",
   "task": -1, "tuple": []}.  (Pass --heartbeat-comp __system to use a
  string component instead.)
* Task ids are written back only for non-direct emits ("task" absent or 0)
  whose "need_task_ids" is absent or true.  Storm writes nothing back for a
  direct emit; --direct-emit-reply makes this script answer [task] for
  those too (not Storm behaviour).
* Bolt: ack/fail of an id that is not pending (never sent, already
  acked/failed, a heartbeat id) and anchoring onto such an id are errors
  (Storm's ShellBolt dies).
* Spout: any command other than emit/log/error/metrics/sync is an error
  (Storm's ShellSpout throws "Unknown command received").
"""

import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time

DOWNSTREAM_TASK = 4
OWN_TASK = 3
CHUNK = 65536


class Abort(Exception):
    """Stop the session: fatal protocol problem, timeout or broken pipe."""


def usage(msg):
    sys.stderr.write("storm_shell.py: %s\n" % msg)
    sys.stderr.write(__doc__.split("Input file")[0])
    sys.exit(2)


def parse_args(argv):
    if "--" not in argv:
        usage("missing '--' before the component command")
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1:]
    if not command:
        usage("missing component command after '--'")
    res = {
        "serializer": None,
        "mode": None,
        "need_task_ids": None,
        "input": None,
        "heartbeat_every": 3,
        "timeout": 20.0,
        "direct_emit_reply": False,
        "heartbeat_comp": None,
    }
    i = 0
    while i < len(opts):
        opt = opts[i]
        if "=" in opt and opt.startswith("--"):
            opt, val = opt.split("=", 1)
            inline = True
        else:
            val, inline = None, False

        def value():
            nonlocal i
            if inline:
                return val
            if i + 1 >= len(opts):
                usage("option %s needs a value" % opt)
            i += 1
            return opts[i]

        if opt == "--serializer":
            res["serializer"] = value()
        elif opt == "--mode":
            res["mode"] = value()
        elif opt == "--need-task-ids":
            res["need_task_ids"] = value()
        elif opt == "--input":
            res["input"] = value()
        elif opt == "--heartbeat-every":
            res["heartbeat_every"] = int(value())
        elif opt == "--timeout":
            res["timeout"] = float(value())
        elif opt == "--heartbeat-comp":
            res["heartbeat_comp"] = value()
        elif opt == "--direct-emit-reply":
            res["direct_emit_reply"] = True
        else:
            usage("unknown option %s" % opt)
        i += 1
    if res["serializer"] not in ("json", "msgpack"):
        usage("--serializer must be json or msgpack")
    if res["mode"] not in ("bolt", "spout"):
        usage("--mode must be bolt or spout")
    if res["need_task_ids"] not in ("yes", "no"):
        usage("--need-task-ids must be yes or no")
    if not res["input"]:
        usage("--input is required")
    res["need_task_ids"] = res["need_task_ids"] == "yes"
    res["command"] = command
    return res


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

class JsonChannel:
    """JSON objects followed by a line "end" (both directions)."""

    fatal_bad_frames = False

    def __init__(self):
        self.buf = bytearray()
        self.lines = []

    def encode(self, obj):
        # json-simple writes non-ASCII characters as UTF-8, not \\u escapes.
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        return (text + "\nend\n").encode("utf-8")

    def feed(self, data):
        self.buf.extend(data)

    def next_frame(self):
        """Return ("msg", obj), ("bad", raw) or None if more data is needed."""
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                return None
            raw_line = bytes(self.buf[:nl])
            del self.buf[:nl + 1]
            if raw_line.endswith(b"\r"):
                raw_line = raw_line[:-1]
            if raw_line == b"end":
                raw = b"\n".join(self.lines)
                self.lines = []
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return ("bad", raw.decode("utf-8", "replace"))
                try:
                    return ("msg", json.loads(text))
                except ValueError:
                    return ("bad", text)
            self.lines.append(raw_line)

    def leftover(self):
        parts = self.lines + ([bytes(self.buf)] if self.buf else [])
        return b"\n".join(parts).decode("utf-8", "replace")


class MsgpackChannel:
    """Bare msgpack objects back to back (pystorm's MsgpackSerializer)."""

    fatal_bad_frames = True  # no way to resynchronise after garbage

    def __init__(self):
        import msgpack  # only needed for this serializer

        self.msgpack = msgpack
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.recent = bytearray()

    def encode(self, obj):
        return self.msgpack.packb(obj, use_bin_type=True)

    def feed(self, data):
        self.unpacker.feed(data)
        self.recent.extend(data)
        if len(self.recent) > 4096:
            del self.recent[:-4096]

    def next_frame(self):
        try:
            obj = next(self.unpacker)
        except StopIteration:
            return None
        except Exception as exc:  # FormatError, StackError, ValueError, ...
            return ("bad", "invalid msgpack (%s: %s); last bytes received: %s" % (
                type(exc).__name__, exc, bytes(self.recent[-64:]).hex()))
        return ("msg", obj)

    def leftover(self):
        return ""


# --------------------------------------------------------------------------
# The emulated worker side
# --------------------------------------------------------------------------

class Shell:
    def __init__(self, args, spec):
        self.args = args
        self.spec = spec
        self.mode = args["mode"]
        self.timeout = args["timeout"]
        self.chan = JsonChannel() if args["serializer"] == "json" else MsgpackChannel()
        self.emit_task_ids = list(spec.get("emit_task_ids", [DOWNSTREAM_TASK]))
        self.rand = random.Random()

        self.summary = {
            "pid_file_ok": False,
            "pid": None,
            "emits": [],
            "acks": [],
            "fails": [],
            "logs": [],
            "errors": [],
            "reported_errors": [],
            "metrics": [],
            "heartbeats_sent": 0,
            "syncs_for_heartbeats": 0,
            "need_task_ids_seen": [],
            "exit_code": None,
            "killed": False,
        }
        self.nt_seen = set()

        # bolt state
        self.pending = {}          # tuple id -> tuple message (Storm's `inputs`)
        self.resolved = set()      # ids acked/failed at least once
        self.hb_waiting = False
        # spout state
        self.synced = False

        self.proc = None
        self.fd = None
        self.stdin_closed = False
        self.eof = False
        self.piddir = None

    # ---- helpers -------------------------------------------------------

    def error(self, text, **extra):
        entry = {"error": text}
        entry.update(extra)
        self.summary["errors"].append(entry)

    def send(self, obj):
        if self.stdin_closed:
            return
        data = self.chan.encode(obj)
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.stdin_closed = True
            self.error("write to component failed: %s" % exc)
            raise Abort()

    def read_frame(self, what, timeout):
        """Next frame from the component or raise Abort on timeout / EOF."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.chan.next_frame()
            if frame is not None:
                return frame
            if self.eof:
                raise Abort()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.error("timeout after %.1f s waiting for %s" % (timeout, what))
                raise Abort()
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            data = os.read(self.fd, CHUNK)
            if not data:
                self.eof = True
                left = self.chan.leftover()
                self.error("component closed its stdout while waiting for %s" % what,
                           exit_code=self.proc.poll(),
                           **({"partial": left} if left.strip() else {}))
                raise Abort()
            self.chan.feed(data)

    def handle_frame(self, frame):
        kind, payload = frame
        if kind == "bad":
            self.error("unparsable message from component", raw=payload)
            if self.chan.fatal_bad_frames:
                raise Abort()
            return
        self.dispatch(payload)

    def wait_until(self, cond, what):
        # Like Storm's heartbeat check, every message received restarts the clock.
        while not cond():
            self.handle_frame(self.read_frame(what, self.timeout))

    # ---- message dispatch ------------------------------------------------

    def dispatch(self, msg):
        if not isinstance(msg, dict):
            self.error("message is not an object", raw=msg)
            return
        command = msg.get("command")
        if command is None:
            self.error("command not found in message", raw=msg)
            return
        if command == "emit":
            self.on_emit(msg)
        elif command == "log":
            level = msg.get("level")
            text = msg.get("msg")
            if text is not None and not isinstance(text, str):
                self.error("log msg is not a string", raw=msg)
            self.summary["logs"].append({"msg": text, "level": level})
        elif command == "error":
            self.summary["reported_errors"].append(msg.get("msg"))
        elif command == "metrics":
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                self.error("metrics message without a name", raw=msg)
            self.summary["metrics"].append({"name": name, "params": msg.get("params")})
        elif command == "sync":
            if self.mode == "spout":
                self.synced = True
            elif self.hb_waiting:
                self.hb_waiting = False
                self.summary["syncs_for_heartbeats"] += 1
            # A bolt's spontaneous sync is ignored, as ShellBolt does.
        elif command in ("ack", "fail") and self.mode == "bolt":
            self.on_ack_fail(command, msg)
        else:
            self.error("unknown command %r" % (command,), raw=msg)

    def on_ack_fail(self, command, msg):
        tid = msg.get("id")
        self.summary["acks" if command == "ack" else "fails"].append(tid)
        try:
            known = tid in self.pending
        except TypeError:  # unhashable id
            known = False
        if not known:
            self.error("%s of a non-existent or already acked/failed id %r"
                       % (command, tid), raw=msg)
            return
        del self.pending[tid]
        self.resolved.add(tid)

    def on_emit(self, msg):
        stream = msg.get("stream")
        if stream is None:
            stream = "default"
        elif not isinstance(stream, str):
            self.error("emit stream is not a string", raw=msg)
        task = msg.get("task")
        if task is not None and (not isinstance(task, int) or isinstance(task, bool)):
            self.error("emit task is not an integer", raw=msg)
            task_num = 0
        else:
            task_num = task or 0
        tup = msg.get("tuple")
        if not isinstance(tup, list):
            self.error("emit tuple is not a list", raw=msg)
        nt_raw = msg.get("need_task_ids")
        if nt_raw is None:
            need = True
        elif isinstance(nt_raw, bool):
            need = nt_raw
        else:
            self.error("need_task_ids is not a boolean", raw=msg)
            need = bool(nt_raw)
        self.nt_seen.add(need)
        if need != self.args["need_task_ids"]:
            self.error("emit need_task_ids=%r (effective %s) inconsistent with "
                       "--need-task-ids %s" % (nt_raw, need,
                                               "yes" if self.args["need_task_ids"] else "no"),
                       raw=msg)

        record = {"stream": stream, "tuple": tup, "task": task, "need_task_ids": need}
        if self.mode == "bolt":
            anchors = msg.get("anchors")
            if isinstance(anchors, str):
                anchors = [anchors]
            if anchors is None:
                anchors = []
            if not isinstance(anchors, list):
                self.error("emit anchors is not a list", raw=msg)
                anchors = []
            for anchor in anchors:
                try:
                    ok = anchor in self.pending
                except TypeError:
                    ok = False
                if not ok:
                    self.error("anchored onto %r after ack/fail (or unknown id)"
                               % (anchor,), raw=msg)
            record["anchors"] = anchors
            if "id" in msg:
                record["id"] = msg["id"]
        else:
            record["id"] = msg.get("id")
        self.summary["emits"].append(record)

        if task_num == 0:
            if need:
                self.send(list(self.emit_task_ids))
        elif need and self.args["direct_emit_reply"]:
            self.send([task_num])

    # ---- session -------------------------------------------------------

    def start(self):
        env = dict(os.environ)
        env["ZERORPC_STREAM_NEED_TASK_IDS"] = "1" if self.args["need_task_ids"] else "0"
        self.piddir = tempfile.mkdtemp(prefix="storm-shell-pids-")
        try:
            self.proc = subprocess.Popen(self.args["command"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=None,
                                         env=env, bufsize=0)
        except OSError as exc:
            self.error("cannot start component: %s" % exc)
            raise Abort()
        self.fd = self.proc.stdout.fileno()

    def handshake(self):
        comp = self.spec.get("componentid", "component")
        context = {
            "taskid": OWN_TASK,
            "componentid": comp,
            "task->component": {str(OWN_TASK): comp, str(DOWNSTREAM_TASK): "downstream"},
        }
        context.update(self.spec.get("context", {}))
        self.send({"conf": self.spec.get("conf", {}), "pidDir": self.piddir,
                   "context": context})
        while True:
            kind, payload = self.read_frame("the pid message", self.timeout)
            if kind == "bad":
                self.error("unparsable handshake answer", raw=payload)
                raise Abort()
            if isinstance(payload, dict) and "pid" in payload:
                break
            # Storm would fail on anything but {"pid": N} here.
            self.error("expected {\"pid\": N} as first message", raw=payload)
            raise Abort()
        pid = payload["pid"]
        self.summary["pid"] = pid
        if not isinstance(pid, int) or isinstance(pid, bool):
            self.error("pid is not an integer", raw=payload)
            raise Abort()
        self.summary["pid_file_ok"] = os.path.isfile(os.path.join(self.piddir, str(pid)))
        if not self.summary["pid_file_ok"]:
            self.error("no pid file %s/%d" % (self.piddir, pid))

    def run_bolt(self):
        every = self.args["heartbeat_every"]
        for n, tup in enumerate(self.spec.get("tuples", []), 1):
            msg = {
                "id": tup["id"],
                "comp": tup.get("comp"),
                "stream": tup.get("stream", "default"),
                "task": tup.get("task", 0),
                "tuple": tup.get("tuple", []),
            }
            tid = msg["id"]
            if tid in self.pending or tid in self.resolved:
                self.error("input file reuses tuple id %r" % (tid,))
            self.pending[tid] = msg
            self.send(msg)
            self.wait_until(lambda: tid not in self.pending,
                            "ack/fail of tuple %r" % (tid,))
            if every > 0 and n % every == 0:
                hb_id = str(self.rand.randint(-2 ** 63, 2 ** 63 - 1))
                self.hb_waiting = True
                self.send({"id": hb_id, "comp": self.args["heartbeat_comp"],
                           "stream": "__heartbeat", "task": -1, "tuple": []})
                self.summary["heartbeats_sent"] += 1
                self.wait_until(lambda: not self.hb_waiting, "sync for heartbeat")

    def run_spout(self):
        for cmd in self.spec.get("commands", []):
            if isinstance(cmd, str):
                if cmd not in ("next", "activate", "deactivate"):
                    self.error("input file: unknown spout command %r" % (cmd,))
                    continue
                msg = {"command": cmd, "id": ""}
            elif isinstance(cmd, dict) and len(cmd) == 1 and next(iter(cmd)) in ("ack", "fail"):
                name, mid = next(iter(cmd.items()))
                msg = {"command": name, "id": mid}
            else:
                self.error("input file: bad spout command %r" % (cmd,))
                continue
            self.synced = False
            self.send(msg)
            self.wait_until(lambda: self.synced, "sync after %r" % (msg["command"],))

    def finish(self):
        proc = self.proc
        if proc is None:
            return
        if not self.stdin_closed:
            self.stdin_closed = True
            try:
                proc.stdin.close()
            except OSError:
                pass
        # Drain (and record) whatever the component wrote or still writes
        # while it exits; nothing is answered any more (stdin is closed).
        deadline = time.monotonic() + 5.0
        try:
            while True:
                frame = self.chan.next_frame()
                if frame is not None:
                    self.handle_frame(frame)
                    continue
                if self.eof or time.monotonic() >= deadline:
                    break
                ready, _, _ = select.select([self.fd], [], [],
                                            max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                data = os.read(self.fd, CHUNK)
                if not data:
                    self.eof = True
                    left = self.chan.leftover()
                    if left.strip():
                        self.error("incomplete message at end of output", raw=left)
                    break
                self.chan.feed(data)
        except Abort:
            pass
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.summary["killed"] = True
            proc.kill()
            proc.wait()
        self.summary["exit_code"] = proc.returncode
        try:
            proc.stdout.close()
        except OSError:
            pass

    def run(self):
        try:
            self.start()
            self.handshake()
            if self.mode == "bolt":
                self.run_bolt()
            else:
                self.run_spout()
        except Abort:
            pass
        finally:
            self.finish()
            if self.piddir:
                shutil.rmtree(self.piddir, ignore_errors=True)
        self.summary["need_task_ids_seen"] = sorted(self.nt_seen)
        return self.summary


def to_jsonable(obj):
    if isinstance(obj, bytes):
        return obj.hex()
    return repr(obj)


def main(argv):
    args = parse_args(argv)
    with open(args["input"], encoding="utf-8") as fh:
        spec = json.load(fh)
    summary = Shell(args, spec).run()
    sys.stdout.write(json.dumps(summary, default=to_jsonable) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
