# Random envelopes in fedmsg's canonical JSON, before and after adding
# seq_id, as Python's json.dumps writes them. Prints
# "CASE <seq>\t<before>\t<after>" lines (canonical JSON escapes tabs, so
# a tab cannot occur inside) and ALL DONE.
import random
import sys

import fedmsg.encoding

rng = random.Random(int(sys.argv[1]))
KEYS = ["seq_id", "seq_ic", "seq_ie", "seq_id_", "seq_idA", "seq", "sequence",
        "s", "t", "r", "", "Z", "_", "a", "msg", "msg_id", "topic", "\u00e9",
        "\u0000", "seq_id\u0000", "\U0001F600", "\u4e2d", "\"", "\\", "{}", ","]
CHARS = "ab\"\\{}[],:\t\n\u00e9\u4e2d\U0001F600 "


def string():
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 8)))


def value(depth):
    kind = rng.randint(0, 8 if depth < 3 else 5)
    if kind == 0:
        return rng.randint(-10**20, 10**20)
    if kind == 1:
        return rng.choice([0.1, -2.5e-7, 1e16, 1.0, 123456789.125, -0.0, 3.14])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4, 5):
        return string()
    if kind in (6, 7):
        return {rng.choice(KEYS + [string()]): value(depth + 1) for _ in range(rng.randint(0, 4))}
    return [value(depth + 1) for _ in range(rng.randint(0, 4))]


for _ in range(300):
    env = {rng.choice(KEYS + [string()]): value(0) for _ in range(rng.randint(0, 7))}
    seq = rng.choice([0, 1, 7, 12345, 2**63, 2**64 - 1])
    before = fedmsg.encoding.dumps(env)
    env["seq_id"] = seq
    after = fedmsg.encoding.dumps(env)
    print("CASE %d\t%s\t%s" % (seq, before, after))
print("ALL DONE")
