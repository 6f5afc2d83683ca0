//! Signing and validation against real fedmsg 1.1.7 (x509 backend, with
//! pyOpenSSL doing the chain and CRL checks): a test CA, signing
//! certificates (good, revoked, expired, from another CA) and a CRL made
//! with Python's `cryptography`; messages signed by us validate in fedmsg
//! and the other way round, and every bad case is rejected by both sides,
//! ours with the specific error.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use zerorpc_bus::crypto::{CryptoError, Signer, Validator};
use zerorpc_bus::message::Message;

/// Writes, into the directory argv[1]: `ca.crt`/`ca.key`, `otherca.crt`,
/// `crl.pem` (by the CA, revoking `mallory`), `othercrl.pem` (by the other
/// CA), and `<name>.crt`/`<name>.key` for `alice` and `bob` (PKCS#1 keys),
/// `mallory` (PKCS#8, revoked), `old` (expired), `eve` (issued by the other
/// CA with the common name `alice`).
const PY_MAKE_PKI: &str = include_str!("py/make_pki.py");

/// stdin: JSON `[[message, certname], ...]`; signs each with
/// `fedmsg.crypto.sign` (ssldir argv[1]) and prints the signed messages
/// as `fedmsg.encoding.dumps`, one a line.
const PY_SIGN: &str = r#"
import json, sys
import fedmsg.crypto, fedmsg.encoding
ssldir = sys.argv[1]
for msg, certname in json.loads(sys.stdin.read()):
    signed = fedmsg.crypto.sign(msg, ssldir=ssldir, certname=certname, crypto_backend='x509')
    print(fedmsg.encoding.dumps(signed))
print("ALL DONE")
"#;

/// stdin: JSON `[[message text, routing_policy, nitpicky], ...]`; prints
/// `fedmsg.crypto.validate`'s answer for each (the CA and CRL of ssldir
/// argv[1], local files only), or `EXC ...` if it raised.
const PY_VALIDATE: &str = r#"
import json, sys, logging
logging.basicConfig(level=logging.CRITICAL)
import fedmsg.crypto, fedmsg.encoding
ssldir = sys.argv[1]
for text, policy, nitpicky in json.loads(sys.stdin.read()):
    config = dict(
        ssldir=ssldir,
        crypto_backend='x509',
        crypto_validate_backends=['x509'],
        ca_cert_location=ssldir + '/ca.crt',
        crl_location=ssldir + '/crl.pem',
        routing_policy=policy,
        routing_nitpicky=nitpicky,
    )
    try:
        print(fedmsg.crypto.validate(fedmsg.encoding.loads(text), **config))
    except Exception as e:
        print("EXC %r" % (e,))
print("ALL DONE")
"#;

fn python(script: &str, args: &[&str], stdin: &str) -> Vec<String> {
    zerorpc_testkit::python_lines(zerorpc_testkit::fedmsg_python(), script, args, stdin)
}

struct Pki {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Pki {
    fn make() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("fedmsg-pki-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir");
        let path = dir.path().to_owned();
        python(PY_MAKE_PKI, &[path.to_str().expect("utf-8 path")], "");
        Pki { _dir: dir, path }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn signer(&self, name: &str) -> Signer {
        Signer::from_files(
            &self.file(&format!("{name}.crt")),
            &self.file(&format!("{name}.key")),
        )
        .unwrap_or_else(|e| panic!("signer {name}: {e}"))
    }

    fn validator(&self, policy: &HashMap<String, Vec<String>>, nitpicky: bool) -> Validator {
        Validator::from_files(
            &self.file("ca.crt"),
            Some(&self.file("crl.pem")),
            policy.clone(),
            nitpicky,
        )
        .expect("validator")
    }

