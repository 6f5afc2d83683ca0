//! [`Directory`]: services listed in a YAML file.

use std::collections::BTreeMap;
use std::path::Path;

use super::{naming, valid_service, Resolved};
use crate::error::Error;

/// A YAML directory of services.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    services: BTreeMap<String, Resolved>,
}

impl Directory {
    /// Reads a directory file.
    pub fn load(path: impl AsRef<Path>) -> Result<Directory, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| naming(format!("cannot read the directory {}: {e}", path.display())))?;
        Directory::parse(&text).map_err(|e| match e {
            Error::Naming(m) => naming(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a directory's YAML text.
    pub fn parse(text: &str) -> Result<Directory, Error> {
        let doc: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| naming(format!("invalid YAML: {e}")))?;
        let map = match doc {
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => serde_norway::Mapping::new(),
            _ => return Err(naming("a directory is a map of SERVICE: entries")),
        };
        let mut services = BTreeMap::new();
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                return Err(naming(format!("service names are strings, not {k:?}")));
            };
            valid_service(name)?;
            let entry = match v {
                serde_norway::Value::String(ep) => Resolved {
                    endpoints: vec![ep],
                    socket_type: None,
                },
                serde_norway::Value::Mapping(m) => {
                    let mut r = Resolved {
                        endpoints: Vec::new(),
                        socket_type: None,
                    };
                    for (key, val) in m {
                        match key.as_str() {
                            Some("endpoints") => r.endpoints = endpoint_list(name, val)?,
                            Some("type") => match val {
                                serde_norway::Value::String(t) => r.socket_type = Some(t),
                                _ => return Err(naming(format!("{name}: type is a string"))),
                            },
                            _ => {
                                return Err(naming(format!(
                                    "{name}: unknown key {} (known: endpoints, type)",
                                    serde_norway::to_string(&key).unwrap_or_default().trim_end()
                                )))
                            }
                        }
                    }
                    r
                }
                _ => {
                    return Err(naming(format!(
                        "{name}: expected an endpoint or {{endpoints: [...], type: ...}}"
                    )))
                }
            };
            if entry.endpoints.is_empty() {
                return Err(naming(format!("{name}: no endpoints")));
            }
            if let Some(bad) = entry.endpoints.iter().find(|e| !e.contains("://")) {
                return Err(naming(format!("{name}: {bad:?} is not an endpoint")));
            }
            services.insert(name.to_owned(), entry);
        }
        Ok(Directory { services })
    }

    /// The entry for `service`.
    pub fn get(&self, service: &str) -> Option<&Resolved> {
        self.services.get(service)
    }
}

fn endpoint_list(name: &str, v: serde_norway::Value) -> Result<Vec<String>, Error> {
    match v {
        serde_norway::Value::String(s) => Ok(vec![s]),
        serde_norway::Value::Sequence(items) => items
            .into_iter()
            .map(|i| match i {
                serde_norway::Value::String(s) => Ok(s),
                _ => Err(naming(format!("{name}: endpoints are strings"))),
            })
            .collect(),
        _ => Err(naming(format!("{name}: endpoints is a list of strings"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_parses_both_forms_and_refuses_unknown_keys() {
        let d = Directory::parse(
            "a: tcp://127.0.0.1:1\nb: {endpoints: [tcp://h:2, tcp://h:3], type: ROUTER}\nc:\n  endpoints: tcp://x:4\n",
        )
        .unwrap();
        assert_eq!(d.get("a").unwrap().endpoints, ["tcp://127.0.0.1:1"]);
        let b = d.get("b").unwrap();
        assert_eq!(b.endpoints, ["tcp://h:2", "tcp://h:3"]);
        assert_eq!(b.socket_type.as_deref(), Some("ROUTER"));
        assert_eq!(d.get("c").unwrap().endpoints, ["tcp://x:4"]);
        for (bad, says) in [
            ("a: {endpoint: tcp://x:1}", "unknown key endpoint"),
            ("a: {endpoints: []}", "no endpoints"),
            ("a: [1, 2]", "expected an endpoint"),
            ("a: {endpoints: [1]}", "endpoints are strings"),
            ("a: not-an-endpoint", "is not an endpoint"),
            ("- a\n- b", "a map of SERVICE"),
            ("a: {", "invalid YAML"),
            ("'bad name': tcp://x:1", "invalid service name"),
        ] {
            match Directory::parse(bad) {
                Err(Error::Naming(m)) => assert!(m.contains(says), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
