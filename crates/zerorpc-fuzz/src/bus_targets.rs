//! The bus targets: `bus_signature`, `bus_replay`, `bus_schema` and
//! `canonical_json`.

use super::*;

/// fedmsg signature and certificate checks (`crypto::Validator`, with a
/// test CA, its CRL and a routing policy, at a fixed date), the first
/// byte picking what the rest is:
/// * 0: an envelope as received: read, validated by both validators
///   (nitpicky or not); one that is accepted must be genuine: alice's or
///   bob's own signature over its payload (PKCS#1 v1.5 signatures are
///   deterministic, so it is recomputed and compared);
/// * 1: an envelope, signed by one of five signers (valid, valid, revoked,
///   expired, another CA's) chosen by the first byte: the verdict must be
///   the one the PKI and the policy call for, the same after a round trip
///   through its canonical JSON; then one byte of that JSON is altered
///   (the next four bytes say how): if the result is still accepted, its
///   signed payload must be the one that was signed;
/// * 2: DER bytes put in alice's signed message as its certificate (base64
///   of PEM, as fedmsg sends it): the X.509 parsing and chain checks on
///   arbitrary certificates; accepted only if it is alice's;
/// * 3: a CA certificate and a CRL file (PEM) as an operator gives them:
///   `Validator::new` must refuse or build a validator that works.
///
/// Never a panic. Not covered: signing with arbitrary keys (the keys are
/// the operator's), `Validator::from_files` (the same after reading).
pub fn bus_signature(data: &[u8]) {
    use zerorpc_bus::crypto::Validator;
    use zerorpc_bus::message::Message;
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let pki = &*bus::PKI;
    let now = bus::now();
    match ctl % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let Ok(msg) = Message::from_json(text) else {
                return;
            };
            for v in &pki.validators {
                if v.validate_at(&msg, now).is_ok() {
                    assert!(bus::genuine(&msg), "a message nobody signed was accepted");
                }
            }
        }
        1 => {
            let mut input = Input(rest);
            let how = input.array::<4>();
            let Ok(text) = std::str::from_utf8(input.0) else {
                return;
            };
            let Ok(mut msg) = Message::from_json(text) else {
                return;
            };
            let i = usize::from(ctl >> 2) % bus::SIGNERS.len();
            let nitpicky = ctl & 0x80 != 0;
            let validator = &pki.validators[usize::from(nitpicky)];
            pki.signers[i].sign(&mut msg).expect("signing");
            let got = validator.validate_at(&msg, now);
            assert!(
                bus::expected(i, &msg.topic, nitpicky, &got),
                "{} signed on {:?}: {got:?}",
                bus::SIGNERS[i].0,
                msg.topic
            );
            let wire = msg.to_canonical_json();
            let back = Message::from_json(&wire).expect("a signed message's JSON reads back");
            let again = validator.validate_at(&back, now);
            assert_eq!(
                again.is_ok(),
                got.is_ok(),
                "the verdict changed on the wire"
            );
            let mut bytes = wire.into_bytes();
            Input(&how).tamper(&mut bytes);
            let Ok(text) = String::from_utf8(bytes) else {
                return;
            };
            if let Ok(altered) = Message::from_json(&text) {
                if validator.validate_at(&altered, now).is_ok() {
                    assert!(
                        got.is_ok(),
                        "an altered message passed where the original failed"
                    );
                    assert_eq!(
                        altered.signed_payload(),
                        msg.signed_payload(),
                        "an altered message was accepted"
                    );
                }
            }
        }
        2 => {
            let mut msg = pki.signed.clone();
            msg.certificate = Some(bus::certificate_field(rest));
            for v in &pki.validators {
                if v.validate_at(&msg, now).is_ok() {
                    assert_eq!(rest, &pki.ders[0][..], "a certificate not alice's passed");
                }
            }
        }
        _ => {
            let _ = Validator::new(rest, None, bus::policy(), false);
            if let Ok(v) = Validator::new(bus::CA.as_bytes(), Some(rest), bus::policy(), false) {
                let _ = v.validate_at(&pki.signed, now);
            }
        }
    }
}

