//! fedora-messaging 3.9.1's wire format, both ways: a [`Message`] as an
//! AMQP message (routing key, body, properties and headers) and back.
//!
//! What fedora-messaging sends (`fedora_messaging/message.py`,
//! `Message._build_properties`, `_encoded_body`, `_encoded_routing_key`):
//!
//! * routing key: the topic (prefixed with `topic_prefix` when configured,
//!   empty by default);
//! * body: `json.dumps(body).encode("utf-8")` (Python's default
//!   separators, ASCII escapes);
//! * properties: `content_type` `application/json`, `content_encoding`
//!   `utf-8`, `delivery_mode` 2, `message_id` (a UUID string there, our
//!   `msg_id` here), `priority` only when `publish_priority` is configured
//!   (unset by default, so unset here);
//! * headers: `fedora_messaging_schema` (the class's `fedora.messages` entry
//!   point name, `base.message` for the base class),
//!   `fedora_messaging_schema_package` (only when the class's distribution
//!   is known: not sent here), `sent-at` (UTC ISO 8601 to the second,
//!   `2024-01-02T03:04:05+00:00`), `fedora_messaging_severity` (20, INFO,
//!   by default), `priority` (0 by default), and `fedora_messaging_user_*`
//!   style filter headers from the class's properties (none here). pika
//!   encodes Python ints that fit as signed 32-bit (`I`), strings as long
//!   strings (`S`): so do we.
//!
//! We add `zerorpc_bus_via` (an array of strings), our bridges' loop
//! marker, when the message has been on other buses.
//!
//! Receiving (`get_message` in the same file): topic = routing key, body =
//! the JSON of the body decoded with `content_encoding`, class from
//! `fedora_messaging_schema`; a body that does not decode or parse is
//! refused (the consumer nacks it without requeue). fedora-messaging
//! carries no publishing user (a schema class computes `agent_name` from
//! the body), so `username` is empty and `i` is 0 on receipt.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde_json::Map;

use crate::json;
use crate::message::Message;
use crate::transport::Outgoing;

/// The schema class header.
pub(crate) const SCHEMA: &str = "fedora_messaging_schema";
/// When the message was sent.
pub(crate) const SENT_AT: &str = "sent-at";
/// The message's severity.
pub(crate) const SEVERITY: &str = "fedora_messaging_severity";
/// The priority, mirrored in a header.
pub(crate) const PRIORITY: &str = "priority";
/// Our bridges' loop marker.
pub(crate) const VIA: &str = "zerorpc_bus_via";
/// fedora-messaging's entry point name for its base `Message` class.
pub(crate) const BASE_SCHEMA: &str = "base.message";
/// fedora-messaging's `INFO` severity, its default.
pub(crate) const INFO: i32 = 20;

/// A message ready for `basic.publish`.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

/// What a received message carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub message: Message,
    pub schema_name: Option<String>,
    pub via: Vec<String>,
}

/// `out` as fedora-messaging would publish it.
pub(crate) fn encode(out: &Outgoing) -> Encoded {
    let m = &out.message;
    let mut headers = FieldTable::default();
    let schema = out.schema_name.as_deref().unwrap_or(BASE_SCHEMA);
    headers.insert(SCHEMA.into(), long_string(schema));
    headers.insert(SENT_AT.into(), long_string(&sent_at(m.timestamp)));
    headers.insert(SEVERITY.into(), AMQPValue::LongInt(INFO));
    headers.insert(PRIORITY.into(), AMQPValue::LongInt(0));
    if !out.via.is_empty() {
        let via: Vec<AMQPValue> = out.via.iter().map(|v| long_string(v)).collect();
        headers.insert(VIA.into(), AMQPValue::FieldArray(FieldArray::from(via)));
    }
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(m.msg_id.as_str()))
        .with_headers(headers);
    Encoded {
        routing_key: m.topic.clone(),
        body: json::to_python_default(&m.msg).into_bytes(),
        properties,
    }
}

