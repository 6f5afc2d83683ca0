//! Client mode: list, inspect, call.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use zerorpc::{Client, ClientOptions, Error, Value};

use crate::literal::{parse_arg, parse_json_arg};
use crate::output::{repr, to_json};
use crate::Cli;

/// A method as introspection describes it.
struct MethodDoc {
    name: String,
    args: Option<Vec<(String, Option<Value>)>>,
    doc: Option<String>,
}

fn exit_for(e: &Error) -> ExitCode {
    ExitCode::from(exit_number(e))
}

/// Prints an error the way a user needs it, and returns the exit code.
pub fn report(e: &Error, endpoint: &str, method: &str) -> ExitCode {
    match e {
        Error::Remote(r) => {
            if !r.traceback.trim().is_empty() {
                eprintln!("Remote traceback:\n{}", r.traceback.trim_end());
            }
            eprintln!("{}: {}", r.name, r.message);
        }
        Error::Timeout(t) => eprintln!(
            "zerorpc: timeout after {}s waiting for a reply to {method}() from {endpoint}",
            t.as_secs_f64()
        ),
        Error::LostRemote(t) => eprintln!(
            "zerorpc: lost remote {endpoint}: no heartbeat for {:.1}s during {method}()",
            t.as_secs_f64()
        ),
        Error::Disconnected => {
            eprintln!("zerorpc: lost remote {endpoint}: the connection dropped during {method}()")
        }
        Error::Authentication { reason } => {
            eprintln!("zerorpc: authentication failed with {endpoint}: {reason}");
            eprintln!("zerorpc: {}", authentication_hint(reason));
        }
        Error::IncompatibleSocketType { reason } => {
            eprintln!("zerorpc: {endpoint} is not a zerorpc server ({reason}): check the address")
        }
        other => eprintln!("zerorpc: {method}() on {endpoint} failed: {other}"),
    }
    exit_for(e)
}

/// What to check after a failed authentication.
fn authentication_hint(reason: &str) -> &'static str {
    if reason.contains("we use NULL") {
        "the server speaks CURVE: give its public key with --curve-server-key (and our keys with --curve-keys if it allows only some)"
    } else if reason.contains("we use CURVE") {
        "the server does not speak CURVE: drop --curve-server-key and --curve-keys"
    } else if reason.contains("wrong server key") {
        "check --curve-server-key: it must be the server's public key (its NAME.key)"
    } else {
        "check that the server allows our key (--curve-keys: our NAME.key_secret; the server's --curve-allow directory must hold our NAME.key) and that --curve-server-key is the server's public key"
    }
}

fn options(cli: &Cli) -> ClientOptions {
    ClientOptions::default()
        .timeout(Duration::from_secs_f64(cli.timeout.max(0.001)))
        .heartbeat(Duration::from_secs_f64(cli.heartbeat.max(0.01)))
}

pub async fn run(cli: Cli) -> ExitCode {
    let mut rest = cli.rest.clone().into_iter();
    let endpoints: Vec<String> = if cli.connect.is_empty() {
        match rest.next() {
            Some(a) => vec![a],
            None => {
                eprintln!("zerorpc: give an ADDRESS (or --connect ADDR); see zerorpc --help");
                return ExitCode::from(2);
            }
        }
    } else {
        cli.connect.clone()
    };
    if !cli.bind.is_empty() {
        eprintln!("zerorpc: --bind is for --server mode (a client that binds is not supported)");
        return ExitCode::from(2);
    }
    let method = rest.next();
    let raw_args: Vec<String> = rest.collect();
    let shown = endpoints.join(", ");
    eprintln!("connecting to \"{shown}\"");
    let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let recorder = match crate::recorder(&cli).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if cli.authorize.is_some() {
        eprintln!("zerorpc: --authorize is for --server mode");
        return ExitCode::from(2);
    }
    let socket = match crate::security::socket_options(&cli, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerorpc: {e}");
            return ExitCode::from(2);
        }
    };
    let resolver = match crate::naming::resolver(&cli) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zerorpc: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ClientOptions {
        recorder: recorder.clone(),
        record_payloads: cli.record_payloads,
        socket,
        resolver,
        ..options(&cli)
    };
    let client = match Client::connect_with(&eps, opts).await {
        Ok(c) => c,
        Err(e) => return report(&e, &shown, method.as_deref().unwrap_or("connect")),
    };
    let code = run_with(&cli, &client, &shown, method, raw_args).await;
    if let Some(r) = recorder {
        // (the records of this call leave before the process does)
        if !r.flush(Duration::from_secs(2)).await {
            eprintln!("zerorpc: some call records could not be sent to the collector");
        }
    }
    code
}

