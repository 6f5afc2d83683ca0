// CURVE: an encrypted server that accepts only the client keys it knows,
// per-user authorization rules, and a client with its own keys. In one
// program: `cargo run -p zerorpc --example curve`.
use std::sync::Arc;

use zerorpc::auth::Authorization;
use zerorpc::zmtp::curve::{load_public_key, AllowList, CurveKeyPair};
use zerorpc::zmtp::{Security, SocketOptions};
use zerorpc::{Client, ClientOptions, Error, Server, ServerOptions};

pub struct Vault;

#[zerorpc::service]
impl Vault {
    /// Who is calling: the name the server's allow-list gives their key.
    pub fn whoami(&self) -> String {
        zerorpc::auth::current_user()
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Wipe everything.
    pub fn wipe(&self) -> bool {
        true
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Key files, as `zerorpc keygen NAME` writes them (pyzmq's format):
    // NAME.key (public) and NAME.key_secret (private).
    let dir = std::env::temp_dir().join(format!("zerorpc-curve-{}", std::process::id()));
    CurveKeyPair::generate().save(&dir, "server")?;
    CurveKeyPair::generate().save(&dir.join("clients"), "alice")?;
    std::fs::write(
        dir.join("rules.yml"),
        "rules:\n  - user: alice\n    allow: [\"whoami\", \"_zerorpc_*\"]\n",
    )?;

    // The server: its key pair, the client keys it accepts (every
    // clients/NAME.key, known as NAME), and who may call what.
    let security = Security::curve_server(
        CurveKeyPair::load(&dir.join("server.key_secret"))?,
        AllowList::from_dir(&dir.join("clients"))?,
    );
    let server = Arc::new(Server::with_options(
        Vault,
        ServerOptions {
            socket: SocketOptions {
                security,
                ..Default::default()
            },
            authorize: Some(Arc::new(Authorization::load(dir.join("rules.yml"))?)),
            ..Default::default()
        },
    ));
    let endpoint = server.bind("tcp://127.0.0.1:0").await?.to_string();
    let running = server.clone();
    tokio::spawn(async move { running.run().await });

    // The client: its own key pair and the server's public key.
    let security = Security::curve_client(
        CurveKeyPair::load(&dir.join("clients/alice.key_secret"))?,
        load_public_key(&dir.join("server.key"))?,
    );
    let options = ClientOptions {
        socket: SocketOptions {
            security,
            ..Default::default()
        },
        ..Default::default()
    };
    let vault = VaultClient::new(Client::connect_with(&[&endpoint], options).await?);
    assert_eq!(vault.whoami().await?, "alice");
    match vault.wipe().await {
        Err(Error::Remote(e)) => assert_eq!(e.name, "PermissionDenied"),
        other => panic!("alice may not wipe: {other:?}"),
    }
    println!("alice is known by her key, and may call whoami but not wipe");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
