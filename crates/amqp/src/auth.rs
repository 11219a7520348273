//! Users, their password hashes and tags, and per-vhost permissions, as RabbitMQ keeps them:
//! passwords as `rabbit_password_hashing_sha256` (base64 of a 4-byte salt followed by
//! SHA-256(salt ‖ password)), so definitions move between OpenDMS and RabbitMQ unchanged;
//! permissions as configure/write/read regular expressions.

use std::collections::BTreeMap;

use amq_protocol::types::AMQPValue;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const HASHING_ALGORITHM: &str = "rabbit_password_hashing_sha256";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    /// `administrator`, `monitoring`, `management`, `policymaker`, …
    pub tags: Vec<String>,
}

impl User {
    pub fn new(name: &str, password: &str, tags: Vec<String>) -> User {
        User {
            name: name.to_string(),
            password_hash: hash_password(password),
            tags,
        }
    }

    pub fn is_administrator(&self) -> bool {
        self.tags.iter().any(|t| t == "administrator")
    }

    /// May use the management API (any management tag).
    pub fn may_manage(&self) -> bool {
        self.tags.iter().any(|t| {
            matches!(
                t.as_str(),
                "administrator" | "monitoring" | "management" | "policymaker"
            )
        })
    }

    pub fn check_password(&self, password: &str) -> bool {
        check_password(&self.password_hash, password)
    }
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    hash_with_salt(&salt, password)
}

