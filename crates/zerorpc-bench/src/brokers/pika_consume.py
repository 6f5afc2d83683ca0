# A pika consumer draining a queue (manual ack per message, prefetch P):
# prints "RATE <messages/s>" from its first message to its Nth.
# Args: URL QUEUE N PREFETCH.
import sys, time
import pika

url, queue, n, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.basic_qos(prefetch_count=prefetch)
state = {"count": 0, "t": None}


def on_message(ch, method, props, body):
    if state["t"] is None:
        state["t"] = time.time()
    ch.basic_ack(method.delivery_tag)
    state["count"] += 1
    if state["count"] >= n:
        ch.stop_consuming()


ch.basic_consume(queue, on_message)
ch.start_consuming()
print("RATE", n / (time.time() - state["t"]), flush=True)
conn.close()
