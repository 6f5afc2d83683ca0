//! Naming: `zerorpc registry`, `--register` for servers, and the resolver
//! behind `zerorpc://SERVICE` addresses.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use zerorpc::naming::{Directory, Dns, Registration, Registry, RegistryLimits, Resolver};
use zerorpc::Server;

use crate::Cli;

/// `zerorpc registry`: serve a naming registry.
#[derive(Parser, Debug)]
pub struct RegistryArgs {
    /// Where to listen (repeatable).
    #[arg(long = "bind", value_name = "ADDR", required = true)]
    pub bind: Vec<String>,
    /// Most endpoints one service may register (more: ERR RegistryFull).
    #[arg(long = "max-per-service", value_name = "N", default_value_t = RegistryLimits::default().max_per_service)]
    pub max_per_service: usize,
    /// Most endpoints over all services (more: ERR RegistryFull).
    #[arg(long = "max-entries", value_name = "N", default_value_t = RegistryLimits::default().max_total)]
    pub max_entries: usize,
}

pub async fn run_registry(a: RegistryArgs) -> ExitCode {
    let server = Arc::new(Server::new(Registry::with_limits(RegistryLimits {
        max_per_service: a.max_per_service,
        max_total: a.max_entries,
    })));
    for b in &a.bind {
        match server.bind(b).await {
            Ok(ep) => eprintln!("registry on {ep}"),
            Err(e) => {
                eprintln!("zerorpc: cannot bind {b}: {e}");
                return ExitCode::from(5);
            }
        }
    }
    let s = server.clone();
    let serving = tokio::spawn(async move { s.run().await });
    let signal = crate::server::wait_for_signal().await;
    note!("{signal}: stopping");
    server.shutdown();
    let _ = serving.await;
    ExitCode::SUCCESS
}

/// The resolver the flags describe (directory, registry, DNS, in that
/// order); `None` without naming flags (the client then reads the
/// environment).
pub fn resolver(cli: &Cli) -> Result<Option<Arc<Resolver>>, String> {
    let mut r = Resolver::new();
    if let Some(path) = &cli.directory {
        r = r.directory(Directory::load(path).map_err(|e| e.to_string())?);
    }
    if let Some(addr) = &cli.registry {
        r = r.registry(addr).map_err(|e| e.to_string())?;
    }
    match (&cli.dns_domain, &cli.dns_server) {
        (Some(domain), server) => {
            let server = server
                .clone()
                .or_else(|| std::env::var("ZERORPC_DNS_SERVER").ok());
            let dns = match server {
                Some(s) => {
                    let addr = s
                        .parse()
                        .map_err(|_| format!("--dns-server: {s:?} is not IP:PORT"))?;
                    Dns::with_nameserver(domain, addr)
                }
                None => Dns::system(domain),
            };
            r = r.dns(dns.map_err(|e| e.to_string())?);
        }
        (None, Some(_)) => return Err("--dns-server needs --dns-domain".into()),
        (None, None) => {}
    }
    Ok((!r.is_empty()).then(|| Arc::new(r)))
}

/// The endpoints of `address`: itself, or what its `zerorpc://` name
/// resolves to now (through the flags' resolver, else the environment's).
pub async fn resolve_once(cli: &Cli, address: &str) -> Result<Vec<String>, String> {
    if zerorpc::naming::service_name(address).is_none() {
        return Ok(vec![address.to_owned()]);
    }
    let resolver = match resolver(cli)? {
        Some(r) => r,
        None => match Resolver::from_env().map_err(|e| e.to_string())? {
            Some(r) => Arc::new(r),
            None => return Err("no resolver: give --directory, --registry or --dns-domain".into()),
        },
    };
    resolver
        .resolve(address)
        .await
        .map(|r| r.endpoints)
        .map_err(|e| e.to_string())
}

/// What a server bound to `ep` can be reached at: a wildcard host becomes
/// 127.0.0.1.
pub fn advertised(ep: &str) -> String {
    for wild in ["://0.0.0.0:", "://*:", "://[::]:"] {
        if let Some(i) = ep.find(wild) {
            let port = &ep[i + wild.len()..];
            return format!("{}://127.0.0.1:{port}", &ep[..i]);
        }
    }
    ep.to_owned()
}

/// `--register ADDR`: registers the server (by `--name`, default the
/// service) at its advertised endpoint.
pub async fn register(
    cli: &Cli,
    service: &str,
    bound: &[String],
) -> Result<Option<Registration>, String> {
    let Some(registry) = &cli.register else {
        if cli.name.is_some() || cli.advertise.is_some() {
            return Err("--name and --advertise go with --register ADDR".into());
        }
        return Ok(None);
    };
    let name = cli.name.as_deref().unwrap_or(service);
    let endpoint = match (&cli.advertise, bound.first()) {
        (Some(a), _) => a.clone(),
        (None, Some(b)) => advertised(b),
        (None, None) => return Err("--register needs --bind ADDR (or --advertise)".into()),
    };
    if !(cli.register_ttl.is_finite() && cli.register_ttl > 0.0 && cli.register_ttl <= 86_400.0) {
        return Err("--register-ttl must be in (0, 86400] seconds".into());
    }
    let ttl = Duration::from_secs_f64(cli.register_ttl);
    let r = zerorpc::naming::register_with(registry, name, &endpoint, ttl)
        .await
        .map_err(|e| format!("cannot register with {registry}: {e}"))?;
    eprintln!("registered {name} at {endpoint} with {registry}");
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards_advertise_loopback() {
        assert_eq!(super::advertised("tcp://0.0.0.0:42"), "tcp://127.0.0.1:42");
        assert_eq!(super::advertised("tcp://*:42"), "tcp://127.0.0.1:42");
        assert_eq!(super::advertised("tcp://10.1.2.3:42"), "tcp://10.1.2.3:42");
    }
}
