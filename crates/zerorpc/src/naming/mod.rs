//! Naming: `zerorpc://SERVICE` addresses.
//!
//! A [`Resolver`] turns a service name into endpoints (and the socket type
//! when known), asking its sources in the order they were added; the first
//! that knows the service answers:
//!
//! * [`Directory`]: a YAML file, `SERVICE: {endpoints: [tcp://...], type:
//!   ROUTER}` or the shorthand `SERVICE: tcp://...`;
//! * `Dns` (the `dns` feature): `_SERVICE._zerorpc._tcp.DOMAIN` SRV records (ordered by
//!   priority, then weight, highest first), with a TXT record on the same
//!   name for `type=ROUTER` and `transport=tcp`;
//! * a registry: a [`Registry`] service where servers [`register_with`] a
//!   TTL and heart-beat; entries expire unless refreshed. It holds at most
//!   [`RegistryLimits`] entries (per service and in all), answering new
//!   ones beyond with `ERR RegistryFull`.
//!
//! [`crate::Client::connect`] accepts `zerorpc://SERVICE` and resolves it
//! through [`crate::ClientOptions::resolver`] (default:
//! [`Resolver::from_env`]); the client resolves again when none of its
//! endpoints is healthy, and periodically (see
//! [`crate::ClientOptions::re_resolve`]), connecting to new endpoints and
//! dropping the ones no longer listed.

use std::time::Duration;

use tokio::sync::OnceCell;

use crate::error::Error;
use crate::{Client, ClientOptions};

mod directory;
#[cfg(feature = "dns")]
mod dns;
mod registry;

pub use directory::Directory;
#[cfg(feature = "dns")]
pub use dns::Dns;
pub use registry::{
    register, register_with, Registration, Registry, RegistryError, RegistryLimits, Table,
    TableFull,
};

/// The scheme of naming addresses.
pub const SCHEME: &str = "zerorpc://";

/// The service named by a `zerorpc://SERVICE` address (`None` for any other
/// address).
pub fn service_name(address: &str) -> Option<&str> {
    address.strip_prefix(SCHEME)
}

/// What a service name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Where to connect, like `tcp://10.0.0.1:4242`, best first.
    pub endpoints: Vec<String>,
    /// The socket type the servers use (`ROUTER`...), when known.
    pub socket_type: Option<String>,
}

fn naming(msg: impl Into<String>) -> Error {
    Error::Naming(msg.into())
}

fn valid_service(service: &str) -> Result<(), Error> {
    let ok = !service.is_empty()
        && service.len() <= 63
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(naming(format!(
            "invalid service name {service:?} (letters, digits, '-', '_', '.'; at most 63)"
        )))
    }
}

enum Source {
    Directory(Directory),
    #[cfg(feature = "dns")]
    Dns(Box<Dns>),
    Registry {
        address: String,
        client: OnceCell<Client>,
    },
}

/// Resolves service names through its sources, in order.
#[derive(Default)]
pub struct Resolver {
    sources: Vec<Source>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .sources
            .iter()
            .map(|s| match s {
                Source::Directory(_) => "directory".to_owned(),
                #[cfg(feature = "dns")]
                Source::Dns(d) => format!("dns({})", d.domain()),
                Source::Registry { address, .. } => format!("registry({address})"),
            })
            .collect();
        f.debug_tuple("Resolver").field(&names).finish()
    }
}

/// How long a resolver waits for a registry's answer.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

impl Resolver {
    /// A resolver with no sources (it knows nothing).
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// Asks a directory next.
    pub fn directory(mut self, d: Directory) -> Resolver {
        self.sources.push(Source::Directory(d));
        self
    }

    /// Asks DNS next.
    #[cfg(feature = "dns")]
    pub fn dns(mut self, d: Dns) -> Resolver {
        self.sources.push(Source::Dns(Box::new(d)));
        self
    }

