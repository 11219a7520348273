//! Plain ACL as RocketMQ 4.8/4.9 brokers enforce it (`PlainAccessValidator`).
//!
//! Clients sign every request: `Signature = Base64(HmacSHA1(secretKey, values of the
//! extFields sorted by key, without Signature, concatenated, then the body))` and send
//! `AccessKey` and `Signature` among the extFields. The broker finds the account, skips the
//! signature when the client's address is in the account's white list, checks the signature,
//! then the permission each request code needs on its topic and on the group's retry topic
//! (`%RETRY%group` stands for the group). Admin request codes need an admin account.
//!
//! The configuration has the shape of Apache's `plain_acl.yml` (a JSON document is valid
//! YAML, so the same file serves both). Secret keys are kept as the HMAC needs them and never
//! logged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

use crate::broker::topics::system;
use crate::remoting::{codes, RemotingCommand};

pub const ACCESS_KEY: &str = "AccessKey";
pub const SIGNATURE: &str = "Signature";

/// `Permission`: DENY, ANY, PUB, SUB bits.
pub mod perm {
    pub const DENY: u8 = 1;
    pub const ANY: u8 = 1 << 1;
    pub const PUB: u8 = 1 << 2;
    pub const SUB: u8 = 1 << 3;

    /// `Permission.parsePermFromString`: anything unknown is DENY.
    pub fn parse(s: Option<&str>) -> u8 {
        match s.map(str::trim) {
            Some("PUB") => PUB,
            Some("SUB") => SUB,
            Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
            _ => DENY,
        }
    }

    /// `Permission.checkPermission`.
    pub fn allows(owned: u8, needed: u8) -> bool {
        if owned & DENY != 0 {
            return false;
        }
        if needed & ANY != 0 {
            return owned & (PUB | SUB) != 0;
        }
        needed & owned != 0
    }
}

/// One account of `plain_acl.yml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Account {
    pub access_key: String,
    pub secret_key: String,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    /// `topic=PERM` entries.
    pub topic_perms: Vec<String>,
    /// `group=PERM` entries.
    pub group_perms: Vec<String>,
}

/// `plain_acl.yml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AclConfig {
    pub global_white_remote_addresses: Vec<String>,
    pub accounts: Vec<Account>,
}

/// Why an account is refused when added (`checkPlainAccessConfig`).
pub fn check_account(a: &Account) -> Result<(), String> {
    if a.access_key.len() <= 6 || a.secret_key.len() <= 6 {
        return Err(format!(
            "The accessKey={} and secretKey=****** cannot be null and length should longer than 6",
            a.access_key
        ));
    }
    Ok(())
}

/// Request codes that need an admin account (`Permission.ADMIN_CODE`).
const ADMIN_CODES: [i32; 5] = [
    codes::UPDATE_AND_CREATE_TOPIC,
    25, // UPDATE_BROKER_CONFIG
    codes::DELETE_TOPIC_IN_BROKER,
    codes::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    codes::DELETE_SUBSCRIPTIONGROUP,
];

/// The ACL of a broker, ready to check requests.
#[derive(Clone, Debug)]
pub struct Acl {
    config: AclConfig,
}

/// `AclException` as Apache's remoting layer reports it (SYSTEM_ERROR with this text).
fn refusal(message: String) -> String {
    format!("org.apache.rocketmq.acl.common.AclException: {message}")
}

impl Acl {
    pub fn new(config: AclConfig) -> Acl {
        Acl { config }
    }

    pub fn config(&self) -> &AclConfig {
        &self.config
    }

    /// Checks one request from `remote`; the error is the response remark.
    pub fn check(&self, req: &RemotingCommand, remote: IpAddr) -> Result<(), String> {
        if self
            .config
            .global_white_remote_addresses
            .iter()
            .any(|p| address_matches(p, remote))
        {
            return Ok(());
        }
        let Some(access_key) = req.ext(ACCESS_KEY) else {
            return Err(refusal("No accessKey is configured".into()));
        };
        let Some(account) = self
            .config
            .accounts
            .iter()
            .find(|a| a.access_key == access_key)
        else {
            return Err(refusal(format!("No acl config for {access_key}")));
        };
        if account
            .white_remote_address
            .as_deref()
            .is_some_and(|p| address_matches(p, remote))
        {
            return Ok(());
        }
        let expected = signature(req, &account.secret_key);
        if req.ext(SIGNATURE) != Some(expected.as_str()) {
            return Err(refusal(format!(
                "Check signature failed for accessKey={access_key}"
            )));
        }
        if ADMIN_CODES.contains(&req.code) && !account.admin {
            return Err(refusal(format!(
                "Need admin permission for request code={}, but accessKey={access_key} is not",
                req.code
            )));
        }
        let needed = needed_permissions(req);
        // Apache lets trace-topic publishes through whatever the account's permissions.
        if needed.get(system::TRACE) == Some(&perm::PUB) {
            return Ok(());
        }
        if account.admin && account.topic_perms.is_empty() && account.group_perms.is_empty() {
            return Ok(());
        }
        for (resource, need) in needed {
            let is_group = resource.starts_with(system::RETRY_PREFIX);
            let owned = owned_permission(account, &resource, is_group);
            if !perm::allows(owned, need) {
                let shown = match resource.strip_prefix(system::RETRY_PREFIX) {
                    Some(group) if is_group => format!("group:{group}"),
                    _ => format!("topic:{resource}"),
                };
                return Err(refusal(format!("No default permission for {shown}")));
            }
        }
        Ok(())
    }
}

