//! The registry: a [`Registry`] service holding TTL'd registrations in a
//! bounded [`Table`], and [`register_with`] for servers that keep
//! themselves registered.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{naming, valid_service, REGISTRY_TIMEOUT};
use crate::error::CallError;
use crate::error::Error;
use crate::{Client, ClientOptions};

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
}
