//! X.509 signing and validation with fedmsg's rules (fedmsg/crypto/x509_ng.py).
//!
//! Signing ([`Signer::sign`]): `crypto` = `"x509"`, then an RSA PKCS#1 v1.5
//! signature with SHA-1 over [`Message::signed_payload`] (the canonical JSON
//! without `signature` and `certificate`), stored base64-encoded and cut
//! into 76-column lines each ending in `\n` (what fedmsg does, for M2Crypto's
//! sake, and what Python's `base64.encodebytes` gives); `certificate` is the
//! signer's certificate as PEM (64-column base64, LF line ends), encoded the
//! same way.
//!
//! Validation ([`Validator::validate`]), in fedmsg's order:
//! 1. the message names the x509 backend (or none) and carries `signature`
//!    and `certificate` strings;
//! 2. the certificate is issued by the CA (issuer name, CA signature), is
//!    within its validity period (so is the CA), and, when a CRL is
//!    configured, the CRL (signed by the CA) is current and does not list it
//!    (OpenSSL's checks with `CRL_CHECK | CRL_CHECK_ALL`, as fedmsg asks
//!    pyOpenSSL);
//! 3. the signature verifies with the certificate's RSA key;
//! 4. the routing policy allows the certificate's common name on the
//!    message's topic: a topic listed in the policy must name the signer; an
//!    unlisted topic passes unless `routing_nitpicky`.
//!
//! Certificate and CRL signatures: RSA PKCS#1 v1.5 with SHA-1/224/256/384/512
//! (what fedmsg deployments use); other algorithms are rejected by name.
//! Unlike OpenSSL we do not reject unknown critical extensions, and names
//! are compared exactly rather than after OpenSSL's canonicalisation.

