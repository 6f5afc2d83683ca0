//! [`Dns`]: `_SERVICE._zerorpc._tcp.DOMAIN` SRV and TXT records (the `dns`
//! feature, which brings in hickory-resolver).

use std::net::SocketAddr;
use std::time::Duration;

use super::{naming, valid_service, Resolved};
use crate::error::Error;

/// DNS SRV + TXT lookups of `_SERVICE._zerorpc._tcp.DOMAIN`.
#[derive(Clone)]
pub struct Dns {
    domain: String,
    resolver: hickory_resolver::TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("domain", &self.domain).finish()
    }
}

impl Dns {
    /// Looks names up under `domain` with the system's nameservers.
    pub fn system(domain: &str) -> Result<Dns, Error> {
        let builder = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| naming(format!("cannot read the system DNS configuration: {e}")))?;
        Dns::build(domain, builder)
    }

    /// Looks names up under `domain`, asking only `nameserver` (UDP, then
    /// TCP).
    pub fn with_nameserver(domain: &str, nameserver: SocketAddr) -> Result<Dns, Error> {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        let mut udp = ConnectionConfig::udp();
        udp.port = nameserver.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = nameserver.port();
        let ns = NameServerConfig::new(nameserver.ip(), true, vec![udp, tcp]);
        let builder = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        );
        Dns::build(domain, builder)
    }

    fn build(
        domain: &str,
        mut builder: hickory_resolver::ResolverBuilder<
            hickory_resolver::net::runtime::TokioRuntimeProvider,
        >,
    ) -> Result<Dns, Error> {
        let domain = domain.trim_matches('.');
        if domain.is_empty() {
            return Err(naming("an empty DNS domain"));
        }
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // (registrations change: never serve stale answers for long)
        opts.positive_max_ttl = Some(Duration::from_secs(5));
        opts.negative_max_ttl = Some(Duration::from_secs(1));
        let resolver = builder
            .build()
            .map_err(|e| naming(format!("cannot build the DNS resolver: {e}")))?;
        Ok(Dns {
            domain: domain.to_owned(),
            resolver,
        })
    }

    /// The domain names are looked up under.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The name looked up for `service`.
    pub fn record_name(&self, service: &str) -> String {
        format!("_{service}._zerorpc._tcp.{}.", self.domain)
    }

    /// The SRV targets (and TXT type); `None` when DNS has no such name.
    pub async fn lookup(&self, service: &str) -> Result<Option<Resolved>, Error> {
        use hickory_resolver::proto::rr::RData;
        valid_service(service)?;
        let name = self.record_name(service);
        let srv = match self.resolver.srv_lookup(name.as_str()).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(None),
            Err(e) => return Err(naming(format!("DNS lookup of {name} failed: {e}"))),
        };
        let mut targets: Vec<(u16, u16, String, u16)> = srv
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((
                    s.priority,
                    s.weight,
                    s.target.to_string().trim_end_matches('.').to_owned(),
                    s.port,
                )),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        // Lowest priority first; within one, the heaviest first.
        targets.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let (mut socket_type, mut transport) = (None, "tcp".to_owned());
        match self.resolver.txt_lookup(name.as_str()).await {
            Ok(txt) => {
                for r in txt.answers() {
                    let RData::TXT(t) = &r.data else { continue };
                    for s in t.txt_data.iter() {
                        let s = String::from_utf8_lossy(s);
                        match s.split_once('=') {
                            Some(("type", v)) => socket_type = Some(v.trim().to_owned()),
                            Some(("transport", v)) => transport = v.trim().to_owned(),
                            _ => tracing::debug!(record = %s, "ignored TXT entry"),
                        }
                    }
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {}
            Err(e) => tracing::warn!(%name, error = %e, "TXT lookup failed; assuming tcp"),
        }
        Ok(Some(Resolved {
            endpoints: targets
                .into_iter()
                .map(|(_, _, host, port)| format!("{transport}://{host}:{port}"))
                .collect(),
            socket_type,
        }))
    }
}
