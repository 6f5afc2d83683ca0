//! A bus message as a NATS message and back: subject = topic, payload =
//! the canonical fedmsg envelope (lossless, signatures stay valid),
//! headers `Nats-Msg-Id` (JetStream's de-duplication), the
//! fedora-messaging schema name and the buses it went through.

use async_nats::header::{HeaderMap, HeaderValue};
use bytes::Bytes;

use super::subject::subject_problem;
use crate::message::Message;
use crate::subscriber::Delivery;
use crate::transport::Outgoing;

/// JetStream's de-duplication header: the envelope's `msg_id`.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// fedora-messaging's schema name (its `fedora.messages` entry point).
pub const SCHEMA: &str = "Fedora-Messaging-Schema";
/// The buses a message was bridged through, comma-separated.
pub const VIA: &str = "Zerorpc-Bus-Via";

/// A message ready to publish.
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    value
        .parse::<HeaderValue>()
        .map_err(|e| format!("its {name} header value {value:?} is not valid: {e}"))
}

/// `out` as a NATS message; `Err`: why it cannot be one (the topic is not
/// a valid subject, a header value has a line break).
pub(crate) fn encode(out: &Outgoing) -> Result<Wire, String> {
    let topic = &out.message.topic;
    if let Some(problem) = subject_problem(topic) {
        return Err(format!("not a valid NATS subject: {problem}"));
    }
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, header_value(MSG_ID, &out.message.msg_id)?);
    if let Some(schema) = &out.schema_name {
        headers.insert(SCHEMA, header_value(SCHEMA, schema)?);
    }
    if !out.via.is_empty() {
        headers.insert(VIA, header_value(VIA, &out.via.join(","))?);
    }
    Ok(Wire {
        subject: topic.clone(),
        headers,
        payload: Bytes::from(out.json.clone().into_bytes()),
    })
}

/// What arrived, as far as the broker tells.
pub(crate) struct Arrived<'a> {
    /// The stream sequence.
    pub seq: u64,
    /// The delivery count (1: the first).
    pub delivered: i64,
    pub headers: Option<&'a HeaderMap>,
    pub payload: &'a [u8],
}

/// A received NATS message as a delivery (no ack handle yet), or why it
/// is not an envelope with what arrived (lossily as text).
pub(crate) fn decode(a: &Arrived<'_>) -> Result<Delivery, (String, String)> {
    let raw = || String::from_utf8_lossy(a.payload).into_owned();
    let text = std::str::from_utf8(a.payload)
        .map_err(|e| (format!("the payload is not UTF-8: {e}"), raw()))?;
    let message =
        Message::from_json(text).map_err(|e| (format!("not a fedmsg envelope: {e}"), raw()))?;
    let header = |name: &str| {
        a.headers
            .and_then(|h| h.get_last(name))
            .map(|v| v.as_str().to_owned())
    };
    let mut d = Delivery::new(Some(a.seq), message);
    d.attempt = u32::try_from(a.delivered.max(1)).unwrap_or(u32::MAX);
    d.schema_name = header(SCHEMA).filter(|s| !s.is_empty());
    d.via = header(VIA)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outgoing(topic: &str) -> Outgoing {
        let message = Message::new(topic, json!({"a": 1, "f": 1.50}), 3, "me");
        let json = message.to_canonical_json();
        Outgoing {
            message,
            json,
            schema_name: Some("bodhi.update.comment.v1".into()),
            via: vec!["amqp".into(), "zmq".into()],
        }
    }

    #[test]
    fn round_trip() {
        let out = outgoing("org.fp.dev.bodhi.update");
        let w = encode(&out).unwrap();
        assert_eq!(w.subject, "org.fp.dev.bodhi.update");
        assert_eq!(
            w.headers.get(MSG_ID).map(|v| v.as_str()),
            Some(out.message.msg_id.as_str())
        );
        assert_eq!(w.payload, out.json.as_bytes());
        let d = decode(&Arrived {
            seq: 7,
            delivered: 2,
            headers: Some(&w.headers),
            payload: &w.payload,
        })
        .unwrap();
        assert_eq!(d.seq, Some(7));
        assert_eq!(d.attempt, 2);
        assert_eq!(d.message, out.message);
        assert_eq!(d.message.to_canonical_json(), out.json);
        assert_eq!(d.schema_name.as_deref(), Some("bodhi.update.comment.v1"));
        assert_eq!(d.via, ["amqp", "zmq"]);
    }

    #[test]
    fn optional_headers_absent() {
        let mut out = outgoing("a.b.c");
        out.schema_name = None;
        out.via.clear();
        let w = encode(&out).unwrap();
        assert!(w.headers.get(SCHEMA).is_none() && w.headers.get(VIA).is_none());
    }

    #[test]
    fn refuses_what_nats_cannot_carry() {
        for topic in ["", "a..b", "a.*.c", "a.b c", "a.>"] {
            let e = encode(&outgoing(topic)).unwrap_err();
            assert!(e.contains("not a valid NATS subject"), "{topic}: {e}");
        }
        let mut out = outgoing("a.b.c");
        out.message.msg_id = "x\r\ny".into();
        assert!(encode(&out).unwrap_err().contains("Nats-Msg-Id"));
    }

    #[test]
    fn not_an_envelope() {
        let (why, raw) = decode(&Arrived {
            seq: 1,
            delivered: 1,
            headers: None,
            payload: b"hello",
        })
        .unwrap_err();
        assert!(why.contains("not a fedmsg envelope"), "{why}");
        assert_eq!(raw, "hello");
        assert!(decode(&Arrived {
            seq: 1,
            delivered: 1,
            headers: None,
            payload: &[0xff, 0xfe],
        })
        .is_err());
    }
}
