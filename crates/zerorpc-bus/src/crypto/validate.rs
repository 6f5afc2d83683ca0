//! Validation: checking a signed message's certificate chain, CRL, signature
//! and routing policy, with fedmsg's rules.

use crate::message::Message;
use der::{Decode as _, Reader as _};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::PublicKey;
use serde_json::Value;
use spki::ObjectIdentifier;
use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use super::{first_pem_block, hex, lenient_base64, read, CryptoError, LoadedCert};

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
pub(super) fn routing_allows(
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
