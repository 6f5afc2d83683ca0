//! Sends zerorpc's remote errors to [Sentry](https://sentry.io).
//!
//! zerorpc tells an [`ErrorHook`] of every error a server's handler returns
//! (or panics with) and of every remote error a client's call receives,
//! each as an [`ErrorReport`] with the error's name, message and
//! traceback, and the call's trace and span ids when it was traced. This
//! crate owns the hook that turns each report into one Sentry event:
//!
//! - level `error`, with one exception: its type is the error's name
//!   (`ValueError`, `Panic`, ...), its value the message; a Python-style
//!   traceback (`File "x.py", line 3, in f`) becomes the exception's
//!   stacktrace, and the raw traceback is always kept in
//!   `extra["traceback"]`;
//! - transaction `"{service}/{method}"`, and the tags `rpc.system`
//!   (`zerorpc`), `rpc.service`, `rpc.method` and `zerorpc.side`
//!   (`server` or `client`; a client's "service" is the endpoint it
//!   called);
//! - the call's trace context (`contexts["trace"]`, op `rpc.server` or
//!   `rpc.client`, and a `trace_id` tag), so the error links to its trace:
//!   zerorpc's ids are W3C ids, the same format as Sentry's;
//! - a fingerprint of side, service, method and error name (not the
//!   message, which often holds the failing values), so every `KeyError`
//!   of `users/get` is one issue.
//!
//! It depends on `sentry-core` only: the application sets Sentry up
//! itself (`sentry::init`, with the transport it wants) and the hook
//! captures into a [`Hub`]. By default that is the *main* hub
//! ([`Hub::main`]): the hub `sentry::init` binds its client to when called
//! on the main thread, as it should be. zerorpc calls the hook from its
//! own tasks on the runtime's worker threads, whose thread-local hubs
//! ([`Hub::current`]) are copies of the main hub taken when each thread
//! first touched Sentry, which miss later scope changes (or the client,
//! if that was before `sentry::init`). Use [`SentryHook::current_hub`]
//! when the hub bound where the hook runs is the one you want (a client
//! calling from a task bound with `SentryFutureExt::bind_hub`), or
//! [`SentryHook::with_hub`] to choose one.
//!
//! The hook runs on the call's path: capturing an event prepares it and
//! hands it to the client's transport (which sends it from its own
//! thread), it does no I/O itself. It never panics on odd reports: ids
//! that are not hex of the right length are left out (and logged with
//! `tracing` at debug level).
//!
//! # Usage
//!
//! After `let _guard = sentry::init("https://key@sentry.example/1");` at
//! the start of `main` (the `sentry` crate is the application's
//! dependency, not this crate's):
//!
//! ```no_run
//! use std::sync::Arc;
//! use zerorpc::{CallError, Client, ClientOptions, Server, ServerOptions};
//!
//! struct Users;
//!
//! #[zerorpc::service(name = "users")]
//! impl Users {
//!     /// The user's name.
//!     pub fn get(&self, id: i64) -> Result<String, CallError> {
//!         Err(CallError::new("KeyError", format!("no user {id}")))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Every error a handler returns (or panics with) becomes an event...
//! let server = Arc::new(Server::with_options(
//!     Users,
//!     ServerOptions {
//!         on_error: Some(zerorpc_sentry::on_error()),
//!         ..Default::default()
//!     },
//! ));
//! server.bind("tcp://0.0.0.0:4242").await?;
//! tokio::spawn(async move { server.run().await });
//!
//! // ...and so does every remote error a client receives.
//! let client = Client::connect_with(
//!     &["tcp://users.internal:4242"],
//!     ClientOptions {
//!         on_error: Some(zerorpc_sentry::on_error()),
//!         ..Default::default()
//!     },
//! )
//! .await?;
//! let _ = client.call("get", vec![7.into()]).await;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use sentry_core::protocol::{
    Context, Event, Exception, Frame, Level, Map, Mechanism, SpanId, Stacktrace, TraceContext,
    TraceId, Value,
};
use sentry_core::Hub;
use zerorpc::record::Side;
use zerorpc::{ErrorHook, ErrorReport, OnError};

