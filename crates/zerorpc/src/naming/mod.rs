//! Naming: `zerorpc://SERVICE` addresses.
//!
//! A [`Resolver`] turns a service name into endpoints (and the socket type
//! when known), asking its sources in the order they were added; the first
//! that knows the service answers:
//!
//! * [`Directory`]: a YAML file, `SERVICE: {endpoints: [tcp://...], type:
//!   ROUTER}` or the shorthand `SERVICE: tcp://...`;
//! * [`Dns`]: `_SERVICE._zerorpc._tcp.DOMAIN` SRV records (ordered by
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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::service::CallError;
use crate::{Client, ClientOptions};

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

// ---------------------------------------------------------------- directory

/// A YAML directory of services.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    services: BTreeMap<String, Resolved>,
}

impl Directory {
    /// Reads a directory file.
    pub fn load(path: impl AsRef<Path>) -> Result<Directory, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| naming(format!("cannot read the directory {}: {e}", path.display())))?;
        Directory::parse(&text).map_err(|e| match e {
            Error::Naming(m) => naming(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a directory's YAML text.
    pub fn parse(text: &str) -> Result<Directory, Error> {
        let doc: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| naming(format!("invalid YAML: {e}")))?;
        let map = match doc {
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => serde_norway::Mapping::new(),
            _ => return Err(naming("a directory is a map of SERVICE: entries")),
        };
        let mut services = BTreeMap::new();
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                return Err(naming(format!("service names are strings, not {k:?}")));
            };
            valid_service(name)?;
            let entry = match v {
                serde_norway::Value::String(ep) => Resolved {
                    endpoints: vec![ep],
                    socket_type: None,
                },
                serde_norway::Value::Mapping(m) => {
                    let mut r = Resolved {
                        endpoints: Vec::new(),
                        socket_type: None,
                    };
                    for (key, val) in m {
                        match key.as_str() {
                            Some("endpoints") => r.endpoints = endpoint_list(name, val)?,
                            Some("type") => match val {
                                serde_norway::Value::String(t) => r.socket_type = Some(t),
                                _ => return Err(naming(format!("{name}: type is a string"))),
                            },
                            _ => {
                                return Err(naming(format!(
                                    "{name}: unknown key {} (known: endpoints, type)",
                                    serde_norway::to_string(&key).unwrap_or_default().trim_end()
                                )))
                            }
                        }
                    }
                    r
                }
                _ => {
                    return Err(naming(format!(
                        "{name}: expected an endpoint or {{endpoints: [...], type: ...}}"
                    )))
                }
            };
            if entry.endpoints.is_empty() {
                return Err(naming(format!("{name}: no endpoints")));
            }
            if let Some(bad) = entry.endpoints.iter().find(|e| !e.contains("://")) {
                return Err(naming(format!("{name}: {bad:?} is not an endpoint")));
            }
            services.insert(name.to_owned(), entry);
        }
        Ok(Directory { services })
    }

    /// The entry for `service`.
    pub fn get(&self, service: &str) -> Option<&Resolved> {
        self.services.get(service)
    }
}

fn endpoint_list(name: &str, v: serde_norway::Value) -> Result<Vec<String>, Error> {
    match v {
        serde_norway::Value::String(s) => Ok(vec![s]),
        serde_norway::Value::Sequence(items) => items
            .into_iter()
            .map(|i| match i {
                serde_norway::Value::String(s) => Ok(s),
                _ => Err(naming(format!("{name}: endpoints are strings"))),
            })
            .collect(),
        _ => Err(naming(format!("{name}: endpoints is a list of strings"))),
    }
}

// ---------------------------------------------------------------------- DNS

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

// ----------------------------------------------------------------- resolver

enum Source {
    Directory(Directory),
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
                Source::Dns(d) => format!("dns({})", d.domain),
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
            let dns = match var("ZERORPC_DNS_SERVER") {
                Some(s) => Dns::with_nameserver(
                    &domain,
                    s.parse()
                        .map_err(|_| naming(format!("ZERORPC_DNS_SERVER: {s:?} is not IP:PORT")))?,
                )?,
                None => Dns::system(&domain)?,
            };
            r = r.dns(dns);
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

// ----------------------------------------------------------------- registry

/// How many entries a registry holds. Refreshing an entry it holds is
/// always accepted; a new one beyond either limit is refused (`ERR
/// RegistryFull`) and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Endpoints of one service (default 1,024: far more replicas than a
    /// service behind one name has, and a `resolve` answer stays under
    /// about 1 MiB even with the longest endpoints accepted).
    pub max_per_service: usize,
    /// Endpoints over all services (default 16,384: a few MiB of memory,
    /// under about 20 MiB with the longest names and endpoints accepted,
    /// and a `list` answer well under the 64 MiB message limit).
    pub max_total: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_per_service: 1024,
            max_total: 16_384,
        }
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFull {
    /// The service has `max_per_service` endpoints.
    Service(usize),
    /// The registry has `max_total` endpoints.
    Total(usize),
}