fn owned_permission(account: &Account, resource: &str, is_group: bool) -> u8 {
    let (entries, default, name) = if is_group {
        (
            &account.group_perms,
            &account.default_group_perm,
            resource
                .strip_prefix(system::RETRY_PREFIX)
                .unwrap_or(resource),
        )
    } else {
        (&account.topic_perms, &account.default_topic_perm, resource)
    };
    for e in entries {
        if let Some((n, p)) = e.split_once('=') {
            if n.trim() == name {
                return perm::parse(Some(p));
            }
        }
    }
    perm::parse(default.as_deref())
}

/// The resources a request needs and with which permission (`PlainAccessValidator.parse`).
fn needed_permissions(req: &RemotingCommand) -> BTreeMap<String, u8> {
    let mut need = BTreeMap::new();
    let retry = |g: Option<&str>| system::retry_topic(g.unwrap_or_default());
    let mut add = |r: String, p: u8| {
        *need.entry(r).or_insert(0) |= p;
    };
    match req.code {
        codes::SEND_MESSAGE | codes::SEND_BATCH_MESSAGE | codes::SEND_MESSAGE_V2 => {
            let v2 = req.code != codes::SEND_MESSAGE;
            let topic = req.ext(if v2 { "b" } else { "topic" }).unwrap_or_default();
            if topic.starts_with(system::RETRY_PREFIX) {
                add(retry(req.ext(if v2 { "a" } else { "group" })), perm::SUB);
            } else {
                add(topic.to_string(), perm::PUB);
            }
        }
        codes::CONSUMER_SEND_MSG_BACK => add(retry(req.ext("group")), perm::SUB),
        codes::PULL_MESSAGE => {
            add(req.ext("topic").unwrap_or_default().to_string(), perm::SUB);
            add(retry(req.ext("consumerGroup")), perm::SUB);
        }
        codes::QUERY_MESSAGE => add(req.ext("topic").unwrap_or_default().to_string(), perm::SUB),
        codes::HEART_BEAT => {
            if let Ok(hb) = serde_json::from_slice::<serde_json::Value>(&req.body) {
                for c in hb["consumerDataSet"].as_array().into_iter().flatten() {
                    add(retry(c["groupName"].as_str()), perm::SUB);
                    for s in c["subscriptionDataSet"].as_array().into_iter().flatten() {
                        add(
                            s["topic"].as_str().unwrap_or_default().to_string(),
                            perm::SUB,
                        );
                    }
                }
            }
        }
        codes::UNREGISTER_CLIENT | codes::GET_CONSUMER_LIST_BY_GROUP => {
            add(retry(req.ext("consumerGroup")), perm::SUB);
        }
        codes::UPDATE_CONSUMER_OFFSET => {
            add(retry(req.ext("consumerGroup")), perm::SUB);
            add(req.ext("topic").unwrap_or_default().to_string(), perm::SUB);
        }
        _ => {}
    }
    need
}

/// The signature a client computes for `req` with `secret`.
pub fn signature(req: &RemotingCommand, secret: &str) -> String {
    let mut content = Vec::new();
    for (k, v) in &req.ext_fields {
        if k != SIGNATURE && k != "_UNIQUE_KEY_QUERY" {
            content.extend_from_slice(v.as_bytes());
        }
    }
    content.extend_from_slice(&req.body);
    sign(&content, secret)
}

fn sign(content: &[u8], secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(content);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Apache's white-address patterns: `*`, one address, a comma list, or an IPv4 pattern whose
/// parts are numbers, `*`, ranges `a-b`, or a last part `{a,b,c}`.
pub fn address_matches(pattern: &str, addr: IpAddr) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return false;
    }
    if matches!(pattern, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
        return true;
    }
    let addr_s = addr.to_string();
    if pattern.contains(',') && !pattern.ends_with('}') {
        return pattern.split(',').any(|p| p.trim() == addr_s);
    }
    let IpAddr::V4(v4) = addr else {
        return pattern == addr_s;
    };
    let octets = v4.octets();
    if let Some((prefix, last)) = pattern.rsplit_once('.').filter(|(_, l)| l.starts_with('{')) {
        let choices = last.trim_start_matches('{').trim_end_matches('}');
        let prefix_ok = prefix
            .split('.')
            .zip(octets.iter())
            .all(|(p, o)| part_matches(p, *o));
        return prefix.split('.').count() == 3
            && prefix_ok
            && choices
                .split(',')
                .any(|c| c.trim().parse::<u8>().ok() == Some(octets[3]));
    }
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .zip(octets.iter())
            .all(|(p, o)| part_matches(p, *o))
}