/// The longest tag value Sentry keeps.
const MAX_TAG_LEN: usize = 200;

/// An [`ErrorHook`] that captures one Sentry event per report.
///
/// ```
/// # use std::sync::Arc;
/// use zerorpc_sentry::SentryHook;
/// let on_error = zerorpc::OnError::new(SentryHook::new());
/// // or: a hub of your own
/// let hub = Arc::new(sentry_core::Hub::new_from_top(sentry_core::Hub::main()));
/// let on_error = zerorpc::OnError::new(SentryHook::with_hub(hub));
/// ```
#[derive(Clone, Default)]
pub struct SentryHook {
    target: Target,
}

/// Which hub the events go to.
#[derive(Clone, Default)]
enum Target {
    /// `Hub::main()`, looked up per report.
    #[default]
    Main,
    /// `Hub::current()` where the hook runs, looked up per report.
    Current,
    /// This one.
    Hub(Arc<Hub>),
}

impl SentryHook {
    /// Captures into the main hub ([`Hub::main`]): the one `sentry::init`
    /// sets up when called on the main thread. The right choice for most
    /// applications (see the [crate docs](crate)).
    pub fn new() -> Self {
        SentryHook {
            target: Target::Main,
        }
    }

    /// Captures into the hub current on the thread where the hook runs
    /// ([`Hub::current`]), looked up for each report: for a client that
    /// calls from tasks bound to hubs of their own.
    pub fn current_hub() -> Self {
        SentryHook {
            target: Target::Current,
        }
    }

    /// Captures into `hub`, whichever thread the hook runs on.
    pub fn with_hub(hub: Arc<Hub>) -> Self {
        SentryHook {
            target: Target::Hub(hub),
        }
    }

    fn hub(&self) -> Arc<Hub> {
        match &self.target {
            Target::Main => Hub::main(),
            Target::Current => Hub::current(),
            Target::Hub(hub) => hub.clone(),
        }
    }
}

impl ErrorHook for SentryHook {
    fn report(&self, report: &ErrorReport) {
        let event = event_from_report(report);
        let hub = self.hub();
        // The hook runs inside zerorpc's connection tasks: whatever the
        // client's callbacks (`before_send`, ...) do, don't unwind there.
        if catch_unwind(AssertUnwindSafe(|| hub.capture_event(event))).is_err() {
            tracing::warn!(
                method = %report.method,
                "capturing a zerorpc error report in Sentry panicked"
            );
        }
    }
}

impl From<SentryHook> for OnError {
    fn from(hook: SentryHook) -> Self {
        OnError::new(hook)
    }
}

impl std::fmt::Debug for SentryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hub = match self.target {
            Target::Main => "main",
            Target::Current => "current",
            Target::Hub(_) => "given",
        };
        f.debug_struct("SentryHook").field("hub", &hub).finish()
    }
}

/// A hook for [`ServerOptions::on_error`](zerorpc::ServerOptions) and
/// [`ClientOptions::on_error`](zerorpc::ClientOptions) that captures each
/// report into the main hub: `OnError::new(SentryHook::new())`.
pub fn on_error() -> OnError {
    OnError::new(SentryHook::new())
}

