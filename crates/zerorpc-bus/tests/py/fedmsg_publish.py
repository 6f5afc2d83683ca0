# A fedmsg publisher (FedMsgContext.publish): publishes `warmup` messages
# until a line arrives on stdin, then N messages `real` with k = 0..N-1,
# then ALL DONE.
# argv: N, extra config (JSON object: endpoints, name, active, signing...)
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
ctx = fedmsg.core.FedMsgContext(**config)
go = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
print("READY", flush=True)
while not go.is_set():
    ctx.publish(topic="warmup", msg={}, modname="pytest")
    time.sleep(0.05)
for k in range(n):
    ctx.publish(
        topic="real",
        msg={"k": k, "text": "h\u00e9llo \U0001F600 \"q\"\n", "f": 0.1, "big": 1e20, "small": 1e-07},
        modname="pytest",
    )
# PUB sends in the background: give it time before the process exits.
time.sleep(1.0)
print("ALL DONE", flush=True)
