# Publishes with fedora-messaging 3.9.1's api.publish: one message per
# stdin line, a JSON object {"schema": entry point name, "topic", "body",
# "skip_validation": bool}; prints "ID <message id> <schema package header
# or ->" per message. skip_validation plays a misbehaving publisher (the
# library validates before publishing). Configuration: FEDORA_MESSAGING_CONF.
import json
import sys

from fedora_messaging import api, message

for line in sys.stdin:
    if not line.strip():
        continue
    spec = json.loads(line)
    cls = message.get_class(spec["schema"])
    msg = cls(topic=spec["topic"], body=spec["body"])
    if spec.get("skip_validation"):
        msg.validate = lambda: None
    api.publish(msg)
    print("ID", msg.id, msg._headers.get("fedora_messaging_schema_package", "-"), flush=True)
print("ALL DONE", flush=True)