/// The Sentry event for a report (what [`SentryHook`] captures).
pub fn event_from_report(report: &ErrorReport) -> Event<'static> {
    let side = side_name(report.side);
    let transaction = format!("{}/{}", report.service, report.method);

    let mut tags = Map::new();
    tags.insert("rpc.system".to_owned(), "zerorpc".to_owned());
    tags.insert("rpc.service".to_owned(), tag_value(&report.service));
    tags.insert("rpc.method".to_owned(), tag_value(&report.method));
    tags.insert("zerorpc.side".to_owned(), side.to_owned());

    let mut contexts = Map::new();
    if let Some(trace) = trace_context(report, &transaction) {
        tags.insert("trace_id".to_owned(), trace.trace_id.to_string());
        contexts.insert("trace".to_owned(), Context::from(trace));
    }

    let mut extra = Map::new();
    if !report.error.traceback.is_empty() {
        extra.insert(
            "traceback".to_owned(),
            Value::String(report.error.traceback.clone()),
        );
    }

    let exception = Exception {
        ty: report.error.name.clone(),
        value: Some(report.error.message.clone()),
        stacktrace: parse_traceback(&report.error.traceback),
        mechanism: Some(Mechanism {
            ty: "zerorpc".to_owned(),
            // A handler's panic is the one error nobody handled.
            handled: Some(!(report.side == Side::Server && report.error.name == "Panic")),
            ..Default::default()
        }),
        ..Default::default()
    };

    let fingerprint: Vec<Cow<'static, str>> = vec![
        "zerorpc".into(),
        side.into(),
        report.service.clone().into(),
        report.method.clone().into(),
        report.error.name.clone().into(),
    ];

    Event {
        level: Level::Error,
        logger: Some("zerorpc".to_owned()),
        transaction: Some(transaction),
        exception: vec![exception].into(),
        fingerprint: fingerprint.into(),
        tags,
        extra,
        contexts,
        ..Default::default()
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Server => "server",
        Side::Client => "client",
    }
}

/// Sentry keeps tag values up to 200 characters, on one line.
fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TAG_LEN)
        .collect()
}

/// The report's ids as Sentry's trace context; none when it has none, or
/// when they are not valid ids.
fn trace_context(report: &ErrorReport, transaction: &str) -> Option<TraceContext> {
    let trace_id = report.trace_id.as_deref()?;
    let Some(trace_id) = parse_id::<TraceId>(trace_id, 32) else {
        tracing::debug!(
            trace_id,
            method = %report.method,
            "zerorpc error report with a malformed trace id: no trace context"
        );
        return None;
    };
    // A trace id without a span id can't place the error in the trace.
    let span_id = report.span_id.as_deref().unwrap_or_default();
    let Some(span_id) = parse_id::<SpanId>(span_id, 16) else {
        tracing::debug!(
            span_id,
            method = %report.method,
            "zerorpc error report with a missing or malformed span id: no trace context"
        );
        return None;
    };
    let op = match report.side {
        Side::Server => "rpc.server",
        Side::Client => "rpc.client",
    };
    let mut data = Map::new();
    data.insert("rpc.system".to_owned(), Value::from("zerorpc"));
    data.insert(
        "rpc.service".to_owned(),
        Value::from(report.service.clone()),
    );
    data.insert("rpc.method".to_owned(), Value::from(report.method.clone()));
    Some(TraceContext {
        trace_id,
        span_id,
        op: Some(op.to_owned()),
        description: Some(transaction.to_owned()),
        origin: Some("auto.rpc.zerorpc".to_owned()),
        data,
        ..Default::default()
    })
}

/// A W3C id: `len` hex digits, not all zero.
fn parse_id<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    let valid =
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0');
    if valid {
        s.parse().ok()
    } else {
        None
    }
}

/// The frames of a Python traceback, oldest first (as Python prints them
/// and Sentry wants them); of the last traceback when exceptions were
/// chained (that is the one of the error raised). None when the text has
/// no `File "...", line N` lines.
pub fn parse_traceback(traceback: &str) -> Option<Stacktrace> {
    let mut frames: Vec<Frame> = Vec::new();
    // Whether the last line was a frame's header, so the next is its source.
    let mut in_frame = false;
    for line in traceback.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Traceback (most recent call last)") {
            frames.clear();
            in_frame = false;
        } else if let Some(frame) = parse_frame_line(trimmed) {
            frames.push(frame);
            in_frame = true;
        } else if in_frame && line.starts_with("    ") && !trimmed.is_empty() {
            // The frame's source line; then (3.11+) maybe a line of carets.
            let carets = trimmed.chars().all(|c| matches!(c, '^' | '~' | ' '));
            if let Some(frame) = frames.last_mut() {
                if frame.context_line.is_none() && !carets {
                    frame.context_line = Some(trimmed.to_owned());
                }
            }
        } else {
            in_frame = false;
        }
    }
    if frames.is_empty() {
        None
    } else {
        Some(Stacktrace {
            frames,
            ..Default::default()
        })
    }
}

