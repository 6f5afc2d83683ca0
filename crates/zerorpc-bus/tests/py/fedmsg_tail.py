# fedmsg's own consumer loop (FedMsgContext.tail_messages) on one PUB
# endpoint: prints WARM on the first `*.warmup` message, then MSG <json>
# for each of N other messages, then ALL DONE.
# argv: endpoint, N, extra config (JSON object)
import copy
import json
import sys
import warnings

import fedmsg.config
import fedmsg.core
import fedmsg.encoding

endpoint, n = sys.argv[1], int(sys.argv[2])
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
config = copy.deepcopy(fedmsg.config.defaults)
config.update(dict(endpoints={"bus": [endpoint]}, name=None, mute=True, io_threads=1))
config.update(extra)
ctx = fedmsg.core.FedMsgContext(**config)
warnings.simplefilter("always")
print("READY", flush=True)
warm, got = False, 0
for _name, _ep, topic, msg in ctx.tail_messages():
    if msg["topic"].endswith(".warmup"):
        if not warm:
            warm = True
            print("WARM", flush=True)
        continue
    print("MSG " + fedmsg.encoding.dumps(msg), flush=True)
    got += 1
    if got == n:
        break
print("ALL DONE", flush=True)