fn part_matches(part: &str, octet: u8) -> bool {
    if part == "*" {
        return true;
    }
    if let Some((a, b)) = part.split_once('-') {
        return match (a.parse::<u8>(), b.parse::<u8>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&octet),
            _ => false,
        };
    }
    part.parse::<u8>().ok() == Some(octet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(mut req: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
        req.set_ext(ACCESS_KEY, ak);
        let s = signature(&req, sk);
        req.set_ext(SIGNATURE, s);
        req
    }

    fn acl() -> Acl {
        Acl::new(AclConfig {
            global_white_remote_addresses: vec!["10.10.103.*".into()],
            accounts: vec![
                Account {
                    access_key: "RocketMQ".into(),
                    secret_key: "12345678".into(),
                    default_topic_perm: Some("DENY".into()),
                    default_group_perm: Some("SUB".into()),
                    topic_perms: vec!["open=PUB|SUB".into(), "ro=SUB".into()],
                    ..Account::default()
                },
                Account {
                    access_key: "rocketmq2".into(),
                    secret_key: "12345678".into(),
                    admin: true,
                    ..Account::default()
                },
            ],
        })
    }

    fn send(topic: &str) -> RemotingCommand {
        let mut r = RemotingCommand::request(codes::SEND_MESSAGE_V2, 1);
        r.set_ext("a", "pg");
        r.set_ext("b", topic);
        r.body = bytes::Bytes::from_static(b"body");
        r
    }

    #[test]
    fn signatures_match_what_java_clients_compute() {
        // Base64(HmacSHA1("12345678", "RocketMQ" "pg" "open" + body)): the values sorted by
        // key (AccessKey, a, b), as AclClientRPCHook signs them (computed with Python's hmac).
        let r = signed(send("open"), "RocketMQ", "12345678");
        assert_eq!(r.ext(SIGNATURE), Some("1M637Ba7Kg6ymqByTBYMmzCOF1o="));
    }

    #[test]
    fn permissions_and_refusals_follow_plain_acl() {
        let acl = acl();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            acl.check(&signed(send("open"), "RocketMQ", "12345678"), local),
            Ok(())
        );
        let e = acl
            .check(&signed(send("closed"), "RocketMQ", "12345678"), local)
            .unwrap_err();
        assert!(e.ends_with("No default permission for topic:closed"), "{e}");
        let e = acl
            .check(&signed(send("ro"), "RocketMQ", "12345678"), local)
            .unwrap_err();
        assert!(e.ends_with("No default permission for topic:ro"), "{e}");
        let e = acl
            .check(&signed(send("open"), "RocketMQ", "wrong-secret"), local)
            .unwrap_err();
        assert!(
            e.ends_with("Check signature failed for accessKey=RocketMQ"),
            "{e}"
        );
        let e = acl.check(&send("open"), local).unwrap_err();
        assert!(e.ends_with("No accessKey is configured"), "{e}");
        let e = acl
            .check(&signed(send("open"), "nobody", "x"), local)
            .unwrap_err();
        assert!(e.ends_with("No acl config for nobody"), "{e}");
        let mut create = RemotingCommand::request(codes::UPDATE_AND_CREATE_TOPIC, 2);
        create.set_ext("topic", "t");
        let e = acl
            .check(&signed(create.clone(), "RocketMQ", "12345678"), local)
            .unwrap_err();
        assert!(
            e.contains("Need admin permission for request code=17"),
            "{e}"
        );
        assert_eq!(
            acl.check(&signed(create, "rocketmq2", "12345678"), local),
            Ok(())
        );
        // The global white list skips everything.
        assert_eq!(
            acl.check(&send("closed"), "10.10.103.7".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn white_address_patterns() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(address_matches("*", ip("1.2.3.4")));
        assert!(address_matches("192.168.1.*", ip("192.168.1.9")));
        assert!(address_matches("192.168.1-10.5", ip("192.168.7.5")));
        assert!(!address_matches("192.168.1-10.5", ip("192.168.11.5")));
        assert!(address_matches("192.168.1.{1,2,3}", ip("192.168.1.2")));
        assert!(!address_matches("192.168.1.{1,2,3}", ip("192.168.1.4")));
        assert!(address_matches("127.0.0.1,10.0.0.1", ip("10.0.0.1")));
        assert!(!address_matches("", ip("10.0.0.1")));
    }
}
