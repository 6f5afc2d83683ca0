//! `zerorpc contract record|verify`: consumer-driven contracts (Pact's
//! idea, for zerorpc).
//!
//! `record` binds a records port like a trace collector and turns the
//! client-side records of real calls — made with payloads recorded
//! (`--record-payloads`, or `ClientOptions::record_payloads`) — into a
//! contract file: per method, its argument names (introspection, when the
//! service tells them) and a few example calls with the shape of their
//! result (types and map fields, not values) or the error they raised.
//!
//! `verify ADDR FILE` checks a running service (ours, Python's, Node's)
//! against it: introspection first (a method gone, more arguments
//! required, argument names changed), then every example replayed, its
//! result checked against the recorded shape. A readable report; exit
//! code 0 when nothing would break, 1 when something would (usable in a
//! provider's CI).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use zerorpc::record::{Outcome, Record, Side};
use zerorpc::{Client, ClientOptions, Error, Value};

use crate::literal::parse_arg;
use crate::output::repr;

/// `zerorpc contract ...`: consumer-driven contracts.
#[derive(Parser, Debug)]
#[command(name = "zerorpc contract")]
pub struct ContractArgs {
    #[command(subcommand)]
    cmd: ContractCmd,
}

#[derive(Subcommand, Debug)]
enum ContractCmd {
    /// Collect a client's real calls into a contract file: bind a records
    /// port and point the client's records at it (`zerorpc --records ADDR
    /// --record-payloads ...`, or `ClientOptions { recorder,
    /// record_payloads: true, .. }`).
    Record {
        /// Where to take records (the client's --records address).
        #[arg(long, default_value = "tcp://127.0.0.1:5555", value_name = "ADDR")]
        records: String,
        /// The contract file to write (YAML).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Stop after this many calls were recorded.
        #[arg(long, value_name = "N")]
        calls: Option<usize>,
        /// Stop after this many seconds (default: on Ctrl-C, or --calls).
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
        /// Example calls kept per method (distinct shapes first).
        #[arg(long, default_value_t = 5, value_name = "N")]
        examples: usize,
    },
    /// Check a running service against a contract: introspection, then
    /// the recorded calls replayed. Exit 0: nothing would break; 1: what
    /// would is reported.
    Verify {
        /// The service's address.
        address: String,
        /// The contract file.
        file: PathBuf,
        /// Seconds each replayed call may take.
        #[arg(long, default_value_t = 10.0, value_name = "S")]
        timeout: f64,
    },
}

/// What a client expects of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// The service's name (`_zerorpc_name`) when it was recorded.
    pub service: String,
    /// Per method.
    pub methods: BTreeMap<String, MethodContract>,
}

/// What a client expects of one method.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodContract {
    /// Its argument names as introspection gave them (none when the
    /// service did not tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Example calls.
    pub calls: Vec<Interaction>,
}

/// One example call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Its arguments, as Python literals (exact: `b'..'` is bytes).
    pub args: Vec<String>,
    /// The shape of its result, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Shape>,
    /// The error name it raised, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The shape of a value: its type, with a list's item shape and a map's
/// fields; no values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Nothing known (a nil, or mixed items): anything matches.
    Any,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A float (an integer matches too).
    Float,
    /// A string.
    Str,
    /// Bytes.
    Bytes,
    /// A list whose items have this shape.
    List(Box<Shape>),
    /// A map with (at least) these string keys.
    Map(BTreeMap<String, Shape>),
}

