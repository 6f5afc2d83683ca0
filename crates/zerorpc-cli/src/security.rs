//! `zerorpc keygen`, and the CURVE and authorization flags of client and
//! server modes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use zerorpc::auth::Authorization;
use zerorpc::zmtp::curve::{load_public_key, z85_key, AllowAny, AllowList, CurveKeyPair};
use zerorpc::zmtp::{Security, SocketOptions};

use crate::Cli;

/// Write a CURVE key pair: NAME.key (public, to give to peers) and
/// NAME.key_secret (keep it private), in pyzmq's certificate format
#[derive(Parser, Debug)]
#[command(name = "zerorpc keygen")]
pub struct KeygenArgs {
    /// The name of the files (and, on a server's allow-list, of the user)
    pub name: String,
    /// Where to write them
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> ExitCode {
    let keys = CurveKeyPair::generate();
    match keys.save(&args.dir, &args.name) {
        Ok((public, secret)) => {
            eprintln!("wrote {} and {}", public.display(), secret.display());
            println!("{}", keys.public_z85());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zerorpc keygen: {e}");
            ExitCode::from(5)
        }
    }
}

/// A public key given as 40 Z85 characters or as a certificate file.
fn public_key(text: &str) -> Result<[u8; 32], String> {
    if text.len() == 40 && !Path::new(text).exists() {
        return z85_key(text);
    }
    load_public_key(Path::new(text)).map_err(|e| e.to_string())
}

/// The transport settings the CURVE flags ask for (`server`: server mode).
pub fn socket_options(cli: &Cli, server: bool) -> Result<SocketOptions, String> {
    let keys = match &cli.curve_keys {
        Some(path) => Some(CurveKeyPair::load(Path::new(path)).map_err(|e| e.to_string())?),
        None => None,
    };
    let security = if server {
        if cli.curve_server_key.is_some() {
            return Err("--curve-server-key is for clients (a server uses --curve-keys)".into());
        }
        match (keys, &cli.curve_allow) {
            (None, None) => Security::Null,
            (None, Some(_)) => return Err("--curve-allow needs --curve-keys".into()),
            (Some(keys), Some(dir)) => {
                let allow = AllowList::from_dir(Path::new(dir)).map_err(|e| e.to_string())?;
                Security::curve_server(keys, allow)
            }
            (Some(keys), None) => {
                eprintln!(
                    "zerorpc: CURVE without --curve-allow: traffic is encrypted, but any client key is accepted"
                );
                Security::curve_server(keys, AllowAny)
            }
        }
    } else {
        if cli.curve_allow.is_some() {
            return Err("--curve-allow is for servers".into());
        }
        match (&cli.curve_server_key, keys) {
            (None, None) => Security::Null,
            (None, Some(_)) => {
                return Err("a CURVE client needs the server's key: --curve-server-key".into())
            }
            (Some(server_key), keys) => {
                // (without keys of its own, a client makes throwaway ones)
                let keys = keys.unwrap_or_else(CurveKeyPair::generate);
                Security::curve_client(keys, public_key(server_key)?)
            }
        }
    };
    Ok(SocketOptions {
        security,
        ..Default::default()
    })
}

/// The `--authorize` rules (YAML), if given.
pub fn authorization(cli: &Cli) -> Result<Option<Arc<Authorization>>, String> {
    let Some(path) = &cli.authorize else {
        return Ok(None);
    };
    let rules = Authorization::load(path).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(rules)))
}