use crate::message::Message;
use base64::Engine as _;
use der::{Decode as _, Encode as _, Reader as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::{PrivateKey, PublicKey};
use serde_json::Value;
use spki::ObjectIdentifier;
use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;
use x509_cert::certificate::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

/// Why signing or validation failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The message lacks a `signature` or `certificate` string.
    #[error("the message is not signed (no {missing} field)")]
    Unsigned {
        /// The missing field.
        missing: &'static str,
    },
    /// The message names a signing backend other than x509.
    #[error("the message was signed with the {backend} backend; only x509 is accepted")]
    UnsupportedBackend {
        /// The `crypto` field, as JSON (a quoted string, `null`...).
        backend: String,
    },
    /// The `signature` field is not base64 (or not a string).
    #[error("the message's signature is malformed: {reason}")]
    MalformedSignature {
        /// What is wrong with it.
        reason: String,
    },
    /// The `certificate` field is not base64 of a PEM certificate.
    #[error("the message's certificate is malformed: {reason}")]
    MalformedCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The signature does not verify over the message.
    #[error("the message's signature does not match its content")]
    BadSignature,
    /// The certificate does not chain to the CA (or the CRL cannot be used).
    #[error("the signing certificate is not trusted: {reason}")]
    UntrustedCertificate {
        /// Why.
        reason: String,
    },
    /// The certificate (or the CA's) is past its notAfter.
    #[error("the certificate {subject} expired at {not_after}")]
    Expired {
        /// The expired certificate's subject.
        subject: String,
        /// Its notAfter.
        not_after: String,
    },
    /// The certificate (or the CA's) is before its notBefore.
    #[error("the certificate {subject} is not valid before {not_before}")]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// Its notBefore.
        not_before: String,
    },
    /// The CRL lists the certificate.
    #[error("the signing certificate (serial {serial}) is revoked")]
    Revoked {
        /// The certificate's serial number, in hex.
        serial: String,
    },
    /// The routing policy does not allow this signer on this topic.
    #[error("the routing policy does not allow {name:?} to publish on {topic:?}")]
    RoutingPolicy {
        /// The message's topic.
        topic: String,
        /// The signing certificate's common name.
        name: String,
    },
    /// A private key that cannot be loaded or used.
    #[error("private key: {0}")]
    Key(String),
    /// The signer's key is not the one of its certificate.
    #[error("the private key does not belong to the certificate {0}")]
    KeyMismatch(String),
    /// A certificate or CRL (of the signer or the validator's CA) that does not load.
    #[error("{what}: {reason}")]
    Pem {
        /// Which document.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The CRL is not the CA's.
    #[error("the CRL is not usable with this CA: {0}")]
    Crl(String),
    /// Reading a key, certificate or CRL file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A certificate with its DER as read (signatures cover the original bytes).
#[derive(Clone)]
struct LoadedCert {
    der: Vec<u8>,
    cert: Certificate,
}

impl LoadedCert {
    fn from_pem(pem: &[u8], what: &'static str) -> Result<LoadedCert, CryptoError> {
        let der = first_pem_block(pem, "CERTIFICATE", what)?;
        LoadedCert::from_der(der, what)
    }

    fn from_der(der: Vec<u8>, what: &'static str) -> Result<LoadedCert, CryptoError> {
        let cert = Certificate::from_der(&der).map_err(|e| CryptoError::Pem {
            what,
            reason: format!("not an X.509 certificate: {e}"),
        })?;
        Ok(LoadedCert { der, cert })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    fn rsa_key(&self) -> Result<PublicKey, String> {
        let spki = self
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        PublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA key: {e}"))
    }

    /// The subject's first common name (what fedmsg's routing policy names).
    fn common_name(&self) -> Result<String, String> {
        match self.cert.tbs_certificate().subject().common_name() {
            Ok(Some(cn)) => Ok(cn.value().into_owned()),
            Ok(None) => Err("the certificate's subject has no common name".into()),
            Err(e) => Err(format!(
                "the certificate's common name does not decode: {e}"
            )),
        }
    }
}

/// Signs messages as one fedmsg certificate holder.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey<sha1::Sha1>,
    /// The `certificate` field, ready to insert.
    certificate_field: String,
    cert_name: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_name", &self.cert_name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from its certificate (PEM) and RSA private key (PEM,
    /// PKCS#1 `RSA PRIVATE KEY` or unencrypted PKCS#8 `PRIVATE KEY`). The key
    /// must be the certificate's.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Signer, CryptoError> {
        let cert = LoadedCert::from_pem(cert_pem, "the signing certificate")?;
        let key_text = std::str::from_utf8(key_pem)
            .map_err(|_| CryptoError::Key("the key file is not PEM text".into()))?;
        let private = if key_text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            PrivateKey::from_pkcs1_pem(key_text)
                .map_err(|e| CryptoError::Key(format!("PKCS#1 RSA key: {e}")))?
        } else if key_text.contains("-----BEGIN PRIVATE KEY-----") {
            PrivateKey::from_pkcs8_pem(key_text)
                .map_err(|e| CryptoError::Key(format!("PKCS#8 RSA key: {e}")))?
        } else {
            return Err(CryptoError::Key(
                "no `RSA PRIVATE KEY` or `PRIVATE KEY` PEM block (encrypted keys are not supported)"
                    .into(),
            ));
        };
        let public = cert.rsa_key().map_err(|e| CryptoError::Pem {
            what: "the signing certificate",
            reason: e,
        })?;
        if PublicKey::from(&private) != public {
            return Err(CryptoError::KeyMismatch(cert.subject()));
        }
        let cert_name = cert.common_name().map_err(|e| CryptoError::Pem {
            what: "the signing certificate",
            reason: e,
        })?;
        let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &cert.der)
            .map_err(|e| CryptoError::Pem {
                what: "the signing certificate",
                reason: e.to_string(),
            })?;
        Ok(Signer {
            key: SigningKey::new(private),
            certificate_field: wrap_base64(pem.as_bytes()),
            cert_name,
        })
    }

    /// [`Signer::from_pem`] with the two files (fedmsg's
    /// `<ssldir>/<certname>.crt` and `.key`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Signer, CryptoError> {
        Signer::from_pem(&read(cert)?, &read(key)?)
    }

    /// The certificate's subject common name: the name routing policies
    /// list (in fedmsg deployments it is also the certname).
    pub fn cert_name(&self) -> &str {
        &self.cert_name
    }

    /// Signs `msg` in place like fedmsg: sets `crypto`, `signature` and
    /// `certificate` (replacing any earlier ones, verbatim copies in
    /// [`Message::extra`] included).
    pub fn sign(&self, msg: &mut Message) -> Result<(), CryptoError> {
        for field in ["crypto", "signature", "certificate"] {
            msg.extra.remove(field);
        }
        msg.crypto = Some("x509".to_owned());
        let payload = msg.signed_payload();
        let signature = self
            .key
            .try_sign(payload.as_bytes())
            .map_err(|e| CryptoError::Key(format!("signing failed: {e}")))?;
        msg.signature = Some(wrap_base64(&signature.to_bytes()));
        msg.certificate = Some(self.certificate_field.clone());
        tracing::trace!(topic = %msg.topic, signer = %self.cert_name, "signed");
        Ok(())
    }
}