/// A received AMQP message as ours, or why it is not one.
pub(crate) fn decode(
    routing_key: &str,
    props: &BasicProperties,
    body: &[u8],
) -> Result<Decoded, String> {
    match props.content_encoding().as_ref().map(|e| e.as_str()) {
        None => {}
        Some(e) if e.eq_ignore_ascii_case("utf-8") || e.eq_ignore_ascii_case("utf8") => {}
        Some(other) => return Err(format!("unsupported content encoding {other:?}")),
    }
    let text =
        std::str::from_utf8(body).map_err(|e| format!("the body is not valid UTF-8: {e}"))?;
    let msg: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the body is not JSON: {e}"))?;
    let msg_id = match props.message_id() {
        Some(id) if !id.as_str().is_empty() => id.as_str().to_owned(),
        _ => return Err("the message has no message_id".to_owned()),
    };
    let timestamp = header(props, SENT_AT)
        .and_then(as_string)
        .and_then(|s| parse_sent_at(&s))
        .or_else(|| props.timestamp().and_then(|t| i64::try_from(t).ok()))
        .unwrap_or_else(now);
    let schema_name = header(props, SCHEMA).and_then(as_string);
    let via = match header(props, VIA) {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().iter().filter_map(as_string).collect(),
        _ => Vec::new(),
    };
    let message = Message {
        topic: routing_key.to_owned(),
        msg,
        timestamp,
        msg_id,
        i: 0,
        username: String::new(),
        crypto: None,
        signature: None,
        certificate: None,
        extra: Map::new(),
    };
    Ok(Decoded {
        message,
        schema_name,
        via,
    })
}

/// A header's value.
pub(crate) fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

/// A string header's text (long or short string).
pub(crate) fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// An integer header's value, whatever its width.
pub(crate) fn as_int(v: &AMQPValue) -> Option<i64> {
    match *v {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        AMQPValue::Timestamp(n) => i64::try_from(n).ok(),
        _ => None,
    }
}