impl Shape {
    /// The shape of `v`.
    pub fn of(v: &Value) -> Shape {
        match v {
            Value::Nil => Shape::Any,
            Value::Boolean(_) => Shape::Bool,
            Value::Integer(_) => Shape::Int,
            Value::F32(_) | Value::F64(_) => Shape::Float,
            Value::String(_) => Shape::Str,
            Value::Binary(_) => Shape::Bytes,
            Value::Array(items) => {
                let mut shapes = items.iter().map(Shape::of);
                let first = shapes.next().unwrap_or(Shape::Any);
                let same = shapes.all(|s| s == first);
                Shape::List(Box::new(if same { first } else { Shape::Any }))
            }
            Value::Map(entries) => {
                let fields: Option<BTreeMap<String, Shape>> = entries
                    .iter()
                    .map(|(k, v)| Some((k.as_str()?.to_owned(), Shape::of(v))))
                    .collect();
                fields.map_or(Shape::Any, Shape::Map)
            }
            Value::Ext(..) => Shape::Any,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Shape::Any => "anything",
            Shape::Bool => "a boolean",
            Shape::Int => "an integer",
            Shape::Float => "a float",
            Shape::Str => "a string",
            Shape::Bytes => "bytes",
            Shape::List(_) => "a list",
            Shape::Map(_) => "a map",
        }
    }

    /// What about `got` breaks this shape, each with its path (`result`,
    /// `result.items[0].name`).
    pub fn check(&self, got: &Value, path: &str, problems: &mut Vec<String>) {
        let ok = match (self, got) {
            (Shape::Any, _) => true,
            (Shape::Bool, Value::Boolean(_)) | (Shape::Int, Value::Integer(_)) => true,
            (Shape::Float, Value::F32(_) | Value::F64(_) | Value::Integer(_)) => true,
            (Shape::Str, Value::String(_)) | (Shape::Bytes, Value::Binary(_)) => true,
            (Shape::List(item), Value::Array(items)) => {
                // (a few items tell the shape; a long list is not walked)
                for (i, v) in items.iter().take(16).enumerate() {
                    item.check(v, &format!("{path}[{i}]"), problems);
                }
                true
            }
            (Shape::Map(fields), Value::Map(entries)) => {
                for (name, shape) in fields {
                    match entries.iter().find(|(k, _)| k.as_str() == Some(name)) {
                        Some((_, v)) => shape.check(v, &format!("{path}.{name}"), problems),
                        None => problems.push(format!("{path}.{name} is gone")),
                    }
                }
                true
            }
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "{path} was {}, now {}",
                self.name(),
                Shape::of(got).name()
            ));
        }
    }
}

pub async fn run(a: ContractArgs) -> ExitCode {
    match a.cmd {
        ContractCmd::Record {
            records,
            out,
            calls,
            duration,
            examples,
        } => record(&records, &out, calls, duration, examples).await,
        ContractCmd::Verify {
            address,
            file,
            timeout,
        } => verify(&address, &file, timeout).await,
    }
}

/// One recorded call: where it went, and what it did.
struct Seen {
    endpoint: String,
    method: String,
    args: Vec<Value>,
    outcome: Result<Value, String>,
}

fn seen(r: Record) -> Option<Seen> {
    if r.side != Side::Client {
        return None;
    }
    let p = r.payload?;
    let outcome = match (r.outcome, p.result) {
        (Outcome::Ok | Outcome::Stream { .. }, Some(v)) => Ok(v),
        (Outcome::Err { name, .. }, _) => Err(name),
        // (lost, cancelled: nothing the service said)
        _ => return None,
    };
    Some(Seen {
        endpoint: r.service.to_string(),
        method: r.method,
        args: p.args,
        outcome,
    })
}

