# A fedmsg publisher (FedMsgContext.publish): publishes `warmup` messages
# until a line arrives on stdin, then N messages `real` with k = 0..N-1,
# then ALL DONE.
# With argv[3] == "bad", halfway it also publishes one message tampered
# with after signing (topic `*.tampered`) and one unsigned (`*.unsigned`).
# argv: N, extra config (JSON object: endpoints, name, active, signing...)
import collections
import copy
import json
import sys
import threading
import time

import fedmsg.config
import fedmsg.core

n = int(sys.argv[1])
extra = json.loads(sys.argv[2])
config = copy.deepcopy(fedmsg.config.defaults)
config.update(dict(io_threads=1, topic_prefix="org.fedoraproject", environment="dev"))
config.update(extra)
if "sign_as" in config:
    # Sign with this cert whatever name fedmsg looks it up by (an active
    # publisher looks up "shell.<hostname>").
    config["certnames"] = collections.defaultdict(lambda: config["sign_as"])
ctx = fedmsg.core.FedMsgContext(**config)
go = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
print("READY", flush=True)
while not go.is_set():
    ctx.publish(topic="warmup", msg={}, modname="pytest")
    time.sleep(0.05)
bad = len(sys.argv) > 3 and sys.argv[3] == "bad"
for k in range(n):
    if bad and k == n // 2:
        # pre_fire_hook runs after signing, just before sending.
        ctx.publish(topic="tampered", msg={"amount": 1}, modname="pytest",
                    pre_fire_hook=lambda m: m["msg"].update(amount=1000))
        ctx.c["sign_messages"] = False
        ctx.publish(topic="unsigned", msg={"amount": 2}, modname="pytest")
        ctx.c["sign_messages"] = True
    ctx.publish(
        topic="real",
        msg={"k": k, "text": "h\u00e9llo \U0001F600 \"q\"\n", "f": 0.1, "big": 1e20, "small": 1e-07},
        modname="pytest",
    )
# PUB sends in the background: give it time before the process exits.
time.sleep(1.0)
print("ALL DONE", flush=True)