/// A long string value.
pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// What arrived, for a quarantine record.
pub(crate) fn raw_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// `sent-at` for unix time `ts`: Python's
/// `datetime.now(tz=timezone.utc).replace(microsecond=0).isoformat()`.
pub(crate) fn sent_at(ts: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(ts).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Unix seconds of an ISO 8601 date-time as Python's `isoformat` writes it
/// (`YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM|Z]`; without an offset: UTC).
pub(crate) fn parse_sent_at(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<u32> {
        let part = s.get(a..b)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let sep = |i: usize, c: u8| s.as_bytes().get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b' ')) && sep(13, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute) = (num(11, 13)?, num(14, 16)?);
    let (second, mut rest) = if sep(16, b':') {
        (num(17, 19)?, s.get(19..)?)
    } else {
        (0, s.get(16..)?)
    };
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "" | "Z" | "z" => 0,
        o => {
            let sign = match o.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = &o[1..];
            let (h, m) = o.split_once(':').unwrap_or((o.get(..2)?, o.get(2..)?));
            let h: i64 = h.parse().ok()?;
            let m: i64 = if m.is_empty() { 0 } else { m.parse().ok()? };
            sign * (h * 3600 + m * 60)
        }
    };
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, day as u8).ok()?;
    let t = time::Time::from_hms(hour as u8, minute as u8, second as u8).ok()?;
    let utc = time::PrimitiveDateTime::new(date, t).assume_utc();
    Some(utc.unix_timestamp() - offset_secs)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outgoing(schema: Option<&str>, via: &[&str]) -> Outgoing {
        let mut message = Message::new(
            "org.example.dev.thing.done",
            json!({"b": "é", "a": [1, 2.5]}),
            7,
            "alice",
        );
        message.timestamp = 1_700_000_000;
        Outgoing {
            json: message.to_canonical_json(),
            message,
            schema_name: schema.map(str::to_owned),
            via: via.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn encodes_like_fedora_messaging() {
        let out = outgoing(Some("example.thing.v1"), &[]);
        let e = encode(&out);
        assert_eq!(e.routing_key, "org.example.dev.thing.done");
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            r#"{"a": [1, 2.5], "b": "\u00e9"}"#
        );
        let p = &e.properties;
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(
            p.message_id().as_ref().unwrap().as_str(),
            out.message.msg_id
        );
        assert_eq!(*p.priority(), None);
        let h = p.headers().as_ref().unwrap().inner();
        assert_eq!(h.len(), 4, "{h:?}");
        assert_eq!(as_string(&h[SCHEMA]).unwrap(), "example.thing.v1");
        assert_eq!(as_string(&h[SENT_AT]).unwrap(), "2023-11-14T22:13:20+00:00");
        assert_eq!(h[SEVERITY], AMQPValue::LongInt(20));
        assert_eq!(h[PRIORITY], AMQPValue::LongInt(0));
        let base = encode(&outgoing(None, &["zmq", "nats"]));
        let h = base.properties.headers().as_ref().unwrap().inner();
        assert_eq!(as_string(&h[SCHEMA]).unwrap(), "base.message");
        assert_eq!(
            h[VIA],
            AMQPValue::FieldArray(vec![long_string("zmq"), long_string("nats")].into())
        );
    }

    #[test]
    fn round_trips() {
        let out = outgoing(Some("example.thing.v1"), &["zmq"]);
        let e = encode(&out);
        let d = decode(&e.routing_key, &e.properties, &e.body).unwrap();
        assert_eq!(d.schema_name.as_deref(), Some("example.thing.v1"));
        assert_eq!(d.via, ["zmq"]);
        let m = d.message;
        assert_eq!(m.topic, out.message.topic);
        assert_eq!(m.msg, out.message.msg);
        assert_eq!(m.msg_id, out.message.msg_id);
        assert_eq!(m.timestamp, 1_700_000_000);
        assert_eq!((m.i, m.username.as_str()), (0, ""));
    }

    #[test]
    fn decodes_what_pika_sends() {
        let mut headers = FieldTable::default();
        headers.insert(SCHEMA.into(), long_string("base.message"));
        headers.insert(SENT_AT.into(), long_string("2024-02-29T23:59:59+01:00"));
        headers.insert(SEVERITY.into(), AMQPValue::LongInt(30));
        let props = BasicProperties::default()
            .with_content_encoding("utf-8".into())
            .with_message_id("abc".into())
            .with_headers(headers);
        let d = decode("t.x", &props, br#"{"k": "\u00e9"}"#).unwrap();
        assert_eq!(d.message.msg, json!({"k": "é"}));
        assert_eq!(d.message.msg_id, "abc");
        assert_eq!(d.message.timestamp, 1_709_247_599);
        assert!(d.via.is_empty());
    }

    #[test]
    fn refuses_what_fedora_messaging_refuses() {
        let props = BasicProperties::default().with_message_id("abc".into());
        assert!(decode("t", &props, b"{nope")
            .unwrap_err()
            .contains("not JSON"));
        assert!(decode("t", &props, b"\xff").unwrap_err().contains("UTF-8"));
        let latin = props.clone().with_content_encoding("latin-1".into());
        assert!(decode("t", &latin, b"{}").unwrap_err().contains("encoding"));
        let no_id = BasicProperties::default();
        assert!(decode("t", &no_id, b"{}")
            .unwrap_err()
            .contains("message_id"));
        // No sent-at: the AMQP timestamp, when there is one.
        let d = decode("t", &props.with_timestamp(1234), b"{}").unwrap();
        assert_eq!(d.message.timestamp, 1234);
    }

    #[test]
    fn sent_at_both_ways() {
        assert_eq!(sent_at(0), "1970-01-01T00:00:00+00:00");
        for ts in [0, 1, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_sent_at(&sent_at(ts)), Some(ts));
        }
        assert_eq!(
            parse_sent_at("2023-11-14T22:13:20.123456+00:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_sent_at("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_sent_at("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(
            parse_sent_at("2023-11-14T17:13:20-05:00"),
            Some(1_700_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2023-13-14T22:13:20+00:00",
            "2023-11-14T22:13:20+x",
        ] {
            assert_eq!(parse_sent_at(bad), None, "{bad}");
        }
    }
}