async fn record(
    addr: &str,
    out: &PathBuf,
    calls: Option<usize>,
    duration: Option<f64>,
    examples: usize,
) -> ExitCode {
    let pull = zerorpc::zmtp::PullSocket::new();
    if let Err(e) = pull.bind(addr).await {
        eprintln!("zerorpc: cannot bind {addr}: {e}");
        return ExitCode::from(2);
    }
    crate::status_line(&format!("recording calls from records sent to {addr}"));
    let until = duration.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut all: Vec<Seen> = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while calls.is_none_or(|n| all.len() < n) {
        let stop = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let m = tokio::select! {
            _ = &mut ctrl_c => break,
            _ = stop => break,
            m = pull.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("zerorpc: records port failed: {e}");
                return ExitCode::from(5);
            }
        };
        let Some(frame) = m.last() else { continue };
        match zerorpc::collector::decode_batch(frame) {
            Ok(batch) => all.extend(batch.into_iter().filter_map(seen)),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable batch of records"),
        }
    }
    if all.is_empty() {
        eprintln!(
            "zerorpc: no call with its payload was recorded (the client needs --records {addr} and --record-payloads)"
        );
        return ExitCode::from(5);
    }
    let contract = build(all, examples).await;
    let text = match serde_norway::to_string(&contract) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zerorpc: cannot write the contract: {e}");
            return ExitCode::from(5);
        }
    };
    let text = format!(
        "# zerorpc contract: what a client's calls expect of `{}`.\n# Check a service with `zerorpc contract verify ADDRESS {}`.\n{text}",
        contract.service,
        out.display()
    );
    if let Err(e) = std::fs::write(out, text) {
        eprintln!("zerorpc: cannot write {}: {e}", out.display());
        return ExitCode::from(5);
    }
    let n: usize = contract.methods.values().map(|m| m.calls.len()).sum();
    println!(
        "wrote {}: {} methods, {n} example calls",
        out.display(),
        contract.methods.len()
    );
    ExitCode::SUCCESS
}

/// What makes two example calls of a method different: the shapes of
/// their arguments and result, and their error.
type ExampleKey = (Vec<Shape>, Option<Shape>, Option<String>);

/// The contract of the calls seen: argument names from the service's
/// introspection (asked at the first endpoint seen), examples with
/// distinct shapes first, at most `examples` per method.
async fn build(all: Vec<Seen>, examples: usize) -> Contract {
    let info = match Client::connect(&all[0].endpoint).await {
        Ok(c) => c.describe().await.ok(),
        Err(_) => None,
    };
    let mut contract = Contract {
        service: info.as_ref().map_or("?".to_owned(), |i| i.name.clone()),
        methods: BTreeMap::new(),
    };
    let mut shapes: BTreeMap<String, Vec<ExampleKey>> = BTreeMap::new();
    for s in all {
        let m = contract
            .methods
            .entry(s.method.clone())
            .or_insert_with(|| MethodContract {
                args: info
                    .as_ref()
                    .and_then(|i| i.method(&s.method))
                    .and_then(|m| m.args.as_ref())
                    .map(|a| a.iter().map(|a| a.name.clone()).collect()),
                calls: Vec::new(),
            });
        let (result, error) = match &s.outcome {
            Ok(v) => (Some(Shape::of(v)), None),
            Err(name) => (None, Some(name.clone())),
        };
        let key = (
            s.args.iter().map(Shape::of).collect(),
            result.clone(),
            error.clone(),
        );
        let known = shapes.entry(s.method).or_default();
        if m.calls.len() >= examples || known.contains(&key) {
            continue;
        }
        known.push(key);
        m.calls.push(Interaction {
            args: s.args.iter().map(repr).collect(),
            result,
            error,
        });
    }
    contract
}

