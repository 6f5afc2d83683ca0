# fedora-messaging 3.9.1's own consumer (api.consume) reads COUNT messages
# from the queue QUEUE (bound to amq.topic with the routing key TOPIC) and prints, per message, one JSON line:
# its class, topic, body, id and every AMQP property and header, as the
# Python side sees them. Configuration: FEDORA_MESSAGING_CONF.
# Usage: fm_consume.py QUEUE TOPIC COUNT
import datetime
import json
import sys

from fedora_messaging import api, exceptions

queue, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = []


def callback(message):
    p = message._properties
    print(
        "MSG "
        + json.dumps(
            {
                "class": type(message).__name__,
                "module": type(message).__module__,
                "topic": message.topic,
                "body": message.body,
                "id": message.id,
                "summary": message.summary,
                "agent_name": message.agent_name,
                "severity": message.severity,
                "priority": message.priority,
                "queue": message.queue,
                "headers": message._headers,
                "header_types": {k: type(v).__name__ for k, v in message._headers.items()},
                "content_type": p.content_type,
                "content_encoding": p.content_encoding,
                "delivery_mode": p.delivery_mode,
                "message_id": p.message_id,
                "amqp_priority": p.priority,
                "timestamp": p.timestamp,
                "sent_at_epoch": datetime.datetime.fromisoformat(
                    message._headers["sent-at"]
                ).timestamp(),
            },
            sort_keys=True,
            default=str,
        ),
        flush=True,
    )
    seen.append(message.id)
    if len(seen) >= count:
        raise exceptions.HaltConsumer(exit_code=0, requeue=False)


queues = {queue: {"durable": True, "auto_delete": False, "exclusive": False, "arguments": {}}}
try:
    bindings = [{"exchange": "amq.topic", "queue": queue, "routing_keys": [topic]}]
    api.consume(callback, bindings=bindings, queues=queues)
except exceptions.HaltConsumer as e:
    assert e.exit_code == 0, e
print("ALL DONE", flush=True)