/// Checks signed messages against a CA, an optional CRL and a routing policy.
#[derive(Clone)]
pub struct Validator {
    ca: LoadedCert,
    ca_key: PublicKey,
    crl: Option<CertificateList>,
    routing_policy: HashMap<String, Vec<String>>,
    routing_nitpicky: bool,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("ca", &self.ca.subject())
            .field("crl", &self.crl.is_some())
            .field("routing_policy", &self.routing_policy)
            .field("routing_nitpicky", &self.routing_nitpicky)
            .finish()
    }
}

impl Validator {
    /// A validator trusting the CA certificate `ca_pem` (fedmsg's
    /// `ca_cert_location`; the first certificate of the file), with the CA's
    /// CRL `crl_pem` (`crl_location`; its signature is checked here, its
    /// dates at each validation), the `routing_policy` (topic → common names
    /// allowed to publish on it) and `routing_nitpicky` (reject topics the
    /// policy does not list).
    pub fn new(
        ca_pem: &[u8],
        crl_pem: Option<&[u8]>,
        routing_policy: HashMap<String, Vec<String>>,
        routing_nitpicky: bool,
    ) -> Result<Validator, CryptoError> {
        let ca = LoadedCert::from_pem(ca_pem, "the CA certificate")?;
        let ca_key = ca.rsa_key().map_err(|e| CryptoError::Pem {
            what: "the CA certificate",
            reason: e,
        })?;
        let crl = match crl_pem {
            None => None,
            Some(pem) => {
                let der = first_pem_block(pem, "X509 CRL", "the CRL")?;
                let crl = CertificateList::from_der(&der).map_err(|e| CryptoError::Pem {
                    what: "the CRL",
                    reason: format!("not an X.509 CRL: {e}"),
                })?;
                if crl.tbs_cert_list.issuer != *ca.cert.tbs_certificate().subject() {
                    return Err(CryptoError::Crl(format!(
                        "it is issued by {}, not by the CA {}",
                        crl.tbs_cert_list.issuer,
                        ca.subject()
                    )));
                }
                if let Ok(Some((_, ku))) = ca.cert.tbs_certificate().get_extension::<KeyUsage>() {
                    if !ku.crl_sign() {
                        return Err(CryptoError::Crl(
                            "the CA certificate may not sign CRLs (keyUsage)".into(),
                        ));
                    }
                }
                let tbs = raw_tbs(&der).map_err(|e| CryptoError::Crl(e.to_string()))?;
                verify_issued(
                    &ca_key,
                    &crl.signature_algorithm.oid,
                    tbs,
                    crl.signature.as_bytes(),
                )
                .map_err(|e| CryptoError::Crl(format!("its signature: {e}")))?;
                Some(crl)
            }
        };
        Ok(Validator {
            ca,
            ca_key,
            crl,
            routing_policy,
            routing_nitpicky,
        })
    }

    /// [`Validator::new`] with files.
    pub fn from_files(
        ca: &Path,
        crl: Option<&Path>,
        routing_policy: HashMap<String, Vec<String>>,
        routing_nitpicky: bool,
    ) -> Result<Validator, CryptoError> {
        let crl = crl.map(read).transpose()?;
        Validator::new(&read(ca)?, crl.as_deref(), routing_policy, routing_nitpicky)
    }

    /// Whether `msg` is validly signed (see the module documentation);
    /// the error names the first check that failed.
    pub fn validate(&self, msg: &Message) -> Result<(), CryptoError> {
        self.validate_at(msg, SystemTime::now())
    }

    /// [`Validator::validate`] with certificate and CRL dates checked
    /// against `now`.
    pub fn validate_at(&self, msg: &Message, now: SystemTime) -> Result<(), CryptoError> {
        let result = self.check(msg, now);
        if let Err(e) = &result {
            tracing::debug!(topic = %msg.topic, msg_id = %msg.msg_id, error = %e, "message rejected");
        }
        result
    }