async fn run_with(
    cli: &Cli,
    client: &Client,
    shown: &str,
    method: Option<String>,
    raw_args: Vec<String>,
) -> ExitCode {
    match method {
        None => list(client, shown, cli.inspect, None).await,
        Some(m) if cli.inspect => list(client, shown, true, Some(&m)).await,
        Some(m) => {
            let mut args = Vec::with_capacity(raw_args.len());
            let mut named = std::collections::BTreeMap::new();
            for a in &raw_args {
                let (name, text) = match (cli.named, a.split_once('=')) {
                    (false, _) => (None, a.as_str()),
                    (true, Some((n, t))) if !n.is_empty() => (Some(n), t),
                    (true, _) => {
                        eprintln!("zerorpc: with --named, arguments are NAME=VALUE: {a:?}");
                        return ExitCode::from(2);
                    }
                };
                let v = if cli.json {
                    match parse_json_arg(text) {
                        Ok(v) => v,
                        Err(e) => {
                            eprintln!("zerorpc: {e}");
                            return ExitCode::from(2);
                        }
                    }
                } else {
                    parse_arg(text)
                };
                match name {
                    Some(n) => {
                        if named.insert(n.to_owned(), v).is_some() {
                            eprintln!("zerorpc: argument {n} given twice");
                            return ExitCode::from(2);
                        }
                    }
                    None => args.push(v),
                }
            }
            if cli.named {
                // (placed by the service's introspection; the wire is
                // unchanged)
                match client.place_named(&m, &named).await {
                    Ok(a) => args = a,
                    Err(e) => return report(&e, shown, &m),
                }
            }
            call(
                client,
                shown,
                &m,
                args,
                cli.print_json,
                &mut std::io::stdout(),
            )
            .await
        }
    }
}

/// Calls and prints each result (a stream item by item, as they arrive);
/// a failure is reported on stderr and becomes the exit code.
pub async fn call(
    client: &Client,
    endpoint: &str,
    method: &str,
    args: Vec<Value>,
    json: bool,
    out: &mut impl std::io::Write,
) -> ExitCode {
    match call_and_print(client, method, args, json, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, endpoint, method),
    }
}

async fn call_and_print(
    client: &Client,
    method: &str,
    args: Vec<Value>,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), Error> {
    let mut stream = Box::pin(client.call_stream(method, args).await?);
    while let Some(item) = stream.next().await {
        let v = item?;
        let line = if json {
            to_json(&v).to_string()
        } else {
            repr(&v)
        };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return Ok(()); // stdout closed (e.g. `| head`)
        }
    }
    Ok(())
}

fn exit_number(e: &Error) -> u8 {
    match e {
        Error::Remote(_) => 1,
        Error::Timeout(_) | Error::DeadlineExceeded(_) => 3,
        Error::NamedArguments(_) => 2,
        Error::LostRemote(_) | Error::Disconnected => 4,
        Error::Authentication { .. } => 6,
        _ => 5,
    }
}

fn str_field<'a>(m: &'a [(Value, Value)], k: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(kk, _)| kk.as_str() == Some(k))
        .map(|(_, v)| v)
}

