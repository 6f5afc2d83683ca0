//! Unit tests of the PEM and base64 helpers, the routing policy and error
//! naming.

use super::validate::routing_allows;
use super::*;
use std::collections::HashMap;

#[test]
fn base64_is_wrapped_like_python() {
    assert_eq!(wrap_base64(b"abc"), "YWJj\n");
    let long = wrap_base64(&[0u8; 100]);
    let lines: Vec<&str> = long.split_terminator('\n').collect();
    assert_eq!(lines.iter().map(|l| l.len()).collect::<Vec<_>>(), [76, 60]);
    assert!(long.ends_with("==\n"));
    assert_eq!(lenient_base64(&long).unwrap(), vec![0u8; 100]);
    assert_eq!(lenient_base64("YW\nJj\n").unwrap(), b"abc");
    assert!(lenient_base64("YWJ").is_err());
}

#[test]
fn routing_policy_is_fedmsg_s() {
    let policy: HashMap<String, Vec<String>> = [(
        "t.a".to_string(),
        vec!["alice".to_string(), "bob".to_string()],
    )]
    .into();
    assert!(routing_allows(&policy, false, "t.a", "bob"));
    assert!(!routing_allows(&policy, false, "t.a", "carol"));
    assert!(routing_allows(&policy, false, "t.other", "carol"));
    assert!(!routing_allows(&policy, true, "t.other", "alice"));
    assert!(routing_allows(&policy, true, "t.a", "alice"));
    assert!(!routing_allows(&HashMap::new(), true, "t.a", "alice"));
}

#[test]
fn serials_print_in_hex() {
    assert_eq!(hex(&[0x00, 0x1f, 0x02]), "1f02");
    assert_eq!(hex(&[0]), "0");
}

#[test]
fn bad_pem_is_named() {
    let err = Signer::from_pem(b"nothing here", b"").unwrap_err();
    assert!(
        err.to_string()
            .contains("no `-----BEGIN CERTIFICATE-----` block"),
        "{err}"
    );
    let err = Validator::new(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        None,
        HashMap::new(),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::Pem {
                what: "the CA certificate",
                ..
            }
        ),
        "{err}"
    );
}