/// `File "path", line N, in function` (the `in` part may be missing).
fn parse_frame_line(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix("File \"")?;
    let (path, rest) = rest.split_once("\", line ")?;
    let (lineno, function) = match rest.split_once(", in ") {
        Some((n, f)) => (n, Some(f.trim())),
        None => (rest, None),
    };
    let lineno = lineno.trim().parse::<u64>().ok()?;
    let filename = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let library = path.contains("site-packages") || path.contains("dist-packages");
    Some(Frame {
        filename: Some(filename.to_owned()),
        abs_path: Some(path.to_owned()),
        lineno: Some(lineno),
        function: function.filter(|f| !f.is_empty()).map(str::to_owned),
        in_app: library.then_some(false),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(side: Side) -> ErrorReport {
        ErrorReport {
            side,
            service: "users".into(),
            method: "get".into(),
            error: zerorpc::CallError::new("KeyError", "no user 7"),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: Some("00f067aa0ba902b7".into()),
        }
    }

    fn trace<'a>(event: &'a Event<'_>) -> Option<&'a TraceContext> {
        match event.contexts.get("trace") {
            Some(Context::Trace(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn a_report_becomes_an_error_event() {
        let e = event_from_report(&report(Side::Server));
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.transaction.as_deref(), Some("users/get"));
        assert_eq!(e.exception.len(), 1);
        let x = &e.exception[0];
        assert_eq!(x.ty, "KeyError");
        assert_eq!(x.value.as_deref(), Some("no user 7"));
        assert!(x.stacktrace.is_none());
        assert_eq!(x.mechanism.as_ref().and_then(|m| m.handled), Some(true));
        assert!(e.extra.is_empty(), "no traceback, no extra: {:?}", e.extra);
        assert_eq!(e.tags["rpc.system"], "zerorpc");
        assert_eq!(e.tags["rpc.service"], "users");
        assert_eq!(e.tags["rpc.method"], "get");
        assert_eq!(e.tags["zerorpc.side"], "server");
        assert_eq!(e.tags["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            e.fingerprint.as_ref(),
            ["zerorpc", "server", "users", "get", "KeyError"]
        );
        let t = trace(&e).expect("a trace context");
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(t.op.as_deref(), Some("rpc.server"));
        assert_eq!(t.description.as_deref(), Some("users/get"));
        assert!(t.parent_span_id.is_none());
    }

    #[test]
    fn the_message_is_not_in_the_fingerprint() {
        let a = event_from_report(&report(Side::Client));
        let mut r = report(Side::Client);
        r.error.message = "no user 8".into();
        let b = event_from_report(&r);
        assert_eq!(a.fingerprint, b.fingerprint);
        r.error.name = "ValueError".into();
        assert_ne!(a.fingerprint, event_from_report(&r).fingerprint);
        assert_eq!(a.tags["zerorpc.side"], "client");
        assert_eq!(trace(&a).and_then(|t| t.op.as_deref()), Some("rpc.client"));
    }

    #[test]
    fn bad_ids_leave_the_trace_context_out() {
        let bad: [(Option<&str>, Option<&str>); 9] = [
            (None, None),
            (None, Some("00f067aa0ba902b7")),
            (Some("4bf92f3577b34da6a3ce929d0e0e4736"), None),
            (
                Some("not hex at all, not hex at all!!"),
                Some("00f067aa0ba902b7"),
            ),
            (Some("4bf92f3577b34da6"), Some("00f067aa0ba902b7")),
            (
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                Some("00f067aa0ba902"),
            ),
            (
                Some("00000000000000000000000000000000"),
                Some("00f067aa0ba902b7"),
            ),
            (
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                Some("0000000000000000"),
            ),
            // multi-byte characters of the right byte length
            (Some("éééééééééééééééé"), Some("éééééééé")),
        ];
        for (trace_id, span_id) in bad {
            let mut r = report(Side::Server);
            r.trace_id = trace_id.map(Into::into);
            r.span_id = span_id.map(Into::into);
            let e = event_from_report(&r);
            assert!(trace(&e).is_none(), "{trace_id:?} {span_id:?}: {e:?}");
            assert!(!e.tags.contains_key("trace_id"));
            // the rest of the event is there all the same
            assert_eq!(e.exception[0].ty, "KeyError");
            assert_eq!(e.tags["rpc.method"], "get");
        }
        // Upper-case hex is hex.
        let mut r = report(Side::Server);
        r.trace_id = Some("4BF92F3577B34DA6A3CE929D0E0E4736".into());
        let e = event_from_report(&r);
        assert_eq!(
            trace(&e).map(|t| t.trace_id.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn odd_reports_do_not_panic() {
        let r = ErrorReport {
            side: Side::Client,
            service: "x\n".repeat(500),
            method: String::new(),
            error: zerorpc::CallError::new("", "").with_traceback("File \"\nFile \"a\", line \n  File \"b\", line 99999999999999999999999, in \n    \n"),
            trace_id: Some(String::new()),
            span_id: Some("\u{0}".into()),
        };
        let e = event_from_report(&r);
        assert_eq!(e.tags["rpc.service"].chars().count(), MAX_TAG_LEN);
        assert!(!e.tags["rpc.service"].contains('\n'));
        assert!(e.exception[0].stacktrace.is_none());
        assert_eq!(
            e.extra["traceback"],
            Value::String(r.error.traceback.clone())
        );
        // and the hook itself, without any client bound
        SentryHook::with_hub(Arc::new(Hub::new(None, Default::default()))).report(&r);
    }

    const PYTHON: &str = r#"Traceback (most recent call last):
  File "/srv/app/venv/lib/python3.12/site-packages/zerorpc/core.py", line 153, in _async_task
    functor.pattern.process_call(self._context, bufchan, event, functor)
  File "/srv/app/users.py", line 12, in get
    return self.db[id]
           ~~~~~~~^^^^
KeyError: 7
"#;

    #[test]
    fn a_python_traceback_becomes_frames() {
        let st = parse_traceback(PYTHON).expect("frames");
        assert_eq!(st.frames.len(), 2);
        let (lib, app) = (&st.frames[0], &st.frames[1]);
        assert_eq!(lib.filename.as_deref(), Some("core.py"));
        assert_eq!(lib.lineno, Some(153));
        assert_eq!(lib.function.as_deref(), Some("_async_task"));
        assert_eq!(lib.in_app, Some(false));
        assert_eq!(app.filename.as_deref(), Some("users.py"));
        assert_eq!(app.abs_path.as_deref(), Some("/srv/app/users.py"));
        assert_eq!(app.lineno, Some(12));
        assert_eq!(app.function.as_deref(), Some("get"));
        assert_eq!(app.context_line.as_deref(), Some("return self.db[id]"));
        assert_eq!(app.in_app, None);

        let mut r = report(Side::Client);
        r.error.traceback = PYTHON.into();
        let e = event_from_report(&r);
        assert_eq!(e.exception[0].stacktrace.as_ref(), Some(&st));
        assert_eq!(e.extra["traceback"], Value::String(PYTHON.into()));
    }

    #[test]
    fn chained_tracebacks_give_the_last_ones_frames() {
        let tb = format!(
            "Traceback (most recent call last):\n  File \"a.py\", line 1, in f\n    g()\nIndexError: 0\n\nDuring handling of the above exception, another exception occurred:\n\n{PYTHON}"
        );
        let st = parse_traceback(&tb).expect("frames");
        assert_eq!(st.frames.len(), 2);
        assert_eq!(st.frames[1].function.as_deref(), Some("get"));
        // A frame without a function (a SyntaxError's), Windows paths.
        let st = parse_traceback("  File \"C:\\app\\x.py\", line 3\n    def (:\n").expect("frames");
        assert_eq!(st.frames[0].filename.as_deref(), Some("x.py"));
        assert_eq!(st.frames[0].function, None);
        assert_eq!(st.frames[0].context_line.as_deref(), Some("def (:"));
        // Not Python: no frames.
        assert!(parse_traceback("Traceback: in flaky.fail\n").is_none());
        assert!(parse_traceback("").is_none());
    }
}
