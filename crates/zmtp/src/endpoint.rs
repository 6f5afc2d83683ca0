//! Endpoint strings: `tcp://host:port`, `tcp://*:port`, `tcp://[::1]:port`,
//! `ipc:///path/to/socket`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ZmtpError;

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP: a host name, IPv4/IPv6 address or `*` (all interfaces), and a
    /// port (0 when binding picks a free one).
    Tcp {
        /// Host as written (without IPv6 brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket path.
    Ipc(PathBuf),
}

impl Endpoint {
    /// The `host:port` string to hand to the OS (`*` becomes `0.0.0.0`).
    #[cfg(feature = "tokio")]
    pub(crate) fn socket_addr_string(&self) -> Option<String> {
        match self {
            Endpoint::Tcp { host, port } => {
                let host = if host == "*" { "0.0.0.0" } else { host };
                Some(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                })
            }
            Endpoint::Ipc(_) => None,
        }
    }

    /// The TCP port, if this is a TCP endpoint.
    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { port, .. } => Some(*port),
            Endpoint::Ipc(_) => None,
        }
    }
}

impl FromStr for Endpoint {
    type Err = ZmtpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| ZmtpError::InvalidEndpoint {
            endpoint: s.to_owned(),
            reason,
        };
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = if let Some(r) = rest.strip_prefix('[') {
                let (h, p) = r
                    .split_once("]:")
                    .ok_or_else(|| bad("expected [ipv6]:port"))?;
                (h, p)
            } else {
                rest.rsplit_once(':')
                    .ok_or_else(|| bad("expected host:port"))?
            };
            if host.is_empty() {
                return Err(bad("empty host"));
            }
            let port = if port == "*" {
                0
            } else {
                port.parse()
                    .map_err(|_| bad("port is not a number 0-65535"))?
            };
            Ok(Endpoint::Tcp {
                host: host.to_owned(),
                port,
            })
        } else if let Some(path) = s.strip_prefix("ipc://") {
            if path.is_empty() {
                return Err(bad("empty ipc path"));
            }
            Ok(Endpoint::Ipc(PathBuf::from(path)))
        } else {
            Err(bad("unsupported transport (use tcp:// or ipc://)"))
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ipc(p) => write!(f, "ipc://{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for s in [
            "tcp://127.0.0.1:5555",
            "tcp://*:0",
            "tcp://[::1]:4242",
            "tcp://localhost:80",
            "ipc:///tmp/x.sock",
            "ipc://relative.sock",
        ] {
            let ep: Endpoint = s.parse().unwrap();
            assert_eq!(ep.to_string(), s);
        }
        assert_eq!(
            "tcp://*:7"
                .parse::<Endpoint>()
                .unwrap()
                .socket_addr_string()
                .unwrap(),
            "0.0.0.0:7"
        );
        assert_eq!("tcp://*:*".parse::<Endpoint>().unwrap().port(), Some(0));
        for bad in [
            "udp://x:1",
            "tcp://nohost",
            "tcp://:5",
            "tcp://h:99999",
            "ipc://",
            "tcp://[::1:5",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