/// fedmsg's replay queries, as the daemon's replay endpoint gets them (one
/// frame): `ReplayQuery::parse`, then `replay::answer` against a store of
/// 24 known messages (with at most 3 and 10,000 messages an answer, the
/// daemon's limit), compared with a model of the documented semantics (a
/// < seq ≤ b for ranges, each message once, in seq order, `NoMatch`,
/// `TooManyMatches`, each envelope with its `seq_id` as canonical JSON); a
/// refused query's `error_reply`. The same bytes as a stored envelope for
/// `with_seq_id` (the fedmsg PUB fan-out's): any JSON object takes it, and
/// for canonical JSON the result is the canonical JSON of the object with
/// `seq_id` set. Not covered: the REQ/REP socket, a store that fails.
pub fn bus_replay(data: &[u8]) {
    use zerorpc_bus::replay::{self, ReplayError, ReplayQuery};
    match ReplayQuery::parse(data) {
        Err(e) => {
            let _ = replay::error_reply(&e);
        }
        Ok(q) => {
            let fixture = &*bus::REPLAY;
            for max in [3, 10_000] {
                let got = replay::answer(&fixture.store, &q, max);
                match (replay_model(&fixture.records, &q, max), got) {
                    (Ok(want), Ok(got)) => assert_eq!(got, want, "{q:?}"),
                    (Err(0), Err(ReplayError::NoMatch)) => {}
                    (Err(_), Err(ReplayError::TooManyMatches { max: m })) if m == max => {}
                    (want, got) => panic!("{q:?} (max {max}): want {want:?}, got {got:?}"),
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_with_seq_id(text);
    }
}

/// What `answer` must give: the envelopes with their seq_id, or `Err(n)`,
/// n matches (0: none, else more than `max`).
fn replay_model(
    records: &[bus::Rec],
    q: &zerorpc_bus::replay::ReplayQuery,
    max: usize,
) -> Result<Vec<String>, usize> {
    use zerorpc_bus::replay::ReplayQuery as Q;
    let matches: Vec<&bus::Rec> = records
        .iter()
        .filter(|r| match q {
            Q::SeqId(s) => r.seq == *s,
            Q::SeqIds(s) => s.contains(&r.seq),
            Q::SeqIdRange(a, b) => *a < r.seq && r.seq <= *b,
            Q::MsgId(id) => r.msg_id == *id,
            Q::MsgIds(ids) => ids.contains(&r.msg_id),
            // from ≤ timestamp ≤ to, bounds past i64 saturating as stored
            // timestamps do (a float timestamp past i64 is kept as
            // i64::MAX: a query from 1e19 finds it)
            Q::Time(from, to) => {
                from.ceil() as i64 <= r.timestamp && r.timestamp <= to.floor() as i64
            }
        })
        .collect();
    if matches.is_empty() || matches.len() > max {
        return Err(matches.len());
    }
    Ok(matches
        .iter()
        .map(|r| {
            let mut v: serde_json::Value = serde_json::from_str(&r.json).expect("stored JSON");
            v["seq_id"] = serde_json::Value::from(r.seq);
            zerorpc_bus::json::to_canonical(&v)
        })
        .collect())
}

/// `with_seq_id` over any text: no panic; a JSON object always takes it;
/// the canonical form of one gives the canonical form with `seq_id`.
fn check_with_seq_id(text: &str) {
    use zerorpc_bus::json::to_canonical;
    use zerorpc_bus::replay::with_seq_id;
    let seq = text.len() as u64 * 7919;
    let got = with_seq_id(text, seq);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let got = got.expect("a JSON object takes a seq_id");
    assert!(
        serde_json::from_str::<serde_json::Value>(&got).is_ok(),
        "with_seq_id made invalid JSON of {text:?}: {got:?}"
    );
    let mut object = serde_json::Value::Object(map);
    let canonical = to_canonical(&object);
    object["seq_id"] = serde_json::Value::from(seq);
    assert_eq!(
        with_seq_id(&canonical, seq).expect("canonical JSON takes a seq_id"),
        to_canonical(&object),
        "with_seq_id on canonical JSON"
    );
}

/// Schema validation of message bodies against a registry of schemas (the
/// crate ships none: `bus::SCHEMAS` has the documented kinds: versions of
/// one glob topic, a literal topic, many JSON Schema keywords, draft 7 and
/// 2020-12): an envelope's topic and body, or any JSON body on one of six
/// topics. `SchemaRegistry::check` must agree with `check_with` naming the
/// schema it chose (or, with no schema for the topic, every named schema
/// is for another topic), an invalid body names at least one violation,
/// each a JSON pointer; summaries render (the registry's templates, and
/// one the envelope carries as `x-summary`). Not covered: compiling
/// arbitrary schemas (`load_dir`, `add`: operator files, left out as
/// their regular expressions can be made slow at will).
pub fn bus_schema(data: &[u8]) {
    use zerorpc_bus::schema::{render_summary, Checked, SchemaError};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((topic, body, template)) = bus::schema_input(text) else {
        return;
    };
    let r = &*bus::SCHEMAS;
    match r.check(&topic, &body) {
        Ok(Checked::Valid { schema_id }) => {
            let again = r.check_with(&topic, &body, Some(&schema_id));
            assert!(
                matches!(&again, Ok(Checked::Valid { schema_id: s }) if *s == schema_id),
                "{schema_id} chosen and valid, but named: {again:?}"
            );
            let _ = r.fedora_messaging_name(&schema_id);
        }
        Ok(Checked::NoSchema) => {
            for id in r.schema_ids() {
                let named = r.check_with(&topic, &body, Some(id));
                assert!(
                    matches!(named, Err(SchemaError::WrongTopic { .. })),
                    "no schema for {topic:?}, but {id} named: {named:?}"
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            let SchemaError::Invalid {
                schema_id,
                violations,
                ..
            } = e
            else {
                panic!("check can only find a body invalid: {text}");
            };
            assert!(!violations.is_empty(), "invalid without a violation");
            for v in &violations {
                assert!(v.path.is_empty() || v.path.starts_with('/'), "{v}");
            }
            let named = r.check_with(&topic, &body, Some(&schema_id));
            assert!(
                matches!(named, Err(SchemaError::Invalid { .. })),
                "{schema_id} refused the body when chosen, not when named: {named:?}"
            );
        }
    }
    let _ = r.summary(&topic, &body);
    if let Some(t) = template {
        let _ = render_summary(&t, &body);
    }
}

/// fedmsg's canonical JSON (`zerorpc_bus::json`, what signatures are
/// computed over) against a reference (`pyjson`: serde_json's strings and
/// integers with `ensure_ascii` applied after, keys sorted by character,
/// floats as Python's `repr` rebuilt from Rust's positional `Display`):
/// any JSON serde_json reads is encoded canonically (and in Python's
/// default style) exactly as the reference does; the canonical text is
/// ASCII, reads back to the same value, and re-encodes to itself. The
/// first eight bytes, as an `f64`, also go through `python_float_repr`
/// (every float, not only those JSON text reaches). Not covered: what
/// serde_json cannot hold (NaN, big integers kept exact, lone surrogates:
/// the module documentation says so).
pub fn canonical_json(data: &[u8]) {
    use zerorpc_bus::json::{python_float_repr, to_canonical, to_python_default};
    if let Some(bits) = data.get(..8) {
        let x = f64::from_bits(u64::from_be_bytes(bits.try_into().expect("8 bytes")));
        if x.is_finite() {
            let repr = python_float_repr(x);
            assert_eq!(repr, pyjson::float_repr(x), "repr of {x:e}");
            let back: f64 = repr.parse().expect("a repr reads back");
            assert!(back == x && back.is_sign_negative() == x.is_sign_negative());
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let canonical = to_canonical(&value);
    assert!(canonical.is_ascii(), "canonical JSON is ASCII");
    assert_eq!(
        canonical,
        pyjson::dumps(&value, true, true),
        "canonical JSON"
    );
    assert_eq!(
        to_python_default(&value),
        pyjson::dumps(&value, false, false),
        "Python's default json.dumps"
    );
    let back: serde_json::Value =
        serde_json::from_str(&canonical).expect("canonical JSON reads back");
    assert_eq!(back, value, "canonical JSON reads back to the value");
    assert_eq!(to_canonical(&back), canonical, "canonical JSON is stable");
}
