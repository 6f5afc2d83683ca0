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

mod validate;

use crate::message::Message;
use base64::Engine as _;
use der::{Decode as _, Encode as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::{PrivateKey, PublicKey};
use std::path::Path;
use x509_cert::certificate::Certificate;

pub use validate::Validator;

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
mod tests;
