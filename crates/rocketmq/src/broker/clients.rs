//! Online producers and consumers, learned from their heartbeats (HEART_BEAT every 30 s by
//! default) and forgotten when their connection closes, they unregister, or 120 s pass
//! without a heartbeat (Apache's `channelExpiredTimeout`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Deserialize;

use crate::server::Connection;

pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);

/// A subscription as the heartbeat carries it (`SubscriptionData`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subscription {
    pub topic: String,
    pub sub_string: String,
    pub tags_set: Vec<String>,
    #[serde(deserialize_with = "lenient_i64s")]
    pub code_set: Vec<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
    pub expression_type: Option<String>,
    pub class_filter_mode: bool,
    /// The compiled SQL92 expression of a SQL92 subscription.
    #[serde(skip)]
    pub sql: Option<std::sync::Arc<crate::filter::Expr>>,
}

impl Subscription {
    /// Builds a tag subscription from an expression (`FilterAPI.buildSubscriptionData`):
    /// `*` or empty is everything, otherwise tags separated by `||`.
    pub fn from_expression(topic: &str, expression: &str) -> Subscription {
        let mut s = Subscription {
            topic: topic.to_string(),
            sub_string: expression.to_string(),
            ..Subscription::default()
        };
        let e = expression.trim();
        if e.is_empty() || e == "*" {
            s.sub_string = "*".into();
        } else {
            for tag in e.split("||").map(str::trim).filter(|t| !t.is_empty()) {
                s.code_set.push(crate::message::tag_code(tag));
                s.tags_set.push(tag.to_string());
            }
        }
        s
    }

    /// Compiles a SQL92 subscription's expression (a tag subscription has nothing to do).
    pub fn compile(&mut self) -> Result<(), crate::filter::ParseError> {
        if self.is_sql92() {
            self.sql = Some(std::sync::Arc::new(crate::filter::parse(&self.sub_string)?));
        }
        Ok(())
    }

    /// Whether a message with these properties passes the subscription.
    pub fn accepts(&self, props: Option<&crate::message::Properties>) -> bool {
        match &self.sql {
            Some(expr) => props.is_some_and(|p| expr.matches(&|k| p.get(k).map(str::to_string))),
            None => self.accepts_tags(props.and_then(|p| p.tags())),
        }
    }

    /// Whether every message passes (`*` or no tags, no SQL92): the filter need not read a
    /// message's properties.
    pub fn accepts_everything(&self) -> bool {
        self.sql.is_none() && self.any_tag()
    }

    /// `*`, empty, or no tags: the tag filter takes every message.
    fn any_tag(&self) -> bool {
        self.sub_string == "*" || self.sub_string.is_empty() || self.tags_set.is_empty()
    }

    pub fn is_sql92(&self) -> bool {
        self.expression_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("SQL92"))
    }

    /// Whether a message with these tags passes the tag filter.
    pub fn accepts_tags(&self, tags: Option<&str>) -> bool {
        if self.any_tag() {
            return true;
        }
        match tags {
            Some(t) => self.tags_set.iter().any(|s| s == t),
            None => false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub group_name: String,
    #[serde(deserialize_with = "consume_type")]
    pub consume_type: String,
    #[serde(deserialize_with = "message_model")]
    pub message_model: String,
    #[serde(deserialize_with = "consume_from_where")]
    pub consume_from_where: String,
    pub subscription_data_set: Vec<Subscription>,
    pub unit_mode: bool,
}

/// A number, or a number in a string (the C++ client writes `subVersion` so).
fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(as_i64(&serde_json::Value::deserialize(d)?).unwrap_or(0))
}

fn lenient_i64s<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(v) => v.iter().filter_map(as_i64).collect(),
        _ => Vec::new(),
    })
}

fn as_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Java enums arrive by name from Java and Go clients and by ordinal from the C++ client
/// (fastjson reads both): these read either into the name.
fn enum_name<'de, D: serde::Deserializer<'de>>(d: D, names: &[&str]) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n
            .as_u64()
            .and_then(|i| names.get(usize::try_from(i).ok()?))
            .map_or_else(|| n.to_string(), |s| (*s).to_string())),
        _ => Ok(String::new()),
    }
}

fn consume_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY"])
}

fn message_model<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, &["BROADCASTING", "CLUSTERING"])
}

fn consume_from_where<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(
        d,
        &[
            "CONSUME_FROM_LAST_OFFSET",
            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
            "CONSUME_FROM_MIN_OFFSET",
            "CONSUME_FROM_MAX_OFFSET",
            "CONSUME_FROM_FIRST_OFFSET",
            "CONSUME_FROM_TIMESTAMP",
        ],
    )
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub producer_data_set: Vec<ProducerData>,
    pub consumer_data_set: Vec<ConsumerData>,
}

/// One client connection in a group.
#[derive(Clone)]
pub struct ClientChannel {
    pub client_id: String,
    pub conn: Arc<Connection>,
    pub language: String,
    pub version: i32,
    pub last_heartbeat: Instant,
}

#[derive(Clone, Default)]
pub struct ConsumerGroup {
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
    pub subscriptions: BTreeMap<String, Subscription>,
    /// By connection id.
    pub channels: BTreeMap<u64, ClientChannel>,
}

impl ConsumerGroup {
    pub fn is_broadcasting(&self) -> bool {
        self.message_model.eq_ignore_ascii_case("BROADCASTING")
    }

