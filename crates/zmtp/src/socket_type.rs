//! ZeroMQ socket types and which pairs may talk (RFC 23 / 37).

use std::fmt;

/// A ZeroMQ socket type, as announced in the READY `Socket-Type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// PAIR
    Pair,
    /// PUB
    Pub,
    /// SUB
    Sub,
    /// REQ
    Req,
    /// REP
    Rep,
    /// DEALER
    Dealer,
    /// ROUTER
    Router,
    /// PULL
    Pull,
    /// PUSH
    Push,
    /// XPUB
    XPub,
    /// XSUB
    XSub,
}

impl SocketType {
    /// The name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            SocketType::Pair => "PAIR",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Pull => "PULL",
            SocketType::Push => "PUSH",
            SocketType::XPub => "XPUB",
            SocketType::XSub => "XSUB",
        }
    }

    /// Parses a wire name (case-sensitive, as libzmq sends them).
    pub fn from_wire(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"PAIR" => SocketType::Pair,
            b"PUB" => SocketType::Pub,
            b"SUB" => SocketType::Sub,
            b"REQ" => SocketType::Req,
            b"REP" => SocketType::Rep,
            b"DEALER" => SocketType::Dealer,
            b"ROUTER" => SocketType::Router,
            b"PULL" => SocketType::Pull,
            b"PUSH" => SocketType::Push,
            b"XPUB" => SocketType::XPub,
            b"XSUB" => SocketType::XSub,
            _ => return None,
        })
    }

    /// Whether a socket of this type may talk to a peer of type `peer`.
    pub fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Pair, Pair)
                | (Req, Rep | Router)
                | (Rep, Req | Dealer)
                | (Dealer, Rep | Dealer | Router)
                | (Router, Req | Dealer | Router)
                | (Pub | XPub, Sub | XSub)
                | (Sub | XSub, Pub | XPub)
                | (Push, Pull)
                | (Pull, Push)
        )
    }

    /// Whether READY carries an `Identity` property for this type (libzmq
    /// sends it for REQ, DEALER and ROUTER).
    pub(crate) fn sends_identity(self) -> bool {
        matches!(
            self,
            SocketType::Req | SocketType::Dealer | SocketType::Router
        )
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SocketType; 11] = [
        SocketType::Pair,
        SocketType::Pub,
        SocketType::Sub,
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pull,
        SocketType::Push,
        SocketType::XPub,
        SocketType::XSub,
    ];

    #[test]
    fn compatibility_is_symmetric_and_names_round_trip() {
        for a in ALL {
            assert_eq!(SocketType::from_wire(a.as_str().as_bytes()), Some(a));
            for b in ALL {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn known_pairs() {
        use SocketType::*;
        assert!(Dealer.is_compatible(Router));
        assert!(Push.is_compatible(Pull));
        assert!(Pub.is_compatible(Sub));
        assert!(!Push.is_compatible(Pub));
        assert!(!Push.is_compatible(Push));
        assert!(!Sub.is_compatible(Sub));
        assert!(!Dealer.is_compatible(Pull));
        assert_eq!(SocketType::from_wire(b"dealer"), None);
    }
}
