# fedmsg 1.1.7's own replay client against our daemon's replay endpoint.
# argv: ENDPOINT QUERIES_FILE LIVE_FILE LAST_SEEN
#   QUERIES_FILE: a JSON list of get_replay queries; LIVE_FILE: a JSON list
#   of live messages (envelopes with seq_id) handed to check_for_replay in
#   turn, the consumer having seen up to seq_id LAST_SEEN.
# Prints, per query, GOT <json list of the messages as fedmsg encodes them>
# or ERR <the error frame>; per live message, CALL <the same list>; then
# STATE <the consumer's last seq_id> and ALL DONE.
import json
import sys

import fedmsg.encoding
from fedmsg.replay import check_for_replay, get_replay

endpoint, queries_file, live_file, last_seen = sys.argv[1:5]
config = {"replay_endpoints": {"bus": endpoint}, "io_threads": 1}

with open(queries_file) as f:
    queries = json.load(f)
for q in queries:
    try:
        got = [fedmsg.encoding.dumps(m) for m in get_replay("bus", q, config)]
        print("GOT " + json.dumps(got))
    except ValueError as e:
        print("ERR " + e.args[0].decode("utf-8"))

with open(live_file) as f:
    live = json.load(f)
state = {"bus": int(last_seen)}
for msg in live:
    got = check_for_replay("bus", state, msg, config)
    print("CALL " + json.dumps([fedmsg.encoding.dumps(m) for m in got]))
print("STATE " + json.dumps(state["bus"]))
print("ALL DONE")
