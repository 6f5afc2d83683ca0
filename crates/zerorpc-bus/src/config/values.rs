//! The forms configuration values take as text (environment variables and
//! flags) and their checks; each parser's error is the expected form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long the daemon's log keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Messages are kept forever (`none`).
    Unlimited,
    /// Messages older than this are dropped (`7d`, `12h`, `30m`, `45s`, `2w`).
    Limit(Duration),
}

impl Retention {
    /// The expected form, for error messages.
    pub const EXPECTED: &'static str =
        "a duration: a positive whole number and a unit (s, m, h, d or w), like 7d, 12h or 30m; or none";

    /// The age limit, or `None` when messages are kept forever.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Retention::Unlimited => None,
            Retention::Limit(d) => Some(*d),
        }
    }
}

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 24 * 3600),
    ('d', 24 * 3600),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];

impl FromStr for Retention {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(Retention::Unlimited);
        }
        let unit = text.chars().last().ok_or(Self::EXPECTED)?;
        let seconds_per = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or(Self::EXPECTED)?;
        let digits = &text[..text.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Self::EXPECTED);
        }
        let n: u64 = digits.parse().map_err(|_| Self::EXPECTED)?;
        if n == 0 {
            return Err(Self::EXPECTED);
        }
        let seconds = n.checked_mul(seconds_per).ok_or(Self::EXPECTED)?;
        Ok(Retention::Limit(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for Retention {
    /// The largest unit up to days that divides the duration evenly: `7d`,
    /// `36h`, `none` (weeks are read, never written: `14d`, not `2w`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Unlimited => f.write_str("none"),
            Retention::Limit(d) => {
                let secs = d.as_secs();
                let (unit, per) = UNITS[1..]
                    .iter()
                    .find(|(_, per)| secs % per == 0)
                    .copied()
                    .unwrap_or(('s', 1));
                write!(f, "{}{unit}", secs / per)
            }
        }
    }
}

impl serde::Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Expected form of a ZeroMQ endpoint.
pub(crate) const ENDPOINT: &str = "a ZeroMQ endpoint: tcp://HOST:PORT (HOST may be *; \
     PORT 0 or * lets the system choose) or ipc://PATH";

/// Checks a ZeroMQ endpoint's form.
/// (The transport's own parser decides, so that what passes here binds or
/// connects.)
pub(crate) fn endpoint(text: &str) -> Result<String, &'static str> {
    if text.chars().any(char::is_whitespace) {
        return Err(ENDPOINT);
    }
    text.parse::<zerorpc::zmtp::Endpoint>()
        .map(|_| text.to_owned())
        .map_err(|_| ENDPOINT)
}

/// Expected form of an AMQP URL.
pub(crate) const AMQP_URL: &str = "an AMQP URL: amqp://USER:PASS@HOST:PORT/VHOST (or amqps://)";

/// Checks an AMQP URL's form.
pub(crate) fn amqp_url(text: &str) -> Result<String, &'static str> {
    url_with(text, &["amqp://", "amqps://"]).ok_or(AMQP_URL)
}

/// Expected form of a NATS URL.
pub(crate) const NATS_URL: &str = "a NATS URL: nats://HOST:PORT (or tls://)";

/// Checks a NATS URL's form.
pub(crate) fn nats_url(text: &str) -> Result<String, &'static str> {
    url_with(text, &["nats://", "tls://"]).ok_or(NATS_URL)
}

/// `text` when it starts with one of `schemes` and has a host, no spaces.
fn url_with(text: &str, schemes: &[&str]) -> Option<String> {
    let rest = schemes.iter().find_map(|s| text.strip_prefix(s))?;
    let ok = !rest.is_empty()
        && !rest.starts_with('/')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| text.to_owned())
}

/// Expected form of a broker object's name.
pub(crate) const NAME: &str = "a name: not empty, no spaces";

/// Checks a broker object's name (exchange, queue).
pub(crate) fn name(text: &str) -> Result<String, &'static str> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NAME);
    }
    Ok(text.to_owned())
}

/// Expected form of a byte size.
pub(crate) const BYTES: &str =
    "a positive number of bytes, optionally with a unit: 1048576, 512KiB, 1MiB, 1GiB";

/// Parses a byte size: digits, optionally followed by `B`, `KiB`, `MiB` or
/// `GiB` (case-insensitive, spaces allowed before the unit).
pub(crate) fn bytes(text: &str) -> Result<usize, &'static str> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let per: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(BYTES),
    };
    let n: u64 = digits.parse().map_err(|_| BYTES)?;
    let total = n.checked_mul(per).ok_or(BYTES)?;
    match usize::try_from(total) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(BYTES),
    }
}

