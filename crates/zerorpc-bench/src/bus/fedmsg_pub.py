# Baseline publisher: fedmsg 1.1.7's FedMsgContext.publish, binding its own
# PUB endpoint (fedmsg's way). Publishes `warmup` until a line on stdin,
# then N messages as fast as it can; prints RESULT {published_per_s}.
# argv: port, N
import copy, json, sys, threading, time
import fedmsg.config, fedmsg.core

port, n = sys.argv[1], int(sys.argv[2])
config = copy.deepcopy(fedmsg.config.defaults)
config.update(dict(endpoints={"bench.host": ["tcp://127.0.0.1:%s" % port]},
                   name="bench.host", io_threads=1))
ctx = fedmsg.core.FedMsgContext(**config)
go = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
print("READY", flush=True)
while not go.is_set():
    ctx.publish(topic="warmup", msg={}, modname="bench")
    time.sleep(0.05)
body = {"text": "x" * 200, "n": 0}
t0 = time.time()
for k in range(n):
    body["n"] = k
    ctx.publish(topic="load", msg=body, modname="bench")
t1 = time.time()
print("RESULT " + json.dumps({"published_per_s": n / (t1 - t0)}), flush=True)
time.sleep(3)
