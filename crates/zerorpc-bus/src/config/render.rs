//! Printing the effective configuration as TOML, each value with its origin.

use std::path::Path;

use super::{BusConfig, Provenance, Source, KEYS};

impl BusConfig {
    /// The effective configuration as TOML lines, each value followed by its
    /// origin as a comment (`ingest = "tcp://127.0.0.1:9941"  # default`).
    /// Unset optional keys are comment lines. The output is valid TOML and
    /// loads back to the same configuration.
    pub fn render(&self, prov: &Provenance) -> String {
        let mut out = String::new();
        match &prov.file {
            Some((path, by)) => out.push_str(&format!(
                "# zerorpc-bus configuration; file {} (named by {by})\n",
                path.display()
            )),
            None => out.push_str("# zerorpc-bus configuration; no configuration file\n"),
        }
        for &key in KEYS {
            let origin = prov.source(key).cloned().unwrap_or(Source::Default);
            match self.toml_value(key) {
                Some(value) => out.push_str(&format!("{key} = {value}  # {origin}\n")),
                None => out.push_str(&format!("# {key} is not set  # {origin}\n")),
            }
        }
        out
    }

    /// One key's value as TOML text; `None` for an unset optional key.
    pub(super) fn toml_value(&self, key: &str) -> Option<String> {
        let s = |v: &str| Some(toml::Value::String(v.to_owned()).to_string());
        let p = |v: &Path| s(&v.to_string_lossy());
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().filter_map(|i| s(i)).collect();
            format!("[{}]", quoted.join(", "))
        };
        match key {
            "ingest" => s(&self.ingest),
            "publish" => s(&self.publish),
            "replay" => s(&self.replay),
            "store" => p(&self.store),
            "retention" => s(&self.retention.to_string()),
            "max_message_bytes" => Some(self.max_message_bytes.to_string()),
            "topic_prefix" => s(&self.topic_prefix),
            "environment" => s(&self.environment),
            "modname" => self.modname.as_deref().and_then(s),
            "username" => self.username.as_deref().and_then(s),
            "sign_cert" => self.sign_cert.as_deref().and_then(p),
            "sign_key" => self.sign_key.as_deref().and_then(p),
            "validate" => Some(self.validate.to_string()),
            "ca_cert" => self.ca_cert.as_deref().and_then(p),
            "crl" => self.crl.as_deref().and_then(p),
            "routing_policy" => {
                let entries: Vec<String> = self
                    .routing_policy
                    .iter()
                    .filter_map(|(topic, names)| Some(format!("{} = {}", s(topic)?, list(names))))
                    .collect();
                if entries.is_empty() {
                    Some("{}".to_owned())
                } else {
                    Some(format!("{{ {} }}", entries.join(", ")))
                }
            }
            "routing_nitpicky" => Some(self.routing_nitpicky.to_string()),
            "schemas" => self.schemas.as_deref().and_then(p),
            "endpoints" => Some(list(&self.endpoints)),
            "transports" => {
                let names: Vec<String> = self
                    .transports
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect();
                Some(list(&names))
            }
            "amqp_url" => s(&self.amqp_url),
            "amqp_exchange" => s(&self.amqp_exchange),
            "amqp_queue" => self.amqp_queue.as_deref().and_then(s),
            "amqp_alternate_exchange" => self.amqp_alternate_exchange.as_deref().and_then(s),
            "amqp_stream_queue" => self.amqp_stream_queue.as_deref().and_then(s),
            "nats_url" => s(&self.nats_url),
            "nats_durable" => self.nats_durable.as_deref().and_then(s),
            "nats_stream_depth" => Some(self.nats_stream_depth.to_string()),
            "prefetch" => Some(self.prefetch.to_string()),
            _ => None,
        }
    }
}