impl std::fmt::Display for TableFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableFull::Service(n) => write!(f, "this service already has {n} endpoints registered (the registry's limit per service)"),
            TableFull::Total(n) => write!(f, "the registry holds {n} endpoints (its limit)"),
        }
    }
}

/// The registry's table (sans-IO: every operation takes `now`).
#[derive(Debug, Default, Clone)]
pub struct Table {
    /// service -> endpoint -> expiry
    entries: BTreeMap<String, BTreeMap<String, Instant>>,
    /// Endpoints over all services.
    total: usize,
    limits: RegistryLimits,
    /// New registrations refused because of the limits.
    refused: u64,
}

impl Table {
    /// An empty table with these limits.
    pub fn with_limits(limits: RegistryLimits) -> Table {
        Table {
            limits,
            ..Table::default()
        }
    }

    /// Registers (or refreshes) `endpoint` for `service` until `now + ttl`.
    /// Returns whether it is new, or why a new entry was refused.
    pub fn register(
        &mut self,
        service: &str,
        endpoint: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, TableFull> {
        self.expire(now);
        let (held, known) = self
            .entries
            .get(service)
            .map_or((0, false), |eps| (eps.len(), eps.contains_key(endpoint)));
        if !known {
            let full = if held >= self.limits.max_per_service {
                Some(TableFull::Service(self.limits.max_per_service))
            } else if self.total >= self.limits.max_total {
                Some(TableFull::Total(self.limits.max_total))
            } else {
                None
            };
            if let Some(full) = full {
                self.refused += 1;
                return Err(full);
            }
        }
        let new = self
            .entries
            .entry(service.to_owned())
            .or_default()
            .insert(endpoint.to_owned(), now + ttl)
            .is_none();
        if new {
            self.total += 1;
        }
        Ok(new)
    }

    /// Endpoints held over all services (expired ones included until the
    /// next expiry pass).
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// New registrations refused because of the limits, since the start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Removes `endpoint` from `service`; returns whether it was there.
    pub fn unregister(&mut self, service: &str, endpoint: &str) -> bool {
        let Some(eps) = self.entries.get_mut(service) else {
            return false;
        };
        let had = eps.remove(endpoint).is_some();
        if eps.is_empty() {
            self.entries.remove(service);
        }
        if had {
            self.total -= 1;
        }
        had
    }

    /// Drops the entries whose TTL ran out.
    pub fn expire(&mut self, now: Instant) {
        for (service, eps) in self.entries.iter_mut() {
            eps.retain(|ep, until| {
                let live = *until > now;
                if !live {
                    tracing::info!(service, endpoint = %ep, "registration expired");
                }
                live
            });
        }
        self.entries.retain(|_, eps| !eps.is_empty());
        self.total = self.entries.values().map(BTreeMap::len).sum();
    }

    /// The live endpoints of `service`.
    pub fn resolve(&self, service: &str, now: Instant) -> Vec<String> {
        self.entries
            .get(service)
            .map(|eps| {
                eps.iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(ep, _)| ep.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every service with its live endpoints.
    pub fn list(&self, now: Instant) -> BTreeMap<String, Vec<String>> {
        self.entries
            .keys()
            .map(|s| (s.clone(), self.resolve(s, now)))
            .filter(|(_, eps)| !eps.is_empty())
            .collect()
    }
}

/// A refused registry request.
#[derive(Debug)]
pub struct RegistryError(String);

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegistryError {}

/// Longest TTL a registration may ask for.
const MAX_TTL: f64 = 86_400.0;

/// The registry service: serve it with [`crate::Server`].
#[derive(Debug, Default)]
pub struct Registry {
    table: Mutex<Table>,
}

impl Registry {
    /// An empty registry with the default [`RegistryLimits`].
    pub fn new() -> Registry {
        Registry::default()
    }

    /// An empty registry holding at most `limits` entries.
    pub fn with_limits(limits: RegistryLimits) -> Registry {
        Registry {
            table: Mutex::new(Table::with_limits(limits)),
        }
    }

    /// New registrations refused because the registry was full.
    pub fn refused(&self) -> u64 {
        self.table().refused()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[zerorpc::service(name = "registry")]
impl Registry {
    /// Registers (or refreshes) an endpoint of a service for ttl_secs
    /// seconds; returns whether it is new.
    pub fn register(
        &self,
        service: String,
        endpoint: String,
        ttl_secs: f64,
    ) -> Result<bool, CallError> {
        let invalid = |msg: String| CallError::from_error(&RegistryError(msg));
        valid_service(&service).map_err(|e| invalid(e.to_string()))?;
        if !endpoint.contains("://") || endpoint.len() > 1024 {
            return Err(invalid(format!("{endpoint:?} is not an endpoint")));
        }
        if !(ttl_secs.is_finite() && ttl_secs > 0.0 && ttl_secs <= MAX_TTL) {
            return Err(invalid(format!(
                "ttl_secs must be in (0, {MAX_TTL}], not {ttl_secs}"
            )));
        }
        let new = self
            .table()
            .register(
                &service,
                &endpoint,
                Duration::from_secs_f64(ttl_secs),
                Instant::now(),
            )
            .map_err(|full| {
                tracing::debug!(%service, %endpoint, %full, "registration refused");
                CallError::new("RegistryFull", full.to_string())
            })?;
        if new {
            tracing::info!(%service, %endpoint, ttl_secs, "registered");
        }
        Ok(new)
    }

    /// Removes an endpoint of a service; returns whether it was there.
    pub fn unregister(&self, service: String, endpoint: String) -> bool {
        let had = self.table().unregister(&service, &endpoint);
        if had {
            tracing::info!(%service, %endpoint, "unregistered");
        }
        had
    }

    /// The live endpoints of a service.
    pub fn resolve(&self, service: String) -> Vec<String> {
        let now = Instant::now();
        let mut t = self.table();
        t.expire(now);
        t.resolve(&service, now)
    }

    /// Every service with its live endpoints.
    pub fn list(&self) -> BTreeMap<String, Vec<String>> {
        let now = Instant::now();
        let mut t = self.table();
        t.expire(now);
        t.list(now)
    }

    /// The registry's counters: `entries` (live endpoints), `services`,
    /// `refused` (new registrations refused because it was full) and its
    /// limits.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let mut t = self.table();
        t.expire(Instant::now());
        BTreeMap::from([
            ("entries".to_owned(), t.len() as u64),
            ("services".to_owned(), t.entries.len() as u64),
            ("refused".to_owned(), t.refused()),
            (
                "max_per_service".to_owned(),
                t.limits.max_per_service as u64,
            ),
            ("max_total".to_owned(), t.limits.max_total as u64),
        ])
    }
}

/// A registration kept alive: re-registers every ttl/3 in the background,
/// and unregisters when dropped (best effort) or by [`Registration::unregister`].
#[derive(Debug)]
pub struct Registration {
    client: Client,
    service: String,
    endpoint: String,
    stop: CancellationToken,
}

/// Registers `endpoint` for `service` with the registry at `registry`,
/// and keeps it registered (see [`Registration`]).
pub async fn register_with(
    registry: &str,
    service: &str,
    endpoint: &str,
    ttl: Duration,
) -> Result<Registration, Error> {
    valid_service(service)?;
    if ttl.is_zero() {
        return Err(naming("a registration's TTL must be positive"));
    }
    let client = Client::connect_plain(
        &[registry],
        ClientOptions::default().timeout(REGISTRY_TIMEOUT),
    )
    .await?;
    let args = || vec![service.into(), endpoint.into(), ttl.as_secs_f64().into()];
    client.call("register", args()).await?;
    let stop = CancellationToken::new();
    let (c, s, args, every) = (client.clone(), stop.clone(), args(), ttl / 3);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = s.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = c.call("register", args.clone()).await {
                tracing::warn!(error = %e, "registration heartbeat failed");
            }
        }
    });
    Ok(Registration {
        client,
        service: service.to_owned(),
        endpoint: endpoint.to_owned(),
        stop,
    })
}

/// Same as [`register_with`].
pub async fn register(
    registry: &str,
    service: &str,
    endpoint: &str,
    ttl: Duration,
) -> Result<Registration, Error> {
    register_with(registry, service, endpoint, ttl).await
}

impl Registration {
    /// The registered endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops the heartbeats without unregistering: the entry expires
    /// after its TTL (what a crash looks like).
    pub fn abandon(self) {
        // (a cancelled registration's drop does not unregister)
        self.stop.cancel();
    }

    /// Stops the heartbeats and unregisters, waiting for the answer.
    pub async fn unregister(self) -> Result<(), Error> {
        self.stop.cancel();
        let args = vec![self.service.as_str().into(), self.endpoint.as_str().into()];
        self.client.call("unregister", args).await.map(|_| ())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let c = self.client.clone();
        let args = vec![self.service.as_str().into(), self.endpoint.as_str().into()];
        rt.spawn(async move {
            if let Err(e) = c.call("unregister", args).await {
                tracing::debug!(error = %e, "unregister on drop failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl_unless_refreshed() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Table::default();
        assert_eq!(t.register("svc", "tcp://a:1", 3 * s, t0), Ok(true));
        assert_eq!(t.register("svc", "tcp://b:1", 3 * s, t0), Ok(true));
        assert_eq!(t.register("svc", "tcp://a:1", 3 * s, t0 + s), Ok(false));
        assert_eq!(t.resolve("svc", t0 + 2 * s), ["tcp://a:1", "tcp://b:1"]);
        // b was not refreshed: gone at t0+3; a lives until t0+4
        assert_eq!(t.resolve("svc", t0 + 3 * s), ["tcp://a:1"]);
        t.register("svc", "tcp://a:1", 3 * s, t0 + 3 * s).unwrap();
        t.expire(t0 + 5 * s);
        assert_eq!(t.resolve("svc", t0 + 5 * s), ["tcp://a:1"]);
        assert_eq!(t.list(t0 + 5 * s).len(), 1);
        t.expire(t0 + 6 * s);
        assert!(t.resolve("svc", t0 + 6 * s).is_empty());
        assert!(t.list(t0 + 6 * s).is_empty());
        assert_eq!(t.register("svc", "tcp://c:1", s, t0 + 6 * s), Ok(true));
        assert!(t.unregister("svc", "tcp://c:1"));
        assert!(!t.unregister("svc", "tcp://c:1"));
        assert!(!t.unregister("nope", "tcp://c:1"));
    }

    #[test]
    fn the_registry_table_refuses_new_entries_beyond_its_limits_and_counts_them() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut t = Table::with_limits(RegistryLimits {
            max_per_service: 2,
            max_total: 3,
        });
        assert_eq!(t.register("a", "tcp://h:1", ttl, t0), Ok(true));
        assert_eq!(t.register("a", "tcp://h:2", ttl, t0), Ok(true));
        assert_eq!(
            t.register("a", "tcp://h:3", ttl, t0),
            Err(TableFull::Service(2))
        );
        // refreshing a held entry is always accepted
        assert_eq!(t.register("a", "tcp://h:1", ttl, t0), Ok(false));
        assert_eq!(t.register("b", "tcp://h:4", ttl, t0), Ok(true));
        assert_eq!(
            t.register("c", "tcp://h:5", ttl, t0),
            Err(TableFull::Total(3))
        );
        assert_eq!((t.len(), t.refused()), (3, 2));
        assert!(t.resolve("c", t0).is_empty());
        // room again once entries leave or expire
        assert!(t.unregister("b", "tcp://h:4"));
        assert_eq!(t.register("c", "tcp://h:5", ttl, t0), Ok(true));
        assert_eq!(
            t.register("d", "tcp://h:6", Duration::from_secs(1), t0 + ttl),
            Ok(true),
            "everything expired at t0 + ttl"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn directory_parses_both_forms_and_refuses_unknown_keys() {
        let d = Directory::parse(
            "a: tcp://127.0.0.1:1\nb: {endpoints: [tcp://h:2, tcp://h:3], type: ROUTER}\nc:\n  endpoints: tcp://x:4\n",
        )
        .unwrap();
        assert_eq!(d.get("a").unwrap().endpoints, ["tcp://127.0.0.1:1"]);
        let b = d.get("b").unwrap();
        assert_eq!(b.endpoints, ["tcp://h:2", "tcp://h:3"]);
        assert_eq!(b.socket_type.as_deref(), Some("ROUTER"));
        assert_eq!(d.get("c").unwrap().endpoints, ["tcp://x:4"]);
        for (bad, says) in [
            ("a: {endpoint: tcp://x:1}", "unknown key endpoint"),
            ("a: {endpoints: []}", "no endpoints"),
            ("a: [1, 2]", "expected an endpoint"),
            ("a: {endpoints: [1]}", "endpoints are strings"),
            ("a: not-an-endpoint", "is not an endpoint"),
            ("- a\n- b", "a map of SERVICE"),
            ("a: {", "invalid YAML"),
            ("'bad name': tcp://x:1", "invalid service name"),
        ] {
            match Directory::parse(bad) {
                Err(Error::Naming(m)) => assert!(m.contains(says), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(service_name("zerorpc://demo"), Some("demo"));
        assert_eq!(service_name("tcp://x:1"), None);
        assert!(valid_service("a-b_c.d").is_ok());
        assert!(valid_service("").is_err());
        assert!(valid_service("a/b").is_err());
    }
}