    fn check(&self, msg: &Message, now: SystemTime) -> Result<(), CryptoError> {
        // 1. The backend and the two fields (fedmsg.crypto.validate, then
        //    x509.validate).
        if msg.crypto.as_deref().is_some_and(|c| c != "x509") {
            return Err(CryptoError::UnsupportedBackend {
                backend: Value::String(msg.crypto.clone().unwrap_or_default()).to_string(),
            });
        }
        if let Some(other) = msg.extra.get("crypto") {
            return Err(CryptoError::UnsupportedBackend {
                backend: other.to_string(),
            });
        }
        let signature = credential(msg, &msg.signature, "signature")
            .map_err(|reason| CryptoError::MalformedSignature { reason })?;
        let certificate = credential(msg, &msg.certificate, "certificate")
            .map_err(|reason| CryptoError::MalformedCertificate { reason })?;
        let (Some(signature), Some(certificate)) = (signature, certificate) else {
            let missing = if msg.signature.is_none() && !msg.extra.contains_key("signature") {
                "signature"
            } else {
                "certificate"
            };
            return Err(CryptoError::Unsigned { missing });
        };
        let signature = lenient_base64(signature).map_err(|e| CryptoError::MalformedSignature {
            reason: format!("not base64: {e}"),
        })?;
        let pem = lenient_base64(certificate).map_err(|e| CryptoError::MalformedCertificate {
            reason: format!("not base64: {e}"),
        })?;
        let der =
            first_pem_block(&pem, "CERTIFICATE", "the message's certificate").map_err(|e| {
                CryptoError::MalformedCertificate {
                    reason: e.to_string(),
                }
            })?;
        let cert = LoadedCert::from_der(der, "the message's certificate").map_err(|e| {
            CryptoError::MalformedCertificate {
                reason: e.to_string(),
            }
        })?;

        // 2. The chain: CA, dates, CRL.
        self.check_chain(&cert, now)?;

        // 3. The signature over the canonical payload.
        let key = cert
            .rsa_key()
            .map_err(|reason| CryptoError::UntrustedCertificate { reason })?;
        let signature =
            Signature::try_from(signature.as_slice()).map_err(|_| CryptoError::BadSignature)?;
        VerifyingKey::<sha1::Sha1>::new(key)
            .verify(msg.signed_payload().as_bytes(), &signature)
            .map_err(|_| CryptoError::BadSignature)?;

        // 4. The routing policy.
        let name = cert
            .common_name()
            .map_err(|reason| CryptoError::UntrustedCertificate { reason })?;
        if routing_allows(
            &self.routing_policy,
            self.routing_nitpicky,
            &msg.topic,
            &name,
        ) {
            Ok(())
        } else {
            Err(CryptoError::RoutingPolicy {
                topic: msg.topic.clone(),
                name,
            })
        }
    }

    fn check_chain(&self, cert: &LoadedCert, now: SystemTime) -> Result<(), CryptoError> {
        let untrusted = |reason: String| CryptoError::UntrustedCertificate { reason };
        let tbs = cert.cert.tbs_certificate();
        let ca_tbs = self.ca.cert.tbs_certificate();
        if tbs.issuer() != ca_tbs.subject() {
            return Err(untrusted(format!(
                "it is issued by {}, not by the CA {}",
                tbs.issuer(),
                self.ca.subject()
            )));
        }
        // The CA must be allowed to sign certificates.
        if let Ok(Some((_, bc))) = ca_tbs.get_extension::<BasicConstraints>() {
            if !bc.ca {
                return Err(untrusted(
                    "the CA certificate is not a CA (basicConstraints)".into(),
                ));
            }
        }
        if let Ok(Some((_, ku))) = ca_tbs.get_extension::<KeyUsage>() {
            if !ku.key_cert_sign() {
                return Err(untrusted(
                    "the CA certificate may not sign certificates (keyUsage)".into(),
                ));
            }
        }
        if cert.cert.signature_algorithm() != tbs.signature() {
            return Err(untrusted(
                "its outer and inner signature algorithms differ".into(),
            ));
        }
        let raw = raw_tbs(&cert.der).map_err(|e| untrusted(e.to_string()))?;
        verify_issued(
            &self.ca_key,
            &cert.cert.signature_algorithm().oid,
            raw,
            cert.cert.signature().as_bytes(),
        )
        .map_err(|e| untrusted(format!("the CA's signature on it: {e}")))?;
        check_dates(cert, now)?;
        check_dates(&self.ca, now)?;
        if let Some(crl) = &self.crl {
            let list = &crl.tbs_cert_list;
            if list.this_update.to_system_time() > now {
                return Err(untrusted(format!(
                    "the CRL is not valid before {}",
                    list.this_update
                )));
            }
            if let Some(next) = list.next_update {
                if next.to_system_time() < now {
                    return Err(untrusted(format!("the CRL expired at {next}")));
                }
            }
            let serial = tbs.serial_number();
            let revoked = list
                .revoked_certificates
                .iter()
                .flatten()
                .any(|r| r.serial_number.as_bytes() == serial.as_bytes());
            if revoked {
                return Err(CryptoError::Revoked {
                    serial: hex(serial.as_bytes()),
                });
            }
        }
        Ok(())
    }
}

