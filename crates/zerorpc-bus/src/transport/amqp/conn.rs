//! Opening connections to the broker, and saying clearly what failed
//! (which broker, what happened) in our [`Error`]s.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use super::NAME;
use crate::Error;

/// How long one connection attempt may take at most.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port` of an AMQP URL (never its credentials).
pub(crate) fn broker_addr(url: &str) -> String {
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(u) => format!("{}:{}", u.authority.host, u.authority.port),
        Err(_) => "an unparsable AMQP URL".to_owned(),
    }
}

/// A broker error: `what` failed at the broker at `url`.
pub(crate) fn broker_error(url: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Broker {
        transport: NAME.to_owned(),
        detail: format!("{what} at {}: {e}", broker_addr(url)),
    }
}

/// Connects to `url` within `limit` (and [`CONNECT_TIMEOUT`]); the
/// connection is named `name` in the broker's management UI.
pub(crate) async fn open(url: &str, name: &str, limit: Duration) -> Result<Connection, Error> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let limit = limit.min(CONNECT_TIMEOUT);
    match tokio::time::timeout(limit, Connection::connect(url, props)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(broker_error(url, "cannot connect", e)),
        Err(_) => Err(broker_error(
            url,
            "cannot connect",
            format!("no answer within {limit:?}"),
        )),
    }
}

/// The text of an error without its transport prefix (for
/// `Error::Unconfirmed` reasons that add their own).
pub(crate) fn cause(e: &Error) -> String {
    match e {
        Error::Broker { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `amqps://` URL is spoken TLS (rustls, with ring's crypto): to
    /// the machine's RabbitMQ, whose port 5672 is plain AMQP, the client
    /// sends a TLS hello and fails on the AMQP answer, with an error that
    /// names the broker (not a panic for a missing crypto provider, not a
    /// plain AMQP login).
    #[tokio::test]
    async fn an_amqps_url_speaks_tls() {
        let url = "amqps://guest:guest@127.0.0.1:5672/%2f";
        let e = match open(url, "tls-check", Duration::from_secs(5)).await {
            Ok(_) => panic!("a TLS client logged in on a plain AMQP port"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("127.0.0.1:5672"), "{e}");
        assert!(
            e.contains("corrupt message") || e.contains("InvalidContentType"),
            "not a TLS failure: {e}"
        );
    }
}
