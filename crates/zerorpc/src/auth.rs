//! Who is calling, and what they may call.
//!
//! With CURVE (see [`zmtp::curve`] and [`crate::ServerOptions::socket`]),
//! each connection is authenticated: the server's authenticator names the
//! client's key (an [`AllowList`](zmtp::AllowList) of certificates names it
//! by the certificate's file name). That name is the call's user:
//! [`current_user`] inside a handler, [`CallContext::user_id`](crate::CallContext)
//! for dynamic services, and the `user` of the server's trace records.
//!
//! [`Authorization`] rules then say which users may call which methods
//! (glob patterns); a denied call gets `ERR PermissionDenied`.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

tokio::task_local! {
    static USER: Arc<str>;
}

/// The authenticated user of the call being served (inside a handler of a
/// server whose connections are authenticated), else `None`.
pub fn current_user() -> Option<Arc<str>> {
    USER.try_with(Arc::clone).ok()
}

/// Runs `f` as `user`'s call.
pub(crate) async fn as_user<F: std::future::Future>(user: Arc<str>, f: F) -> F::Output {
    USER.scope(user, f).await
}

/// The user name rules see for a connection that was not authenticated.
pub const ANONYMOUS: &str = "anonymous";

/// One rule: for the users matching `user`, the methods matching an
/// `allow` pattern are allowed, unless one matching a `deny` pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A glob over user ids (`*` any run, `?` one character).
    pub user: String,
    /// Globs over method names this rule allows.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Globs over method names this rule denies (deny wins).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Per-method authorization: a call is allowed when a rule matching its
/// user allows its method and no rule matching its user denies it;
/// anything else is denied. Introspection (`_zerorpc_*`) is a method like
/// any other: allow it where clients should see the service's methods.
///
/// As YAML (`zerorpc --server --authorize rules.yml`):
///
/// ```yaml
/// rules:
///   - user: alice
///     allow: ["*"]
///   - user: "*"
///     allow: ["_zerorpc_*", "get_*"]
///     deny: ["get_secret"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The rules, in any order.
    pub rules: Vec<Rule>,
}

/// Why [`Authorization::load`] or [`Authorization::from_yaml`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid rules (bad YAML, an unknown key, a missing
    /// `user`...).
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, or `authorization rules` for text.
        origin: String,
        /// What is wrong, with the line and column.
        message: String,
    },
}

impl Authorization {
    /// Rules from a list.
    pub fn new(rules: Vec<Rule>) -> Self {
        Authorization { rules }
    }

    /// Rules from a YAML file (the format above; what `zerorpc --server
    /// --authorize FILE` reads). Unknown keys are refused, so a typo does
    /// not silently drop a rule.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), zerorpc::auth::AuthorizationError> {
    /// let rules = zerorpc::auth::Authorization::load("rules.yml")?;
    /// let opts = zerorpc::ServerOptions {
    ///     authorize: Some(std::sync::Arc::new(rules)),
    ///     ..Default::default()
    /// };
    /// # let _ = opts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuthorizationError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthorizationError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, shown)
    }

    /// Rules from YAML text (the format above).
    pub fn from_yaml(text: &str) -> Result<Self, AuthorizationError> {
        Self::parse(text, "authorization rules".into())
    }

    fn parse(text: &str, origin: String) -> Result<Self, AuthorizationError> {
        serde_norway::from_str(text).map_err(|e| AuthorizationError::Invalid {
            origin,
            message: e.to_string(),
        })
    }

    /// Whether `user` (`None`: not authenticated, seen as `anonymous`) may
    /// call `method`.
    pub fn allows(&self, user: Option<&str>, method: &str) -> bool {
        let user = user.unwrap_or(ANONYMOUS);
        let mut allowed = false;
        for r in self.rules.iter().filter(|r| glob(&r.user, user)) {
            if r.deny.iter().any(|p| glob(p, method)) {
                return false;
            }
            allowed |= r.allow.iter().any(|p| glob(p, method));
        }
        allowed
    }
}

/// `*` matches any run of characters, `?` any one; the rest literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // (iterative, with one backtrack point: linear in practice, no
    // recursion to blow up on hostile patterns, and no allocation: topic
    // filters run it per message; `?` and a `*` growing by one take a
    // whole UTF-8 sequence, so it matches characters, not bytes)
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                ti += utf8_len(t[ti]);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + utf8_len(t[st]);
                    star = Some((sp, ti));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 sequence that starts with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "", true),
            ("*", "anything", true),
            ("get_*", "get_user", true),
            ("get_*", "set_user", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*_secret", "get_secret", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("", "x", false),
            ("a?c", "a\u{e9}c", true),
            ("a?c", "a\u{1F600}c", true),
            ("a*c", "a\u{e9}\u{e9}c", true),
            ("a??c", "a\u{e9}c", false),
        ] {
            assert_eq!(glob(p, t), m, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn deny_wins_and_nothing_is_allowed_by_default() {
        let a = Authorization::new(vec![
            Rule {
                user: "alice".into(),
                allow: vec!["*".into()],
                deny: vec![],
            },
            Rule {
                user: "*".into(),
                allow: vec!["get_*".into(), "_zerorpc_*".into()],
                deny: vec!["get_secret".into()],
            },
        ]);
        assert!(a.allows(Some("alice"), "delete_all"));
        assert!(!a.allows(Some("alice"), "get_secret"), "deny wins");
        assert!(a.allows(Some("bob"), "get_user"));
        assert!(!a.allows(Some("bob"), "delete_all"));
        assert!(a.allows(None, "_zerorpc_list"));
        assert!(!a.allows(None, "set_x"));
        assert!(!Authorization::default().allows(Some("alice"), "x"));
    }

    /// A scratch directory for one test, removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let d = std::env::temp_dir().join(format!("zerorpc-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn authorization_load_reads_a_yaml_rules_file() {
        let dir = Scratch::new("auth-load");
        let path = dir.0.join("rules.yml");
        std::fs::write(
            &path,
            "rules:\n  - user: alice\n    allow: [\"*\"]\n  - user: \"*\"\n    allow: [\"_zerorpc_*\", \"get_*\"]\n    deny: [\"get_secret\"]\n",
        )
        .unwrap();
        let a = Authorization::load(&path).unwrap();
        assert_eq!(a.rules.len(), 2);
        assert!(a.allows(Some("alice"), "delete_all"));
        assert!(a.allows(Some("bob"), "get_user"));
        assert!(!a.allows(Some("bob"), "get_secret"));
        assert_eq!(
            Authorization::from_yaml("rules: []\n").unwrap(),
            Authorization::default()
        );
    }

    #[test]
    fn authorization_load_names_the_file_and_the_fault() {
        let dir = Scratch::new("auth-load-bad");
        let missing = dir.0.join("missing.yml");
        let e = Authorization::load(&missing).unwrap_err();
        assert!(matches!(e, AuthorizationError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.yml"), "{e}");

        // a typo in a key is refused, not ignored
        let typo = dir.0.join("typo.yml");
        std::fs::write(&typo, "rules:\n  - user: alice\n    alow: [\"*\"]\n").unwrap();
        let e = Authorization::load(&typo).unwrap_err();
        assert!(matches!(e, AuthorizationError::Invalid { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("typo.yml") && text.contains("alow"), "{text}");

        let e = Authorization::from_yaml("rules: 7").unwrap_err();
        assert!(e.to_string().starts_with("authorization rules: "), "{e}");
    }
}
