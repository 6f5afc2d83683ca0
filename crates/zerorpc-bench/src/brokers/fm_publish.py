# fedora-messaging's api.publish, one message at a time (each waits for the
# broker's confirm): prints "RATE <messages/s>". Args: N TOPIC.
import sys, time
from fedora_messaging import api, message

n, topic = int(sys.argv[1]), sys.argv[2]
api.publish(message.Message(topic=topic, body={"n": -1}))  # connect, warm up
t = time.time()
for k in range(n):
    api.publish(message.Message(topic=topic, body={"text": "x" * 200, "n": k}))
print("RATE", n / (time.time() - t), flush=True)
