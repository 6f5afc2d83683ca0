//! Bodies the service would refuse are refused by the gateway at once, and
//! reading them costs about their size, not twenty times more. The memory
//! is this process's peak RSS (gateway, service and HTTP client all in
//! it), so this file holds one test: nothing else runs beside it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as J;
use zerorpc::{Client, DynamicService, Server, Value};
use zerorpc_gateway::{Gateway, GatewayOptions, DEFAULT_MAX_BODY};

/// A guard against wedging, not a measure of speed: far below the
/// gateway's timeout, so an answer that waits for it fails.
const WEDGE: Duration = Duration::from_secs(60);

/// The gateway waits this long for the service.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Most a request may add to the process's peak RSS: 8 times the largest
/// body. (Before the limits, 16 MiB of small values cost about 600 MB.)
const MAX_GROWTH: u64 = 8 * DEFAULT_MAX_BODY as u64;

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the peak RSS (VmHWM) to the current RSS; the RSS then.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    status_kb("VmRSS:") * 1024
}

fn service() -> DynamicService {
    DynamicService::new("sizes").method(
        "size",
        "How many bytes, items or entries x holds.",
        &["x"],
        |a| async move {
            let n = match a.first() {
                Some(Value::String(s)) => s.as_bytes().len(),
                Some(Value::Binary(b)) => b.len(),
                Some(Value::Array(v)) => v.len(),
                Some(Value::Map(m)) => m.len(),
                _ => 0,
            };
            Ok(Value::from(n as u64))
        },
    )
}

struct Case {
    what: &'static str,
    body: Vec<u8>,
    status: u16,
    error: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let max = DEFAULT_MAX_BODY;
    // One string, as large as a body may be: accepted.
    let mut big = b"[\"".to_vec();
    big.resize(max - 2, b'x');
    big.extend_from_slice(b"\"]");
    // 8 million zeros in one array: more values than a server decodes.
    let mut tiny = b"[[0".to_vec();
    while tiny.len() < max - 4 {
        tiny.extend_from_slice(b",0");
    }
    tiny.extend_from_slice(b"]]");
    // 16 MiB of nesting.
    let mut deep = vec![b'['; max / 2];
    deep.resize(max, b']');
    // Millions of small objects, each three values.
    let mut objects = b"[[".to_vec();
    while objects.len() < max - 16 {
        objects.extend_from_slice(b"{\"a\":1},");
    }
    objects.extend_from_slice(b"{}]]");
    vec![
        Case {
            what: "a 16 MiB string",
            body: big,
            status: 200,
            error: None,
        },
        Case {
            what: "8 million small values",
            body: tiny,
            status: 413,
            error: Some("PayloadTooLarge"),
        },
        Case {
            what: "16 MiB of nesting",
            body: deep,
            status: 400,
            error: Some("BadRequest"),
        },
        Case {
            what: "2 million small objects",
            body: objects,
            status: 413,
            error: Some("PayloadTooLarge"),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_the_service_would_refuse_are_refused_at_once_in_bounded_memory() {
    let server = Arc::new(Server::new(service()));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let client = Client::connect(&ep).await.unwrap();
    let opts = GatewayOptions::default().timeout(CALL_TIMEOUT);
    let gateway = tokio::time::timeout(WEDGE, Gateway::new(client, opts))
        .await
        .expect("wedged: gateway start")
        .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/size", listener.local_addr().unwrap());
    tokio::spawn(gateway.serve(listener));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // (warm up: connection pools, first allocations)
    let r = http.post(&url).body("[\"x\"]").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "1");

    let mut failures = Vec::new();
    for case in cases() {
        let len = case.body.len();
        let base = reset_peak();
        let answer = tokio::time::timeout(WEDGE, async {
            let r = http.post(&url).body(case.body).send().await?;
            let status = r.status().as_u16();
            Ok::<_, reqwest::Error>((status, r.text().await?))
        })
        .await;
        let peak = status_kb("VmHWM:") * 1024;
        let growth = peak.saturating_sub(base);
        eprintln!(
            "{}: {len} bytes, RSS {} MB, peak {} MB (+{} MB)",
            case.what,
            base >> 20,
            peak >> 20,
            growth >> 20
        );
        let Ok(answer) = answer else {
            failures.push(format!("{}: no answer within {WEDGE:?}", case.what));
            continue;
        };
        let (status, text) = answer.expect("http");
        if status != case.status {
            failures.push(format!(
                "{}: status {status}, not {}: {:.300}",
                case.what, case.status, text
            ));
        }
        if let Some(name) = case.error {
            let j: J = serde_json::from_str(&text).expect("a JSON error");
            if j["error"]["name"] != name {
                failures.push(format!("{}: {j}", case.what));
            }
        } else if text != (len - 4).to_string() {
            failures.push(format!("{}: answered {text:.300}", case.what));
        }
        if growth > MAX_GROWTH {
            failures.push(format!(
                "{}: the peak RSS grew by {} MB, over {} MB",
                case.what,
                growth >> 20,
                MAX_GROWTH >> 20
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