    /// Client ids, sorted and distinct, as GET_CONSUMER_LIST_BY_GROUP lists them.
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .channels
            .values()
            .map(|c| c.client_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[derive(Default)]
pub struct Clients {
    consumers: RwLock<BTreeMap<String, ConsumerGroup>>,
    producers: RwLock<BTreeMap<String, BTreeMap<u64, ClientChannel>>>,
}

impl Clients {
    /// Records a heartbeat; returns the consumer groups whose membership changed.
    pub fn heartbeat(
        &self,
        conn: &Arc<Connection>,
        language: &str,
        version: i32,
        hb: &HeartbeatData,
    ) -> Vec<String> {
        let channel = ClientChannel {
            client_id: hb.client_id.clone(),
            conn: conn.clone(),
            language: language.to_string(),
            version,
            last_heartbeat: Instant::now(),
        };
        let mut changed = Vec::new();
        {
            let mut consumers = self.consumers.write();
            for c in &hb.consumer_data_set {
                let g = consumers.entry(c.group_name.clone()).or_default();
                g.consume_type.clone_from(&c.consume_type);
                g.message_model.clone_from(&c.message_model);
                g.consume_from_where.clone_from(&c.consume_from_where);
                let subs: BTreeMap<String, Subscription> = c
                    .subscription_data_set
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        // A bad expression stays uncompiled: pulls are refused for it.
                        let _ = s.compile();
                        (s.topic.clone(), s)
                    })
                    .collect();
                // Apache replaces the group's subscriptions by the newest heartbeat's.
                g.subscriptions = subs;
                let new_member = g
                    .channels
                    .insert(conn.id, channel.clone())
                    .is_none_or(|old| old.client_id != channel.client_id);
                if new_member {
                    changed.push(c.group_name.clone());
                }
            }
        }
        let mut producers = self.producers.write();
        for p in &hb.producer_data_set {
            producers
                .entry(p.group_name.clone())
                .or_default()
                .insert(conn.id, channel.clone());
        }
        changed
    }

    /// Forgets a client of a group (UNREGISTER_CLIENT); true if a consumer group changed.
    pub fn unregister(
        &self,
        conn: &Arc<Connection>,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> bool {
        if let Some(p) = producer_group {
            if let Some(g) = self.producers.write().get_mut(p) {
                g.remove(&conn.id);
            }
        }
        let Some(c) = consumer_group else {
            return false;
        };
        let mut consumers = self.consumers.write();
        let Some(g) = consumers.get_mut(c) else {
            return false;
        };
        let changed = g.channels.remove(&conn.id).is_some();
        if g.channels.is_empty() {
            consumers.remove(c);
        }
        changed
    }

    /// Forgets a closed connection everywhere; returns the consumer groups it left.
    pub fn connection_closed(&self, conn_id: u64) -> Vec<String> {
        self.drop_channels(|id, _| id == conn_id)
    }

    /// Forgets channels without a heartbeat for [`CHANNEL_EXPIRY`]; returns the groups left.
    pub fn expire(&self, now: Instant) -> Vec<String> {
        self.drop_channels(|_, c| now.duration_since(c.last_heartbeat) > CHANNEL_EXPIRY)
    }

    fn drop_channels(&self, gone: impl Fn(u64, &ClientChannel) -> bool) -> Vec<String> {
        let mut left = Vec::new();
        let mut consumers = self.consumers.write();
        for (name, g) in consumers.iter_mut() {
            let before = g.channels.len();
            g.channels.retain(|id, c| !gone(*id, c));
            if g.channels.len() != before {
                left.push(name.clone());
            }
        }
        consumers.retain(|_, g| !g.channels.is_empty());
        drop(consumers);
        let mut producers = self.producers.write();
        for g in producers.values_mut() {
            g.retain(|id, c| !gone(*id, c));
        }
        producers.retain(|_, g| !g.is_empty());
        left
    }

    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroup> {
        self.consumers.read().get(group).cloned()
    }

    pub fn consumer_groups(&self) -> Vec<String> {
        self.consumers.read().keys().cloned().collect()
    }

    /// The connections of a producer group (transaction check-backs go to one of them).
    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .read()
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_filter_as_the_clients_build_them() {
        let s = Subscription::from_expression("t", "TagA || TagB");
        assert_eq!(s.tags_set, ["TagA", "TagB"]);
        assert!(s.accepts_tags(Some("TagB")));
        assert!(!s.accepts_tags(Some("TagC")));
        assert!(!s.accepts_tags(None));
        assert!(Subscription::from_expression("t", "*").accepts_tags(None));
    }

    #[test]
    fn heartbeats_parse_as_java_clients_send_them() {
        let hb: HeartbeatData = serde_json::from_str(
            r#"{"clientID":"127.0.0.1@1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1,"tagsSet":["TagA"],"topic":"t"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}]}"#,
        )
        .unwrap();
        assert_eq!(hb.client_id, "127.0.0.1@1");
        assert_eq!(
            hb.consumer_data_set[0].subscription_data_set[0].tags_set,
            ["TagA"]
        );
        // The C++ client writes the enums as ordinals.
        let hb: HeartbeatData = serde_json::from_str(
            r#"{"clientID":"127.0.0.1@c1","consumerDataSet":[{"consumeFromWhere":4,"consumeType":1,"groupName":"g","messageModel":0,"subscriptionDataSet":[{"codeSet":["5"],"subString":"*","subVersion":"1796556225297","tagsSet":[],"topic":"t"}]}]}"#,
        )
        .unwrap();
        let c = &hb.consumer_data_set[0];
        assert_eq!(
            (
                c.consume_type.as_str(),
                c.message_model.as_str(),
                c.consume_from_where.as_str()
            ),
            (
                "CONSUME_PASSIVELY",
                "BROADCASTING",
                "CONSUME_FROM_FIRST_OFFSET"
            )
        );
        assert_eq!(c.subscription_data_set[0].sub_version, 1_796_556_225_297);
        assert_eq!(c.subscription_data_set[0].code_set, [5]);
    }
}
