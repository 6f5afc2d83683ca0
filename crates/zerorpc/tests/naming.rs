//! `zerorpc://SERVICE` addresses: a YAML directory, DNS SRV + TXT from a
//! real dnsmasq (installed from apt when missing), and the registry with
//! TTLs and heartbeats (a client follows its service to the live server).

use zerorpc_testkit as common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::demo::demo_service;
use zerorpc::naming::{register_with, Directory, Dns, Registry, RegistryLimits, Resolver};
use zerorpc::{ChannelConfig, Client, ClientOptions, Error, RetryPolicy, Server, Value};

async fn server_on(addr: &str) -> (Arc<Server>, String) {
    let s = Arc::new(Server::new(demo_service()));
    let ep = s.bind(addr).await.unwrap().to_string();
    let r = s.clone();
    tokio::spawn(async move { r.run().await });
    (s, ep)
}

fn with_resolver(r: Resolver) -> ClientOptions {
    ClientOptions {
        resolver: Some(Arc::new(r)),
        channel: ChannelConfig {
            heartbeat: Duration::from_millis(300),
            first_reply_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
        re_resolve: Some(Duration::from_millis(300)),
        ..Default::default()
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zerorpc-naming-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_directory_resolves_and_calls() {
    let (_s, ep) = server_on("tcp://127.0.0.1:0").await;
    let path = temp("services.yml");
    std::fs::write(
        &path,
        format!(
            "demo: {{endpoints: [{ep}], type: ROUTER}}\nshort: {ep}\n\
             mixed: {{endpoints: ['tcp://*:1', {ep}]}}\nunusable: 'tcp://*:1'\n"
        ),
    )
    .unwrap();
    let r = Resolver::new().directory(Directory::load(&path).unwrap());
    let got = r.resolve("zerorpc://demo").await.unwrap();
    assert_eq!(got.endpoints, std::slice::from_ref(&ep));
    assert_eq!(got.socket_type.as_deref(), Some("ROUTER"));
    match r.resolve("nobody").await {
        Err(Error::Naming(m)) => assert!(m.contains("\"nobody\""), "{m}"),
        other => panic!("{other:?}"),
    }
    let opts = with_resolver(r);
    // (an endpoint nobody can connect to is skipped)
    for name in ["zerorpc://demo", "zerorpc://short", "zerorpc://mixed"] {
        let c = Client::connect_with(&[name], opts.clone()).await.unwrap();
        let v = within("a call by name", c.call("add", vec![2.into(), 40.into()]))
            .await
            .unwrap();
        assert_eq!(v, Value::from(42));
        assert_eq!(c.endpoints(), std::slice::from_ref(&ep));
    }
    // unknown names and missing resolvers are clear errors, not panics
    match Client::connect_with(&["zerorpc://nobody"], opts.clone()).await {
        Err(Error::Naming(m)) => assert!(m.contains("nobody"), "{m}"),
        other => panic!("{other:?}"),
    }
    match Client::connect_with(&["zerorpc://unusable"], opts.clone()).await {
        Err(Error::Naming(m)) => assert!(m.contains("none of the resolved"), "{m}"),
        other => panic!("{other:?}"),
    }
    match Client::connect_with(&["zerorpc://demo", &ep], opts).await {
        Err(Error::Naming(m)) => assert!(m.contains("only endpoint"), "{m}"),
        other => panic!("{other:?}"),
    }
    // bad files
    let bad = temp("bad.yml");
    std::fs::write(&bad, "demo: {endpoints: [tcp://x:1], typo: ROUTER}\n").unwrap();
    match Directory::load(&bad) {
        Err(Error::Naming(m)) => assert!(m.contains("unknown key typo"), "{m}"),
        other => panic!("{other:?}"),
    }
    match Directory::load(temp("missing.yml")) {
        Err(Error::Naming(m)) => assert!(m.contains("cannot read"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The dnsmasq binary, installed from apt if missing; `None` (after a loud
/// message) only when apt cannot install it.
fn dnsmasq() -> Option<String> {
    apt_tool("dnsmasq", "dnsmasq-base", "the DNS SRV naming test")
}

/// A dnsmasq serving the test zone; killed on drop.
struct DnsMasq(std::process::Child);

impl Drop for DnsMasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_srv_and_txt_from_dnsmasq() {
    let Some(bin) = dnsmasq() else { return };
    let (_s, ep) = server_on("tcp://127.0.0.1:0").await;
    let srv_port: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
    let dns_port = free_port();
    let name = "_demo._zerorpc._tcp.test.local";
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--user=root",
        "--group=root",
        &format!("--port={dns_port}"),
        // the live server first (priority 0); a backup at priority 10
        &format!("--srv-host={name},127.0.0.1,{srv_port},0,5"),
        &format!("--srv-host={name},backup.test.local,4999,10,0"),
        &format!("--txt-record={name},type=ROUTER"),
        "--address=/backup.test.local/127.0.0.1",
        // (authoritative for the zone: unknown names get NXDOMAIN)
        "--local=/test.local/",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    let _dns = DnsMasq(cmd.spawn().expect("start dnsmasq"));
    let ns = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let dns = Dns::with_nameserver("test.local", ns).unwrap();
    // dnsmasq needs a moment to listen: poll
    let found = within("dnsmasq answers", async {
        loop {
            match dns.lookup("demo").await {
                Ok(Some(r)) => return r,
                other => {
                    eprintln!("waiting for dnsmasq: {other:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
            }
        }
    })
    .await;
    assert_eq!(
        found.endpoints,
        [
            format!("tcp://127.0.0.1:{srv_port}"),
            "tcp://backup.test.local:4999".to_owned()
        ]
    );
    assert_eq!(found.socket_type.as_deref(), Some("ROUTER"));
    assert_eq!(dns.lookup("nobody").await.unwrap(), None);

    // a real call through zerorpc://demo; the unknown name falls through
    // the chain (DNS, then the directory)
    let dir = Directory::parse(&format!("other: {ep}\n")).unwrap();
    let r = Resolver::new().dns(dns).directory(dir);
    let c = Client::connect_with(&["zerorpc://demo"], with_resolver(r))
        .await
        .unwrap();
    // (the backup endpoint does not exist: calls go to the healthy one)
    for i in 0..3 {
        let v = within("a call resolved by DNS", c.call("echo", vec![i.into()]))
            .await
            .unwrap();
        assert_eq!(v, Value::from(i));
    }
    let dns = Dns::with_nameserver("test.local", ns).unwrap();
    let dir = Directory::parse(&format!("other: {ep}\n")).unwrap();
    let r = Resolver::new().dns(dns).directory(dir);
    assert_eq!(r.resolve("other").await.unwrap().endpoints, [ep]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_clients_follow_the_live_server() {
    let (_registry, reg) = {
        let s = Arc::new(Server::new(Registry::new()));
        let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let r = s.clone();
        tokio::spawn(async move { r.run().await });
        (s, ep)
    };
    let ttl = Duration::from_secs(1);
    let (a, ep_a) = server_on("tcp://127.0.0.1:0").await;
    let (_b, ep_b) = server_on("tcp://127.0.0.1:0").await;
    let reg_a = register_with(&reg, "svc", &ep_a, ttl).await.unwrap();
    let reg_b = register_with(&reg, "svc", &ep_b, ttl).await.unwrap();
    let resolver = Resolver::new().registry(&reg).unwrap();
    let mut both = resolver.resolve("zerorpc://svc").await.unwrap().endpoints;
    both.sort();
    let mut want = vec![ep_a.clone(), ep_b.clone()];
    want.sort();
    assert_eq!(both, want);

    // the registry's own methods
    let rc = Client::connect(&reg).await.unwrap();
    let listed = rc.call("list", vec![]).await.unwrap();
    assert!(listed.to_string().contains(&ep_a), "{listed}");
    match rc
        .call("register", vec!["svc".into(), "nope".into(), 1.into()])
        .await
    {
        Err(Error::Remote(e)) => assert!(e.message.contains("not an endpoint"), "{e}"),
        other => panic!("{other:?}"),
    }

    // (a call that picked a's connection as it died is lost: echo is
    // idempotent, so it is retried on b)
    let opts = ClientOptions {
        retry: Some(RetryPolicy::idempotent(["echo"])),
        ..with_resolver(resolver)
    };
    let c = Client::connect_with(&["zerorpc://svc"], opts)
        .await
        .unwrap();
    for i in 0..4 {
        let v = within("calls on both", c.call("echo", vec![i.into()]))
            .await
            .unwrap();
        assert_eq!(v, Value::from(i));
    }
    // a crashes: no more heartbeats, no unregister
    reg_a.abandon();
    a.shutdown();
    drop(a);
    // calls keep succeeding all along (on b)
    within("a dropped after its TTL, the client follows", async {
        loop {
            let v = c.call("echo", vec!["x".into()]).await.unwrap();
            assert_eq!(v, Value::from("x"));
            let eps = rc.call("resolve", vec!["svc".into()]).await.unwrap();
            if eps == Value::Array(vec![ep_b.as_str().into()]) && c.endpoints() == [ep_b.clone()] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // b's heartbeats kept it registered well past its 1 s TTL
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rc.call("resolve", vec!["svc".into()]).await.unwrap(),
        Value::Array(vec![ep_b.as_str().into()])
    );

    // a new server registers and b goes away politely: the client moves on
    let (_c2, ep_c) = server_on("tcp://127.0.0.1:0").await;
    let _reg_c = register_with(&reg, "svc", &ep_c, ttl).await.unwrap();
    reg_b.unregister().await.unwrap();
    within("the client moves to c", async {
        while c.endpoints() != [ep_c.clone()] {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for i in 0..3 {
        let v = within("calls on c", c.call("echo", vec![i.into()]))
            .await
            .unwrap();
        assert_eq!(v, Value::from(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_registry_answers_registry_full_and_counts_it() {
    let s = Arc::new(Server::new(Registry::with_limits(RegistryLimits {
        max_per_service: 3,
        max_total: 5,
    })));
    let reg = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let r = s.clone();
    tokio::spawn(async move { r.run().await });
    let rc = Client::connect(&reg).await.unwrap();
    let register = |service: &str, port: u32| {
        let args = vec![
            service.into(),
            format!("tcp://10.0.0.1:{port}").into(),
            60.into(),
        ];
        let rc = rc.clone();
        async move { rc.call("register", args).await }
    };
    // A hostile client registering without end: one service, then many.
    let (mut ok, mut full) = (0, 0);
    for port in 0..100 {
        match register("flood", port).await {
            Ok(_) => ok += 1,
            Err(Error::Remote(e)) if e.name == "RegistryFull" => {
                assert!(e.message.contains("per service"), "{e}");
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, full), (3, 97));
    for i in 0..100 {
        match register(&format!("s{i}"), 1).await {
            Ok(_) => ok += 1,
            Err(Error::Remote(e)) if e.name == "RegistryFull" => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, full), (5, 195));
    // Refreshing a held entry still works; the table holds 5 entries.
    assert_eq!(register("flood", 0).await.unwrap(), Value::Boolean(false));
    let listed = rc.call("list", vec![]).await.unwrap();
    let held: usize = match &listed {
        Value::Map(m) => m
            .iter()
            .map(|(_, v)| v.as_array().map_or(0, Vec::len))
            .sum(),
        other => panic!("{other}"),
    };
    assert_eq!(held, 5);
    let stats = rc.call("stats", vec![]).await.unwrap().to_string();
    assert!(stats.contains("\"refused\": 195"), "{stats}");
    assert!(stats.contains("\"entries\": 5"), "{stats}");
}
