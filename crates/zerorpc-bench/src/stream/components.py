"""streamparse components for `zerorpc-bench stream` (the pystorm rows):
the word count of streamparse's quickstart, with a tracked sentence spout."""

from collections import Counter
from itertools import count

from streamparse import Bolt, Spout

SENTENCES = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
]


class SentenceSpout(Spout):
    outputs = ["sentence"]

    def initialize(self, conf, ctx):
        self.ids = count()
        self.replay = []

    def next_tuple(self):
        i = self.replay.pop() if self.replay else next(self.ids)
        self.emit([SENTENCES[i % len(SENTENCES)]], tup_id=i)

    def fail(self, tup_id):
        self.replay.append(tup_id)


class SplitBolt(Bolt):
    outputs = ["word"]

    def process(self, tup):
        for w in tup.values[0].split(" "):
            self.emit([w])


class CountBolt(Bolt):
    outputs = ["word", "count"]

    def initialize(self, conf, ctx):
        self.counts = Counter()

    def process(self, tup):
        w = tup.values[0]
        self.counts[w] += 1
        self.emit([w, self.counts[w]])