fn hash_with_salt(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Checks a password against a stored hash (an empty hash lets no password in).
pub fn check_password(stored: &str, password: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(stored) else {
        return false;
    };
    if raw.len() != 4 + 32 {
        return false;
    }
    let expected = hash_with_salt(&raw[..4], password);
    // Both are the same length; compare without an early exit.
    expected
        .bytes()
        .zip(stored.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
        && expected.len() == stored.len()
}

/// One user's rights in one vhost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// A permission pattern, compiled. RabbitMQ runs `re:run(Name, Pattern)` on the binary
/// name without the `unicode` option, so `.` is one byte and `\w` is ASCII: the same as a
/// byte regex with Unicode off, which also compiles ~100x smaller than a Unicode `.`
/// (startup compiled the default `.*` three times: a quarter of the idle broker's page
/// faults). `.*`, every default grant, matches without a regex at all.
enum Pattern {
    /// `""`: RabbitMQ's empty pattern grants nothing.
    Nothing,
    /// `.*`: matches every name (it matches the empty string at position 0).
    Anything,
    Regex(regex::bytes::Regex),
}

impl Pattern {
    /// A pattern that does not compile grants nothing, as RabbitMQ refuses every name
    /// against it.
    fn compile(expr: &str) -> Pattern {
        match expr {
            "" => Pattern::Nothing,
            ".*" => Pattern::Anything,
            _ => regex::bytes::RegexBuilder::new(expr)
                .unicode(false)
                .build()
                .map_or(Pattern::Nothing, Pattern::Regex),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            Pattern::Nothing => false,
            Pattern::Anything => true,
            Pattern::Regex(re) => re.is_match(name.as_bytes()),
        }
    }
}

/// A permission with its configure, write and read patterns compiled.
struct Grant {
    permission: Permission,
    patterns: [Pattern; 3],
}

/// Permissions by user, then vhost: two lookups by `&str` on every publish, no allocation.
#[derive(Default)]
pub struct Permissions {
    by_user: BTreeMap<String, BTreeMap<String, Grant>>,
}

impl Permissions {
    pub fn set(&mut self, p: Permission) {
        let patterns = [
            Pattern::compile(&p.configure),
            Pattern::compile(&p.write),
            Pattern::compile(&p.read),
        ];
        self.by_user.entry(p.user.clone()).or_default().insert(
            p.vhost.clone(),
            Grant {
                permission: p,
                patterns,
            },
        );
    }

    pub fn remove(&mut self, user: &str, vhost: &str) -> bool {
        let Some(vhosts) = self.by_user.get_mut(user) else {
            return false;
        };
        let removed = vhosts.remove(vhost).is_some();
        if vhosts.is_empty() {
            self.by_user.remove(user);
        }
        removed
    }

    pub fn remove_user(&mut self, user: &str) {
        self.by_user.remove(user);
    }

    pub fn remove_vhost(&mut self, vhost: &str) {
        for vhosts in self.by_user.values_mut() {
            vhosts.remove(vhost);
        }
        self.by_user.retain(|_, vhosts| !vhosts.is_empty());
    }

    fn grant(&self, user: &str, vhost: &str) -> Option<&Grant> {
        self.by_user.get(user)?.get(vhost)
    }

    pub fn get(&self, user: &str, vhost: &str) -> Option<&Permission> {
        self.grant(user, vhost).map(|g| &g.permission)
    }

    /// Every permission, ordered by user then vhost.
    pub fn all(&self) -> Vec<Permission> {
        self.by_user
            .values()
            .flat_map(|vhosts| vhosts.values().map(|g| g.permission.clone()))
            .collect()
    }

    /// Whether `user` may access `vhost` at all.
    pub fn has_vhost(&self, user: &str, vhost: &str) -> bool {
        self.grant(user, vhost).is_some()
    }

    /// Whether `user` has `access` to the resource `name` in `vhost`.
    pub fn allows(&self, user: &str, vhost: &str, access: Access, name: &str) -> bool {
        let Some(grant) = self.grant(user, vhost) else {
            return false;
        };
        let pattern = match access {
            Access::Configure => &grant.patterns[0],
            Access::Write => &grant.patterns[1],
            Access::Read => &grant.patterns[2],
        };
        pattern.is_match(name)
    }
}

/// The user and password of a connection.start-ok response, for PLAIN (`\0user\0password`)
/// and AMQPLAIN (a field table without its length: `LOGIN`, `PASSWORD`).
pub fn parse_credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let password = parts.next()?;
            if parts.next().is_some() {
                return None;
            }
            Some((
                String::from_utf8(user.to_vec()).ok()?,
                String::from_utf8(password.to_vec()).ok()?,
            ))
        }
        "AMQPLAIN" => {
            // The table's entries without the 4-byte length the table type would have.
            let mut framed = u32::try_from(response.len()).ok()?.to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            // A response nested too deep fails as a malformed one (see `frame::nesting`).
            if crate::frame::nesting::table_too_deep(&framed) {
                return None;
            }
            let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
            let text = |key: &str| match table.inner().get(key) {
                Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).ok(),
                Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
                _ => None,
            };
            Some((text("LOGIN")?, text("PASSWORD")?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_as_rabbitmq_does() {
        // A hash made by RabbitMQ 3.10 (`rabbitmqctl hash_password guest`-style, salted
        // SHA-256) is accepted: recompute one from a fixed salt to pin the format.
        let h = hash_with_salt(&[1, 2, 3, 4], "guest");
        assert!(check_password(&h, "guest"));
        assert!(!check_password(&h, "Guest"));
        assert!(!check_password("", "guest"));
        let u = User::new("alice", "secret", vec!["administrator".into()]);
        assert!(u.check_password("secret") && u.is_administrator() && u.may_manage());
        assert_ne!(
            u.password_hash,
            User::new("alice", "secret", vec![]).password_hash
        );
    }

    #[test]
    fn permissions_are_regular_expressions() {
        let mut p = Permissions::default();
        p.set(Permission {
            user: "u".into(),
            vhost: "/".into(),
            configure: "^amq\\.gen.*".into(),
            write: ".*".into(),
            read: "".into(),
        });
        assert!(p.allows("u", "/", Access::Configure, "amq.gen-abc"));
        assert!(!p.allows("u", "/", Access::Configure, "orders"));
        assert!(p.allows("u", "/", Access::Write, "orders"));
        assert!(!p.allows("u", "/", Access::Read, "orders"));
        assert!(!p.allows("u", "other", Access::Write, "orders"));
        assert!(!p.allows("v", "/", Access::Write, "orders"));
    }

    #[test]
    fn patterns_match_bytes_as_rabbitmq_does() {
        let mut p = Permissions::default();
        p.set(Permission {
            user: "u".into(),
            vhost: "/".into(),
            // Erlang's re without `unicode`: `.` is one byte, so "é" (two bytes) is `..`.
            configure: "^..$".into(),
            write: "^(broken".into(),
            read: "^\\w+$".into(),
        });
        assert!(p.allows("u", "/", Access::Configure, "é"));
        assert!(!p.allows("u", "/", Access::Configure, "e"));
        // A pattern that does not compile grants nothing.
        assert!(!p.allows("u", "/", Access::Write, "(broken"));
        assert!(p.allows("u", "/", Access::Read, "orders_1"));
        assert!(!p.allows("u", "/", Access::Read, "café"));
        assert!(p.remove("u", "/") && !p.has_vhost("u", "/") && p.all().is_empty());
    }

    #[test]
    fn plain_and_amqplain_credentials() {
        assert_eq!(
            parse_credentials("PLAIN", b"\0guest\0pw"),
            Some(("guest".into(), "pw".into()))
        );
        assert_eq!(parse_credentials("PLAIN", b"guest"), None);
        // LOGIN S "guest", PASSWORD S "pw" as pika writes them.
        let mut amqplain = Vec::new();
        for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "pw")] {
            amqplain.push(k.len() as u8);
            amqplain.extend_from_slice(k.as_bytes());
            amqplain.push(b'S');
            amqplain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            amqplain.extend_from_slice(v.as_bytes());
        }
        assert_eq!(
            parse_credentials("AMQPLAIN", &amqplain),
            Some(("guest".into(), "pw".into()))
        );
        assert_eq!(parse_credentials("EXTERNAL", b""), None);
    }
}