/// Expected form of a boolean.
pub(crate) const BOOL: &str = "a boolean: true or false (also 1/0, yes/no, on/off)";

/// Parses a boolean as written in an environment variable or flag.
pub(crate) fn boolean(text: &str) -> Result<bool, &'static str> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(BOOL),
    }
}

/// Expected form of a topic prefix.
pub(crate) const TOPIC_PREFIX: &str =
    "a dotted topic prefix like org.fedoraproject: not empty, no spaces, no leading or trailing dot";

/// Checks a topic prefix.
pub(crate) fn topic_prefix(text: &str) -> Result<String, &'static str> {
    if text.is_empty()
        || text.starts_with('.')
        || text.ends_with('.')
        || text.contains("..")
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TOPIC_PREFIX);
    }
    Ok(text.to_owned())
}

/// Expected form of an environment name.
pub(crate) const ENVIRONMENT: &str =
    "one topic segment such as dev, stg or prod: not empty, no dots, no spaces";

/// Checks an environment name (one topic segment).
pub(crate) fn environment(text: &str) -> Result<String, &'static str> {
    if text.is_empty()
        || text
            .chars()
            .any(|c| c == '.' || c.is_whitespace() || c.is_control())
    {
        return Err(ENVIRONMENT);
    }
    Ok(text.to_owned())
}

/// The edit distance between two short strings (for "did you mean").
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev_diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (prev_diag + cost).min(row[j] + 1).min(row[j + 1] + 1);
            prev_diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_forms() {
        let day = 24 * 3600;
        for (text, secs) in [
            ("7d", 7 * day),
            ("12h", 12 * 3600),
            ("30m", 1800),
            ("45s", 45),
            ("2w", 14 * day),
            (" 1d ", day),
        ] {
            assert_eq!(
                text.parse::<Retention>(),
                Ok(Retention::Limit(Duration::from_secs(secs))),
                "{text}"
            );
        }
        assert_eq!("none".parse::<Retention>(), Ok(Retention::Unlimited));
        assert_eq!("NONE".parse::<Retention>(), Ok(Retention::Unlimited));
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "-1d",
            "1.5h",
            "7 days",
            "7D",
            "1y",
            "7dd",
            "99999999999999999999d",
            "18446744073709551615w",
        ] {
            assert_eq!(
                bad.parse::<Retention>(),
                Err(Retention::EXPECTED),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn retention_display_round_trips() {
        for text in ["7d", "36h", "90m", "61s", "14d", "none"] {
            let r: Retention = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
        }
        assert_eq!("2w".parse::<Retention>().unwrap().to_string(), "14d");
        assert_eq!(
            "12h".parse::<Retention>().unwrap().as_duration(),
            Some(Duration::from_secs(43200))
        );
        assert_eq!(Retention::Unlimited.as_duration(), None);
    }

    #[test]
    fn endpoints() {
        for ok in [
            "tcp://127.0.0.1:9940",
            "tcp://*:9940",
            "tcp://hub.fedoraproject.org:9940",
            "tcp://[::1]:9940",
            "tcp://127.0.0.1:*",
            "tcp://127.0.0.1:0",
            "ipc:///tmp/bus.sock",
        ] {
            assert_eq!(endpoint(ok), Ok(ok.to_owned()), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1:9940",
            "tcp://127.0.0.1",
            "inproc://bus",
            "tcp://127.0.0.1:70000",
            "tcp://:9940",
            "tcp://a b:1",
            "http://x:1",
            "ipc://",
        ] {
            assert_eq!(endpoint(bad), Err(ENDPOINT), "{bad:?}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes("1048576"), Ok(1 << 20));
        assert_eq!(bytes("1MiB"), Ok(1 << 20));
        assert_eq!(bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(bytes("2gib"), Ok(2 << 30));
        assert_eq!(bytes("10B"), Ok(10));
        for bad in [
            "",
            "0",
            "MiB",
            "1MB",
            "1.5MiB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert_eq!(bytes(bad), Err(BYTES), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "0", "No", "off"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert_eq!(boolean("maybe"), Err(BOOL));
        assert_eq!(boolean(""), Err(BOOL));
    }

    #[test]
    fn prefixes_and_environments() {
        assert!(topic_prefix("org.fedoraproject").is_ok());
        for bad in ["", ".org", "org.", "org..x", "org x"] {
            assert!(topic_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(environment("prod").is_ok());
        for bad in ["", "pr.od", "pr od"] {
            assert!(environment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("ingest", "ingest"), 0);
        assert_eq!(edit_distance("ingset", "ingest"), 2);
        assert_eq!(edit_distance("retentoin", "retention"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