/// The service name and methods, from `_zerorpc_inspect` or, when that
/// fails (zerorpc-python 0.6.3 on Python >= 3.11, Node), from
/// `_zerorpc_name` / `_zerorpc_list` / `_zerorpc_help` / `_zerorpc_args`.
async fn describe(client: &Client) -> Result<(String, Vec<MethodDoc>), Error> {
    if let Ok(Value::Map(m)) = client.call("_zerorpc_inspect", vec![]).await {
        let name = str_field(&m, "name")
            .and_then(Value::as_str)
            .unwrap_or("N/A")
            .to_owned();
        let methods = match str_field(&m, "methods") {
            Some(Value::Map(ms)) => ms
                .iter()
                .map(|(k, v)| {
                    let info = v.as_map().map(Vec::as_slice).unwrap_or(&[]);
                    MethodDoc {
                        name: k.as_str().unwrap_or("?").to_owned(),
                        doc: str_field(info, "doc")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        args: str_field(info, "args").and_then(Value::as_array).map(|a| {
                            a.iter()
                                .filter_map(Value::as_map)
                                .map(|arg| {
                                    (
                                        str_field(arg, "name")
                                            .and_then(Value::as_str)
                                            .unwrap_or("?")
                                            .to_owned(),
                                        str_field(arg, "default").cloned(),
                                    )
                                })
                                .collect()
                        }),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        return Ok((name, methods));
    }
    let name = match client.call("_zerorpc_name", vec![]).await {
        Ok(Value::String(s)) => s.into_str().unwrap_or_else(|| "N/A".into()),
        _ => "N/A".into(),
    };
    let list = client.call("_zerorpc_list", vec![]).await?;
    let mut methods = Vec::new();
    for m in list.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some(m) = m.as_str() else { continue };
        let doc = client
            .call("_zerorpc_help", vec![Value::from(m)])
            .await
            .ok()
            .and_then(|d| d.as_str().map(str::to_owned));
        let args = match client.call("_zerorpc_args", vec![Value::from(m)]).await {
            Ok(Value::Array(spec)) => spec.first().and_then(Value::as_array).map(|names| {
                let defaults = spec
                    .get(3)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let first_default = names.len().saturating_sub(defaults.len());
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let d = i
                            .checked_sub(first_default)
                            .and_then(|j| defaults.get(j).cloned());
                        (n.as_str().unwrap_or("?").to_owned(), d)
                    })
                    .collect()
            }),
            _ => None,
        };
        methods.push(MethodDoc {
            name: m.to_owned(),
            args,
            doc,
        });
    }
    Ok((name, methods))
}

fn signature(m: &MethodDoc) -> String {
    match &m.args {
        Some(args) if !args.is_empty() => {
            let parts: Vec<String> = args
                .iter()
                .map(|(n, d)| match d {
                    Some(Value::Nil) | None => n.clone(),
                    Some(v) => format!("{n}={}", repr(v)),
                })
                .collect();
            format!("{}({})", m.name, parts.join(", "))
        }
        Some(_) => format!("{}()", m.name),
        None => format!("{}(??)", m.name),
    }
}

/// Lists the service like Python's CLI (`[name]`, then `method  first doc
/// line`), or with `-?` its signatures and documentation.
pub async fn list(
    client: &Client,
    endpoint: &str,
    inspect: bool,
    method: Option<&str>,
) -> ExitCode {
    let (name, methods) = match describe(client).await {
        Ok(d) => d,
        Err(e) => return report(&e, endpoint, "_zerorpc_list"),
    };
    println!("[{name}]");
    if let Some(wanted) = method {
        match methods.iter().find(|m| m.name == wanted) {
            Some(m) => match &m.doc {
                Some(doc) if !doc.trim().is_empty() => {
                    println!("{}\n\n{}\n", signature(m), doc.trim_end())
                }
                _ => println!("{}\n\nNo documentation for \"{wanted}\".", signature(m)),
            },
            None => {
                eprintln!("zerorpc: {name} has no method {wanted:?}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let width = methods.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for m in &methods {
        if inspect {
            println!("{}", signature(m));
        } else {
            let first = m
                .doc
                .as_deref()
                .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("<undocumented>");
            println!("{:<width$} {first}", m.name);
        }
    }
    ExitCode::SUCCESS
}

/// `zerorpc demo`: serves the demo service and drives it as a user would.
pub async fn demo() -> ExitCode {
    let server = std::sync::Arc::new(zerorpc::Server::new(zerorpc::demo::Demo));
    let ep = match server.bind("tcp://127.0.0.1:0").await {
        Ok(ep) => ep.to_string(),
        Err(e) => {
            eprintln!("zerorpc: cannot bind: {e}");
            return ExitCode::from(5);
        }
    };
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    println!("# serving the demo service: zerorpc --server --bind {ep} demo\n");
    let client = match Client::connect(&ep).await {
        Ok(c) => c,
        Err(e) => return report(&e, &ep, "connect"),
    };
    println!("$ zerorpc {ep}");
    list(&client, &ep, false, None).await;
    println!("\n$ zerorpc -? {ep} add");
    list(&client, &ep, true, Some("add")).await;
    let mut out = std::io::stdout();
    for (m, args) in [
        ("add", vec!["2", "40"]),
        ("echo", vec!["{'k': [1, 2.5, None, True]}"]),
        ("range", vec!["5"]),
        ("fail", vec!["'something broke'"]),
    ] {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains([' ', '\'', '{', '[']) {
                    format!("\"{a}\"")
                } else {
                    a.to_string()
                }
            })
            .collect();
        println!("\n$ zerorpc {ep} {m} {}", shown.join(" "));
        let args = args.iter().map(|a| parse_arg(a)).collect();
        if let Err(e) = call_and_print(&client, m, args, false, &mut out).await {
            // What the command prints on stderr, shown inline here.
            if let Error::Remote(r) = &e {
                println!(
                    "Remote traceback:\n{}\n{}: {}",
                    r.traceback.trim_end(),
                    r.name,
                    r.message
                );
            } else {
                println!("{e}");
            }
            println!("(exit code {})", exit_number(&e));
        }
    }
    println!("\n$ zerorpc -pj {ep} range 3");
    call(&client, &ep, "range", vec![Value::from(3)], true, &mut out).await;
    server.shutdown_gracefully(Duration::from_secs(1)).await;
    ExitCode::SUCCESS
}
