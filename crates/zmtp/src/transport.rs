//! TCP and IPC streams behind one interface.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::endpoint::Endpoint;
use crate::error::{Result, ZmtpError};

pub(crate) type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// A connected stream, split into halves, with a printable remote address.
pub(crate) struct Connection {
    pub read: BoxRead,
    pub write: BoxWrite,
    pub remote: String,
}

fn tcp(stream: TcpStream) -> Connection {
    // Latency matters more than packet count for RPC traffic; we batch
    // writes ourselves.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let remote = stream
        .peer_addr()
        .map(|a| format!("tcp://{a}"))
        .unwrap_or_else(|_| "tcp://?".into());
    let (r, w) = stream.into_split();
    Connection {
        read: Box::new(r),
        write: Box::new(w),
        remote,
    }
}

fn ipc(stream: UnixStream, path: &std::path::Path) -> Connection {
    let (r, w) = stream.into_split();
    Connection {
        read: Box::new(r),
        write: Box::new(w),
        remote: format!("ipc://{}", path.display()),
    }
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Ipc(UnixListener, PathBuf),
}

impl Listener {
    pub async fn bind(ep: &Endpoint) -> Result<(Listener, Endpoint)> {
        match ep {
            Endpoint::Tcp { .. } => {
                let addr = ep.socket_addr_string().ok_or(ZmtpError::InvalidEndpoint {
                    endpoint: ep.to_string(),
                    reason: "not a tcp endpoint",
                })?;
                let l = TcpListener::bind(addr).await?;
                let local = l.local_addr()?;
                let bound = Endpoint::Tcp {
                    host: local.ip().to_string(),
                    port: local.port(),
                };
                Ok((Listener::Tcp(l), bound))
            }
            Endpoint::Ipc(path) => {
                // Like libzmq, take over a stale socket file left behind.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        let _ = std::fs::remove_file(path);
                    }
                }
                let l = UnixListener::bind(path)?;
                Ok((Listener::Ipc(l, path.clone()), ep.clone()))
            }
        }
    }

    pub async fn accept(&self) -> std::io::Result<Connection> {
        match self {
            Listener::Tcp(l) => Ok(tcp(l.accept().await?.0)),
            Listener::Ipc(l, path) => Ok(ipc(l.accept().await?.0, path)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Ipc(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(crate) async fn connect(ep: &Endpoint) -> Result<Connection> {
    match ep {
        Endpoint::Tcp { host, .. } => {
            if host == "*" {
                return Err(ZmtpError::InvalidEndpoint {
                    endpoint: ep.to_string(),
                    reason: "cannot connect to *",
                });
            }
            let addr = ep.socket_addr_string().unwrap_or_default();
            Ok(tcp(TcpStream::connect(addr).await?))
        }
        Endpoint::Ipc(path) => Ok(ipc(UnixStream::connect(path).await?, path)),
    }
}