async fn verify(addr: &str, file: &PathBuf, timeout: f64) -> ExitCode {
    let contract: Contract = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_norway::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerorpc: cannot read the contract {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let opts = ClientOptions::default().timeout(Duration::from_secs_f64(timeout.max(0.001)));
    let client = match Client::connect_with(&[addr], opts).await {
        Ok(c) => c,
        Err(e) => return crate::client::report(&e, addr, "connect"),
    };
    let info = match client.describe().await {
        Ok(i) => i,
        Err(e) => return crate::client::report(&e, addr, "_zerorpc_inspect"),
    };
    println!(
        "contract for `{}` against {addr} (`{}`):",
        contract.service, info.name
    );
    let (mut broken, mut checked) = (0, 0);
    for (name, m) in &contract.methods {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let now = info.method(name);
        if now.is_none() && !info.methods.is_empty() {
            problems.push(format!(
                "the service has no method `{name}` any more (renamed or removed?)"
            ));
        }
        if let (Some(was), Some(spec)) = (&m.args, now.and_then(|m| m.args.as_ref())) {
            let passed = m.calls.iter().map(|c| c.args.len()).min().unwrap_or(0);
            let required: Vec<&str> = spec
                .iter()
                .filter(|a| a.default.is_none())
                .map(|a| a.name.as_str())
                .collect();
            if required.len() > passed {
                problems.push(format!(
                    "it now requires {} arguments ({}); the recorded calls pass {passed}",
                    required.len(),
                    required.join(", ")
                ));
            }
            for (i, (w, n)) in was.iter().zip(spec).enumerate() {
                if *w != n.name {
                    notes.push(format!(
                        "argument {} was `{w}`, now `{}` (calls by position still work, by name not)",
                        i + 1,
                        n.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            for call in &m.calls {
                checked += 1;
                let args: Vec<Value> = call.args.iter().map(|a| parse_arg(a)).collect();
                let shown = format!("{name}({})", call.args.join(", "));
                match (client.call(name, args).await, &call.result, &call.error) {
                    (Ok(v), Some(shape), _) => {
                        let mut p = Vec::new();
                        shape.check(&v, "result", &mut p);
                        problems.extend(p.into_iter().map(|p| format!("{shown}: {p}")));
                    }
                    (Ok(v), None, Some(e)) => problems.push(format!(
                        "{shown} raised {e} when recorded, now returns {}",
                        repr(&v)
                    )),
                    (Err(Error::Remote(r)), _, Some(e)) if &r.name == e => {}
                    (Err(Error::Remote(r)), _, _) => {
                        problems.push(format!("{shown} now fails: {}: {}", r.name, r.message))
                    }
                    (Err(e), _, _) => problems.push(format!("{shown} failed: {e}")),
                    (Ok(_), None, None) => {}
                }
            }
        }
        let mark = if problems.is_empty() { "ok  " } else { "FAIL" };
        println!("  {mark} {name} ({} calls)", m.calls.len());
        for p in &problems {
            println!("       - {p}");
        }
        for n in &notes {
            println!("       ~ {n}");
        }
        if !problems.is_empty() {
            broken += 1;
        }
    }
    if broken == 0 {
        println!(
            "all {} methods keep their contract ({checked} calls replayed)",
            contract.methods.len()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{broken} of {} methods would break this client",
            contract.methods.len()
        );
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn shapes_keep_types_and_fields_and_report_what_changed() {
        let was = map(&[
            ("name", "disk".into()),
            ("size", 3.into()),
            ("tags", Value::Array(vec!["a".into()])),
        ]);
        let shape = Shape::of(&was);
        let mut p = Vec::new();
        shape.check(&was, "result", &mut p);
        assert!(p.is_empty(), "{p:?}");
        // extra fields are fine; a float where an integer was is not
        let now = map(&[
            ("name", "disk".into()),
            ("size", 3.5.into()),
            ("tags", Value::Array(vec![1.into()])),
            ("new", true.into()),
        ]);
        shape.check(&now, "result", &mut p);
        assert_eq!(
            p,
            [
                "result.size was an integer, now a float",
                "result.tags[0] was a string, now an integer"
            ]
        );
        let mut p = Vec::new();
        shape.check(&map(&[("size", 1.into())]), "result", &mut p);
        assert_eq!(p, ["result.name is gone", "result.tags is gone"]);
        // the YAML round trip keeps the shape
        let text = serde_norway::to_string(&shape).unwrap();
        assert_eq!(serde_norway::from_str::<Shape>(&text).unwrap(), shape);
    }
}