/// fedmsg's `validate_policy`.
fn routing_allows(
    policy: &HashMap<String, Vec<String>>,
    nitpicky: bool,
    topic: &str,
    signer: &str,
) -> bool {
    match policy.get(topic) {
        Some(allowed) => allowed.iter().any(|a| a == signer),
        None => !nitpicky,
    }
}

/// A credential field: the typed string, or an error when it is present
/// with another type (kept verbatim in `extra`).
fn credential<'m>(
    msg: &'m Message,
    typed: &'m Option<String>,
    field: &str,
) -> Result<Option<&'m str>, String> {
    match (typed, msg.extra.get(field)) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(other)) => Err(format!("`{field}` is {other}, not a string")),
        (None, None) => Ok(None),
    }
}

fn check_dates(cert: &LoadedCert, now: SystemTime) -> Result<(), CryptoError> {
    let validity = cert.cert.tbs_certificate().validity();
    if validity.not_before.to_system_time() > now {
        return Err(CryptoError::NotYetValid {
            subject: cert.subject(),
            not_before: validity.not_before.to_string(),
        });
    }
    if validity.not_after.to_system_time() < now {
        return Err(CryptoError::Expired {
            subject: cert.subject(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const SHA224_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.14");

/// Verifies the CA's signature (`algorithm`) over `tbs`.
fn verify_issued(
    ca_key: &PublicKey,
    algorithm: &ObjectIdentifier,
    tbs: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), String> {
    let signature = signature.ok_or("the signature is not a whole number of bytes")?;
    let signature = Signature::try_from(signature).map_err(|e| e.to_string())?;
    let key = ca_key.clone();
    let outcome = match *algorithm {
        SHA1_WITH_RSA => VerifyingKey::<sha1::Sha1>::new(key).verify(tbs, &signature),
        SHA224_WITH_RSA => VerifyingKey::<rsa::sha2::Sha224>::new(key).verify(tbs, &signature),
        SHA256_WITH_RSA => VerifyingKey::<rsa::sha2::Sha256>::new(key).verify(tbs, &signature),
        SHA384_WITH_RSA => VerifyingKey::<rsa::sha2::Sha384>::new(key).verify(tbs, &signature),
        SHA512_WITH_RSA => VerifyingKey::<rsa::sha2::Sha512>::new(key).verify(tbs, &signature),
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    outcome.map_err(|_| "it does not verify with the CA's key".to_owned())
}

/// The first TLV inside a DER SEQUENCE: a certificate's `tbsCertificate`
/// or a CRL's `tbsCertList`, as the signer signed it.
fn raw_tbs(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = der::SliceReader::new(der)?;
    let tbs = reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        r.tlv_bytes()?;
        r.tlv_bytes()?;
        Ok::<_, der::Error>(tbs)
    })?;
    reader.finish()?;
    Ok(tbs)
}

/// The DER of the first `label` PEM block in `pem` (text around it, as in
/// `openssl x509 -text` output, is ignored).
fn first_pem_block(pem: &[u8], label: &str, what: &'static str) -> Result<Vec<u8>, CryptoError> {
    let err = |reason: String| CryptoError::Pem { what, reason };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = find(pem, begin.as_bytes()).ok_or_else(|| err(format!("no `{begin}` block")))?;
    let stop = find(&pem[start..], end.as_bytes())
        .map(|i| start + i + end.len())
        .ok_or_else(|| err(format!("no `{end}` line")))?;
    let (_, der) =
        der::pem::decode_vec(&pem[start..stop]).map_err(|e| err(format!("bad PEM: {e}")))?;
    Ok(der)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Standard base64 in 76-column lines, each ending in `\n` (fedmsg's
/// `_prep_crypto_msg` of `b64encode`, i.e. `base64.encodebytes`).
fn wrap_base64(bytes: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for chunk in flat.as_bytes().chunks(76) {
        // base64 output is ASCII: every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Python's `base64.b64decode` without `validate`: characters outside the
/// base64 alphabet (newlines...) are dropped before decoding.
fn lenient_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let kept: Vec<u8> = text
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(kept)
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CryptoError> {
    std::fs::read(path).map_err(|source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
