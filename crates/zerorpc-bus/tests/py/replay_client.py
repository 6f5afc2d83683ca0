# fedmsg 1.1.7's own replay client against our replay server.
# argv: ENDPOINT LIVE_FILE QUERIES_FILE
#   LIVE_FILE: a JSON list of the live messages (envelopes with seq_id) the
#   consumer receives, with gaps; QUERIES_FILE: a JSON list of queries for
#   get_replay. Prints what the client got; ends with ALL DONE.
import json
import sys

import fedmsg.encoding
from fedmsg.replay import check_for_replay, get_replay

endpoint, live_file, queries_file = sys.argv[1:4]
config = {"replay_endpoints": {"bus": endpoint}, "io_threads": 1}

with open(live_file) as f:
    live = json.load(f)
state = {"bus": 0}
for msg in live:
    for m in check_for_replay("bus", state, msg, config):
        print("SEEN " + fedmsg.encoding.dumps(m))

with open(queries_file) as f:
    queries = json.load(f)
for q in queries:
    try:
        got = [m["seq_id"] for m in get_replay("bus", q, config)]
        print("GOT " + json.dumps(got))
    except ValueError as e:
        print("ERR " + e.args[0].decode("utf-8"))
print("ALL DONE")