    /// Asks the [`Registry`] at `address` (a plain endpoint) next.
    pub fn registry(mut self, address: &str) -> Result<Resolver, Error> {
        if service_name(address).is_some() {
            return Err(naming("a registry's address cannot be a zerorpc:// name"));
        }
        self.sources.push(Source::Registry {
            address: address.to_owned(),
            client: OnceCell::new(),
        });
        Ok(self)
    }

    /// Whether it has no sources.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The resolver the environment describes: `ZERORPC_DIRECTORY` (a
    /// YAML file), then `ZERORPC_REGISTRY` (a registry's address), then
    /// `ZERORPC_DNS_DOMAIN` (with `ZERORPC_DNS_SERVER`, `IP:PORT`, or the
    /// system's nameservers). `None` when none is set.
    pub fn from_env() -> Result<Option<Resolver>, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut r = Resolver::new();
        if let Some(path) = var("ZERORPC_DIRECTORY") {
            r = r.directory(Directory::load(path)?);
        }
        if let Some(addr) = var("ZERORPC_REGISTRY") {
            r = r.registry(&addr)?;
        }
        if let Some(domain) = var("ZERORPC_DNS_DOMAIN") {
            r = with_env_dns(r, &domain, var("ZERORPC_DNS_SERVER"))?;
        }
        Ok((!r.is_empty()).then_some(r))
    }

    /// Resolves `service` (a name, or a `zerorpc://` address): the first
    /// source with a non-empty answer wins. A source that fails is logged
    /// and the next one asked.
    pub async fn resolve(&self, service: &str) -> Result<Resolved, Error> {
        let service = service_name(service).unwrap_or(service);
        valid_service(service)?;
        let mut failures = Vec::new();
        for source in &self.sources {
            let r = match source {
                Source::Directory(d) => Ok(d.get(service).cloned()),
                #[cfg(feature = "dns")]
                Source::Dns(d) => d.lookup(service).await,
                Source::Registry { address, client } => {
                    registry_lookup(address, client, service).await
                }
            };
            match r {
                Ok(Some(r)) if !r.endpoints.is_empty() => {
                    tracing::debug!(service, endpoints = ?r.endpoints, "resolved");
                    return Ok(r);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(service, error = %e, "a naming source failed");
                    failures.push(e.to_string());
                }
            }
        }
        let mut msg = format!("no source knows the service {service:?} (asked: {self:?})");
        if !failures.is_empty() {
            msg.push_str(&format!("; failures: {}", failures.join("; ")));
        }
        Err(naming(msg))
    }
}

#[cfg(feature = "dns")]
fn with_env_dns(r: Resolver, domain: &str, server: Option<String>) -> Result<Resolver, Error> {
    let dns = match server {
        Some(s) => Dns::with_nameserver(
            domain,
            s.parse()
                .map_err(|_| naming(format!("ZERORPC_DNS_SERVER: {s:?} is not IP:PORT")))?,
        )?,
        None => Dns::system(domain)?,
    };
    Ok(r.dns(dns))
}

#[cfg(not(feature = "dns"))]
fn with_env_dns(_: Resolver, domain: &str, _: Option<String>) -> Result<Resolver, Error> {
    Err(naming(format!(
        "ZERORPC_DNS_DOMAIN is set ({domain:?}) but this program was built without \
         zerorpc's `dns` feature"
    )))
}

async fn registry_lookup(
    address: &str,
    client: &OnceCell<Client>,
    service: &str,
) -> Result<Option<Resolved>, Error> {
    let c = client
        .get_or_try_init(|| async {
            Client::connect_plain(
                &[address],
                ClientOptions::default().timeout(REGISTRY_TIMEOUT),
            )
            .await
        })
        .await?;
    let v = c.call("resolve", vec![service.into()]).await?;
    let endpoints: Vec<String> = crate::service::from_value(v)?;
    Ok((!endpoints.is_empty()).then_some(Resolved {
        endpoints,
        socket_type: Some("ROUTER".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(service_name("zerorpc://demo"), Some("demo"));
        assert_eq!(service_name("tcp://x:1"), None);
        assert!(valid_service("a-b_c.d").is_ok());
        assert!(valid_service("").is_err());
        assert!(valid_service("a/b").is_err());
    }
}