    fn dir(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

const TOPIC: &str = "org.fedoraproject.dev.zerorpc.test";

fn message(i: u64) -> Message {
    Message::new(
        TOPIC,
        json!({
            "text": "h\u{e9}llo \u{1F600} \"quoted\"\n\ttab",
            "float": 1.5e-7,
            "big": 18446744073709551615u64,
            "neg": -42,
            "list": [null, true, 1e100, {"z": 1, "a": 2}],
        }),
        i,
        "tester",
    )
}

/// One validation case: what we expect from Rust (`None` = valid) and
/// from fedmsg, with the routing configuration both use.
struct Case {
    what: &'static str,
    msg: Message,
    policy: HashMap<String, Vec<String>>,
    nitpicky: bool,
    rust: fn(&Result<(), CryptoError>) -> bool,
    python_valid: bool,
}

fn policy(topic: &str, names: &[&str]) -> HashMap<String, Vec<String>> {
    [(
        topic.to_owned(),
        names.iter().map(|s| s.to_string()).collect(),
    )]
    .into()
}

#[test]
fn signing_and_validation_interoperate_with_fedmsg() {
    let pki = Pki::make();
    let alice = pki.signer("alice");
    assert_eq!(alice.cert_name(), "alice");

    // Our signature is fedmsg's, byte for byte (PKCS#1 v1.5 is
    // deterministic): same message, same key, same output.
    let mut ours = message(1);
    alice.sign(&mut ours).expect("sign");
    assert!(ours.is_signed());
    assert_eq!(ours.crypto.as_deref(), Some("x509"));
    let mut unsigned = message(1);
    unsigned.msg_id = ours.msg_id.clone();
    unsigned.timestamp = ours.timestamp;
    let to_sign = json!([
        [unsigned.to_value(), "alice"],
        [{
            "topic": TOPIC, "msg": {"x": [0.1, -0.0, "\u{10348}"]}, "timestamp": 1700000000.25,
            "msg_id": "2024-abc", "i": 9, "username": "py", "seq_id": 12
        }, "bob"],
        [message(3).to_value(), "alice"],
    ]);
    let py_signed = python(PY_SIGN, &[pki.dir()], &to_sign.to_string());
    assert_eq!(py_signed.len(), 3);
    assert_eq!(
        py_signed[0],
        ours.to_canonical_json(),
        "fedmsg signs the same message to the same bytes"
    );

    // Python-signed messages validate here (one with a float timestamp
    // and an extra field, kept verbatim).
    let open = HashMap::new();
    let validator = pki.validator(&open, false);
    let from_python: Vec<Message> = py_signed
        .iter()
        .map(|t| Message::from_json(t).expect("fedmsg's message parses"))
        .collect();
    for (m, text) in from_python.iter().zip(&py_signed) {
        assert_eq!(&m.to_canonical_json(), text, "round trip is exact");
        validator
            .validate(m)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    assert_eq!(from_python[1].extra.get("seq_id"), Some(&json!(12)));
    // And a Python-signed message that we tamper with is rejected.
    let mut py_tampered = from_python[2].clone();
    py_tampered.msg["neg"] = json!(43);

    let mut tampered = ours.clone();
    tampered.msg["text"] = json!("changed");
    let mut retopic = ours.clone();
    retopic.topic = format!("{TOPIC}.other");
    let mut no_cert = ours.clone();
    no_cert.certificate = None;
    let mut revoked = message(4);
    pki.signer("mallory").sign(&mut revoked).expect("sign");
    let mut foreign = message(5);
    pki.signer("eve").sign(&mut foreign).expect("sign");
    let mut expired = message(6);
    pki.signer("old").sign(&mut expired).expect("sign");
    let mut by_bob = message(7);
    pki.signer("bob").sign(&mut by_bob).expect("sign");
    let mut gpg = ours.clone();
    gpg.crypto = Some("gpg".into());

    let cases = vec![
        Case {
            what: "signed by us",
            msg: ours.clone(),
            policy: open.clone(),
            nitpicky: false,
            rust: |r| r.is_ok(),
            python_valid: true,
        },
        Case {
            what: "allowed by a nitpicky policy",
            msg: ours.clone(),
            policy: policy(TOPIC, &["bob", "alice"]),
            nitpicky: true,
            rust: |r| r.is_ok(),
            python_valid: true,
        },
        Case {
            what: "tampered after signing",
            msg: tampered,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::BadSignature)),
            python_valid: false,
        },
        Case {
            what: "topic changed after signing",
            msg: retopic,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::BadSignature)),
            python_valid: false,
        },
        Case {
            what: "python-signed, tampered",
            msg: py_tampered,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::BadSignature)),
            python_valid: false,
        },
        Case {
            what: "unsigned",
            msg: message(8),
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::Unsigned { .. })),
            python_valid: false,
        },
        Case {
            what: "no certificate",
            msg: no_cert,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| {
                matches!(
                    r,
                    Err(CryptoError::Unsigned {
                        missing: "certificate"
                    })
                )
            },
            python_valid: false,
        },
        Case {
            what: "revoked certificate",
            msg: revoked,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::Revoked { .. })),
            python_valid: false,
        },
        Case {
            what: "certificate from another CA",
            msg: foreign,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::UntrustedCertificate { .. })),
            python_valid: false,
        },
        Case {
            what: "expired certificate",
            msg: expired,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::Expired { .. })),
            python_valid: false,
        },
        Case {
            what: "signer not in the topic's policy",
            msg: by_bob.clone(),
            policy: policy(TOPIC, &["alice"]),
            nitpicky: false,
            rust: |r| matches!(r, Err(CryptoError::RoutingPolicy { topic, name }) if topic == TOPIC && name == "bob"),
            python_valid: false,
        },
        Case {
            what: "topic not in a nitpicky policy",
            msg: by_bob.clone(),
            policy: policy("org.fedoraproject.dev.elsewhere", &["bob"]),
            nitpicky: true,
            rust: |r| matches!(r, Err(CryptoError::RoutingPolicy { .. })),
            python_valid: false,
        },
        Case {
            what: "topic not in a lenient policy",
            msg: by_bob,
            policy: policy("org.fedoraproject.dev.elsewhere", &["alice"]),
            nitpicky: false,
            rust: |r| r.is_ok(),
            python_valid: true,
        },
        Case {
            what: "gpg backend",
            msg: gpg,
            policy: open.clone(),
            nitpicky: false,
            rust: |r| matches!(r, Err(e @ CryptoError::UnsupportedBackend { backend }) if backend == "\"gpg\"" && e.to_string() == "the message was signed with the \"gpg\" backend; only x509 is accepted"),
            python_valid: false,
        },
    ];

    let batch: Vec<Value> = cases
        .iter()
        .map(|c| json!([c.msg.to_canonical_json(), c.policy, c.nitpicky]))
        .collect();
    let answers = python(PY_VALIDATE, &[pki.dir()], &Value::Array(batch).to_string());
    assert_eq!(answers.len(), cases.len());
    let mut failures = Vec::new();
    for (case, answer) in cases.iter().zip(&answers) {
        let expected = if case.python_valid { "True" } else { "False" };
        if answer != expected {
            failures.push(format!(
                "{}: fedmsg says {answer}, expected {expected}",
                case.what
            ));
        }
        let result = pki
            .validator(&case.policy, case.nitpicky)
            .validate(&case.msg);
        if !(case.rust)(&result) {
            failures.push(format!("{}: we say {result:?}", case.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn keys_and_crls_are_checked_when_loaded() {
    let pki = Pki::make();
    // PKCS#8 (mallory) and PKCS#1 (alice) keys both load.
    assert_eq!(pki.signer("mallory").cert_name(), "mallory");
    // A key that is not the certificate's.
    let err = Signer::from_files(&pki.file("alice.crt"), &pki.file("bob.key")).unwrap_err();
    assert!(matches!(err, CryptoError::KeyMismatch(_)), "{err}");
    let err = Signer::from_files(&pki.file("alice.crt"), &pki.file("ca.crt")).unwrap_err();
    assert!(matches!(err, CryptoError::Key(_)), "{err}");
    let err = Signer::from_files(&pki.file("absent.crt"), &pki.file("alice.key")).unwrap_err();
    assert!(matches!(err, CryptoError::Io { .. }), "{err}");
    // A CRL from another CA.
    let err = Validator::from_files(
        &pki.file("ca.crt"),
        Some(&pki.file("othercrl.pem")),
        HashMap::new(),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, CryptoError::Crl(_)), "{err}");
    // Without a CRL, the revoked certificate is accepted (nothing says
    // otherwise); with it, it is not.
    let mut m = message(1);
    pki.signer("mallory").sign(&mut m).expect("sign");
    let no_crl =
        Validator::from_files(&pki.file("ca.crt"), None, HashMap::new(), false).expect("validator");
    no_crl.validate(&m).expect("valid without a CRL");
    // The CRL's own dates count: a week on, it has expired.
    let validator = pki.validator(&HashMap::new(), false);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(8 * 86400);
    let mut good = message(2);
    pki.signer("alice").sign(&mut good).expect("sign");
    validator.validate(&good).expect("valid now");
    let err = validator.validate_at(&good, later).unwrap_err();
    assert!(
        matches!(&err, CryptoError::UntrustedCertificate { reason } if reason.contains("CRL expired")),
        "{err}"
    );
    // A certificate field that is not base64 of a certificate.
    let mut broken = good.clone();
    broken.certificate = Some("bm90IGEgY2VydA==\n".into());
    assert!(matches!(
        validator.validate(&broken),
        Err(CryptoError::MalformedCertificate { .. })
    ));
    let mut broken = good.clone();
    broken.signature = Some("abc".into());
    assert!(matches!(
        validator.validate(&broken),
        Err(CryptoError::MalformedSignature { .. })
    ));
    let _: &Path = pki.path.as_path();
}
