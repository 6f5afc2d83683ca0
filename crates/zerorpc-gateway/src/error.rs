//! [`HttpError`]: a call's error as an HTTP response, with the status
//! [`default_status`] gives its name.

use crate::*;

/// The default status of a remote error, by its name:
///
/// | name | status |
/// |---|---|
/// | `NameError` (no such method) | 404 |
/// | `TypeError` (wrong arguments) | 400 |
/// | `PermissionDenied` | 403 |
/// | `LostRemote`, `Disconnected` (as a hub reports them) | 502 |
/// | `TimeoutExpired` | 504 |
/// | anything else | 500 |
pub fn default_status(name: &str) -> StatusCode {
    match name {
        "NameError" => StatusCode::NOT_FOUND,
        "TypeError" => StatusCode::BAD_REQUEST,
        "PermissionDenied" => StatusCode::FORBIDDEN,
        "LostRemote" | "Disconnected" => StatusCode::BAD_GATEWAY,
        "TimeoutExpired" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What can stop a gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The service did not answer introspection (unreachable, timed out).
    #[error("cannot describe the service: {0}")]
    Describe(#[source] zerorpc::Error),
    /// Serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An error answered over HTTP: a status and `{"error": {"name",
/// "message", "traceback"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error}")]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error: the remote one as the service sent it, or the
    /// gateway's own (empty traceback).
    pub error: zerorpc::CallError,
}

impl HttpError {
    /// An error of the gateway's own.
    pub fn new(status: StatusCode, name: &str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            error: zerorpc::CallError::new(name, message),
        }
    }

    /// The error object (`{"name", "message", "traceback"}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.error.name,
            "message": self.error.message,
            "traceback": self.error.traceback,
        })
    }

    /// The status for a failed call.
    pub(crate) fn from_call(opts: &GatewayOptions, e: zerorpc::Error) -> Self {
        use zerorpc::Error as E;
        match e {
            E::Remote(r) => HttpError {
                status: opts.status_for(&r.name),
                error: r,
            },
            E::Timeout(_) => {
                HttpError::new(StatusCode::GATEWAY_TIMEOUT, "TimeoutExpired", e.to_string())
            }
            E::LostRemote(_) => {
                HttpError::new(StatusCode::BAD_GATEWAY, "LostRemote", e.to_string())
            }
            E::Disconnected => {
                HttpError::new(StatusCode::BAD_GATEWAY, "Disconnected", e.to_string())
            }
            other => HttpError::new(StatusCode::BAD_GATEWAY, "BadGateway", other.to_string()),
        }
    }

    pub(crate) fn timeout(t: Duration) -> Self {
        HttpError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TimeoutExpired",
            format!("no reply from the service within {t:?}"),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_json() });
        json_response(self.status, body.to_string().into_bytes())
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
