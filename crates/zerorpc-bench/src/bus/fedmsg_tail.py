# Baseline subscriber: fedmsg 1.1.7's tail_messages (what fedmsg-tail
# runs, without its printing: generous to fedmsg). Prints WARM at the first
# warmup, then counts the others until N or 5 s without one; prints RESULT
# {received, seconds} (first to last message).
# argv: endpoint, N
import copy, json, os, sys, threading, time
import fedmsg.config, fedmsg.core

endpoint, n = sys.argv[1], int(sys.argv[2])
config = copy.deepcopy(fedmsg.config.defaults)
config.update(dict(endpoints={"bus": [endpoint]}, name=None, mute=True, io_threads=1))
ctx = fedmsg.core.FedMsgContext(**config)
state = {"got": 0, "first": None, "last": None}

def report():
    first, last = state["first"], state["last"]
    secs = (last - first) if first is not None else 0.0
    print("RESULT " + json.dumps({"received": state["got"], "seconds": secs}), flush=True)
    os._exit(0)

def watchdog():
    while True:
        time.sleep(0.5)
        last = state["last"]
        if last is not None and time.time() - last > 5:
            report()

threading.Thread(target=watchdog, daemon=True).start()
print("READY", flush=True)
warm = False
for _name, _ep, topic, msg in ctx.tail_messages():
    if topic.endswith(".warmup"):
        if not warm:
            warm = True
            print("WARM", flush=True)
        continue
    now = time.time()
    if state["first"] is None:
        state["first"] = now
    state["got"] += 1
    state["last"] = now
    if state["got"] == n:
        report()
