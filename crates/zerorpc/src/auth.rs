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

impl Authorization {
    /// Rules from a list.
    pub fn new(rules: Vec<Rule>) -> Self {
        Authorization { rules }
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
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // (iterative, with one backtrack point: linear in practice, no
    // recursion to blow up on hostile patterns)
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
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
}
