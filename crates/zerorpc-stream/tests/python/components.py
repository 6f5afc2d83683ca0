"""streamparse components the runner's interop tests run as multi-lang
subprocesses (`python -m streamparse.run components.NAME`).

Behaviour switches come from the topology configuration (Storm's conf, as
every multi-lang component receives it in the handshake)."""

import json
import os
import sys
import time
from collections import Counter

from streamparse import Bolt, Spout

WORDS = ["the", "cow", "jumped", "over", "moon", "an", "apple", "a", "day",
         "keeps", "doctor", "away"]


def sentence(i):
    """Sentence i of the corpus the Rust tests use too."""
    n = 3 + i % 5
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


class SentenceSpout(Spout):
    """Emits sentences 0..test.sentences with their index as tuple id;
    replays failed ones."""

    outputs = ["sentence"]

    def initialize(self, conf, ctx):
        self.total = int(conf.get("test.sentences", 100))
        self.next = 0
        self.replay = []

    def next_tuple(self):
        if self.replay:
            i = self.replay.pop()
        elif self.next < self.total:
            i = self.next
            self.next += 1
        else:
            return
        self.emit([sentence(i)], tup_id=i)

    def ack(self, tup_id):
        pass

    def fail(self, tup_id):
        self.replay.append(tup_id)


class SplitBolt(Bolt):
    """Splits sentences into words (anchored; auto-ack)."""

    outputs = ["word"]

    def initialize(self, conf, ctx):
        self.stray = conf.get("test.stray") == "yes"
        self.n = 0

    def process(self, tup):
        self.n += 1
        if self.stray and self.n % 50 == 0:
            # pystorm redirects print() to its log; writing to the real
            # stdout is what breaks Storm's workers.
            sys.__stdout__.write("debug: a stray line %d\n" % self.n)
            sys.__stdout__.flush()
        for w in tup.values[0].split(" "):
            self.emit([w])


class CountBolt(Bolt):
    """Counts words; emits [word, count] anchored."""

    outputs = ["word", "count"]

    def initialize(self, conf, ctx):
        self.counts = Counter()
        # With test.counts_dir, the counts so far are kept in a file per
        # task (the test reads them after the run).
        d = conf.get("test.counts_dir")
        self.path = d and os.path.join(d, "counts-%s.json" % ctx.get("taskid"))

    def process(self, tup):
        w = tup.values[0]
        self.counts[w] += 1
        self.emit([w, self.counts[w]])
        if self.path:
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.counts, f)
            os.replace(self.path + ".tmp", self.path)


class TroubleBolt(Bolt):
    """Passes words on; on its first "moon" (once per test directory) it
    misbehaves as test.trouble says: "busy" computes for 3 s, "stuck"
    sleeps for an hour, "exit" exits."""

    outputs = ["word"]

    def initialize(self, conf, ctx):
        self.mode = conf.get("test.trouble")
        self.marker = os.path.join(conf["test.dir"], "trouble-" + self.mode)

    def process(self, tup):
        w = tup.values[0]
        if w == "moon" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            if self.mode == "busy":
                end = time.time() + 3
                x = 0
                while time.time() < end:
                    x += 1
            elif self.mode == "stuck":
                time.sleep(3600)
            elif self.mode == "exit":
                os._exit(3)
        self.emit([w])
