//! An event bus wire-compatible with [fedmsg](https://fedmsg.readthedocs.io),
//! built on our ZeroMQ stack.
//!
//! What this crate owns:
//! * [`json`]: fedmsg's canonical JSON (Python's `json.dumps` with sorted
//!   keys, compact separators and ASCII escapes), byte for byte;
//! * [`message`]: the fedmsg envelope (`topic`, `msg`, `timestamp`,
//!   `msg_id`, `i`, `username`, and `crypto`/`signature`/`certificate`
//!   when signed) and fedmsg's topic rules;
//! * [`crypto`]: X.509 signing and validation with fedmsg's rules (CA, CRL,
//!   routing policy);
//! * [`daemon`]: the bus daemon: durable, confirmed ingest, fan-out on a
//!   fedmsg PUB endpoint, fedmsg's replay queries; [`protocol`]: what our
//!   clients say to it;
//! * [`publisher`]: publishing with confirmations, batching and signing;
//!   [`subscriber`]: following the daemon (gapless, resumable) or any
//!   fedmsg endpoint; [`consumer`]: hosted consumers (ack, retry, drop,
//!   halt);
//! * [`store`]: the daemon's durable log; [`replay`]: fedmsg's replay
//!   queries answered from it; [`record`]: recordings (one message a line);
//! * [`schema`]: topic → JSON Schema registry, checked on publish and on
//!   consume, with human summaries; [`config`]: one optional TOML file plus
//!   environment overrides, with the origin of every value;
//! * [`transport`]: where messages go: the daemon, RabbitMQ
//!   (fedora-messaging's wire) and NATS JetStream, one or several at once;
//!   [`bridge`]: from one bus onto another without loops;
//! * [`glob`]: topic patterns.

pub mod bridge;
pub mod config;
pub mod consumer;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod glob;
pub mod json;
pub mod message;
pub mod protocol;
pub mod publisher;
pub mod record;
pub mod replay;
pub mod schema;
pub mod store;
pub mod subscriber;
pub mod transport;

pub use error::Error;
