//! The name server: which brokers exist, which topics each serves with how many queues, and
//! a small key-value configuration store. Clients ask it for a topic's route before they
//! talk to brokers.
//!
//! Brokers of an OpenDMS cluster register in-process ([`NameServer::register`]) whenever
//! their topics change; other brokers may register over the wire (REGISTER_BROKER with an
//! uncompressed JSON body, as Apache brokers send it by default).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Value};
use tracing::{debug, info};

use crate::remoting::{codes, RemotingCommand};
use crate::server::Connection;

/// `FAQUrl.suggestTodo(FAQUrl.APPLY_TOPIC_URL)`, appended to Apache's topic remarks.
pub const APPLY_TOPIC_SUGGESTION: &str =
    "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// One topic as a broker serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueData {
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// What a broker tells the name server about itself.
#[derive(Clone, Debug)]
pub struct BrokerRegistration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub addr: String,
    pub topics: BTreeMap<String, QueueData>,
}

#[derive(Default)]
struct Routes {
    /// broker name → (cluster, broker id → address)
    brokers: BTreeMap<String, (String, BTreeMap<i64, String>)>,
    /// topic → broker name → queues
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// namespace → key → value
    kv: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Default)]
pub struct NameServer {
    routes: RwLock<Routes>,
}

impl NameServer {
    pub fn new() -> Arc<NameServer> {
        Arc::new(NameServer::default())
    }

    /// Records a broker and replaces the set of topics it serves.
    pub fn register(&self, reg: BrokerRegistration) {
        let mut r = self.routes.write();
        let entry = r
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| (reg.cluster.clone(), BTreeMap::new()));
        entry.0 = reg.cluster.clone();
        entry.1.insert(reg.broker_id, reg.addr.clone());
        if reg.broker_id == 0 {
            for queues in r.topics.values_mut() {
                queues.remove(&reg.broker_name);
            }
            for (topic, q) in reg.topics {
                r.topics
                    .entry(topic)
                    .or_default()
                    .insert(reg.broker_name.clone(), q);
            }
            r.topics.retain(|_, q| !q.is_empty());
        }
        debug!(broker = %reg.broker_name, addr = %reg.addr, "broker registered");
    }

    /// Forgets a broker and the topics only it served.
    pub fn unregister(&self, broker_name: &str, broker_id: i64) {
        let mut r = self.routes.write();
        let gone = match r.brokers.get_mut(broker_name) {
            Some((_, addrs)) => {
                addrs.remove(&broker_id);
                addrs.is_empty()
            }
            None => false,
        };
        if gone {
            r.brokers.remove(broker_name);
            for queues in r.topics.values_mut() {
                queues.remove(broker_name);
            }
            r.topics.retain(|_, q| !q.is_empty());
        }
        info!(broker = %broker_name, broker_id, "broker unregistered");
    }

    pub fn topics(&self) -> Vec<String> {
        self.routes.read().topics.keys().cloned().collect()
    }

    /// Answers a request; `None` for request codes it does not know, which Apache's name server
    /// leaves unanswered (its default processor returns nothing; measured against 4.9.7).
    pub fn handle(&self, conn: &Arc<Connection>, req: RemotingCommand) -> Option<RemotingCommand> {
        Some(match req.code {
            codes::GET_ROUTEINFO_BY_TOPIC => self.route_info(&req),
            codes::GET_BROKER_CLUSTER_INFO => self.cluster_info(&req),
            codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => self.topic_list(&req, None),
            codes::GET_TOPICS_BY_CLUSTER => {
                let cluster = req.ext("cluster").unwrap_or_default().to_string();
                self.topic_list(&req, Some(cluster))
            }
            codes::PUT_KV_CONFIG => self.put_kv(&req),
            codes::GET_KV_CONFIG => self.get_kv(&req),
            codes::DELETE_KV_CONFIG => self.delete_kv(&req),
            codes::GET_KVLIST_BY_NAMESPACE => self.kv_list(&req),
            codes::REGISTER_BROKER => self.register_over_wire(&req),
            codes::UNREGISTER_BROKER => {
                let name = req.ext("brokerName").unwrap_or_default().to_string();
                self.unregister(&name, req.ext_i64("brokerId").unwrap_or(0));
                RemotingCommand::response_to(&req, codes::SUCCESS, None)
            }
            codes::DELETE_TOPIC_IN_NAMESRV => {
                let topic = req.ext("topic").unwrap_or_default();
                self.routes.write().topics.remove(topic);
                RemotingCommand::response_to(&req, codes::SUCCESS, None)
            }
            _ => {
                info!(code = req.code, peer = %conn.peer, "name server request code not supported: left unanswered as apache does");
                return None;
            }
        })
    }

    fn route_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let Some(topic) = req.ext("topic") else {
            return missing_field(req, "topic");
        };
        let r = self.routes.read();
        let Some(queues) = r.topics.get(topic) else {
            return RemotingCommand::response_to(
                req,
                codes::TOPIC_NOT_EXIST,
                Some(format!(
                    "No topic route info in name server for the topic: {topic}{APPLY_TOPIC_SUGGESTION}"
                )),
            );
        };
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.body = route_json(&r, queues).into_bytes().into();
        resp
    }

    fn cluster_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let r = self.routes.read();
        let mut clusters: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut brokers = String::from("{");
        for (i, (name, (cluster, addrs))) in r.brokers.iter().enumerate() {
            clusters.entry(cluster).or_default().insert(name);
            if i > 0 {
                brokers.push(',');
            }
            let _ = write!(
                brokers,
                "{}:{}",
                json!(name),
                broker_data(cluster, name, addrs)
            );
        }
        brokers.push('}');
        let clusters = json!(clusters);
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.body = format!("{{\"brokerAddrTable\":{brokers},\"clusterAddrTable\":{clusters}}}")
            .into_bytes()
            .into();
        resp
    }

    fn topic_list(&self, req: &RemotingCommand, cluster: Option<String>) -> RemotingCommand {
        let r = self.routes.read();
        let topics: Vec<&String> = r
            .topics
            .iter()
            .filter(|(_, queues)| match &cluster {
                None => true,
                Some(c) => queues
                    .keys()
                    .any(|b| r.brokers.get(b).is_some_and(|(bc, _)| bc == c)),
            })
            .map(|(t, _)| t)
            .collect();
        let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
        resp.body = json!({ "topicList": topics })
            .to_string()
            .into_bytes()
            .into();
        resp
    }

    fn put_kv(&self, req: &RemotingCommand) -> RemotingCommand {
        let (Some(ns), Some(key), Some(value)) =
            (req.ext("namespace"), req.ext("key"), req.ext("value"))
        else {
            return missing_field(req, "namespace, key and value");
        };
        self.routes
            .write()
            .kv
            .entry(ns.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }

    fn get_kv(&self, req: &RemotingCommand) -> RemotingCommand {
        let ns = req.ext("namespace").unwrap_or_default();
        let key = req.ext("key").unwrap_or_default();
        let value = self
            .routes
            .read()
            .kv
            .get(ns)
            .and_then(|m| m.get(key))
            .cloned();
        match value {
            Some(v) => {
                let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
                resp.set_ext("value", v);
                resp
            }
            None => RemotingCommand::response_to(
                req,
                codes::QUERY_NOT_FOUND,
                Some(format!("No config item, Namespace: {ns} Key: {key}")),
            ),
        }
    }

    fn delete_kv(&self, req: &RemotingCommand) -> RemotingCommand {
        let ns = req.ext("namespace").unwrap_or_default();
        let key = req.ext("key").unwrap_or_default();
        if let Some(m) = self.routes.write().kv.get_mut(ns) {
            m.remove(key);
        }
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }

    fn kv_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let ns = req.ext("namespace").unwrap_or_default();
        let r = self.routes.read();
        match r.kv.get(ns).filter(|m| !m.is_empty()) {
            Some(m) => {
                let mut resp = RemotingCommand::response_to(req, codes::SUCCESS, None);
                resp.body = json!({ "table": m }).to_string().into_bytes().into();
                resp
            }
            None => RemotingCommand::response_to(
                req,
                codes::QUERY_NOT_FOUND,
                Some(format!("No config item, Namespace: {ns}")),
            ),
        }
    }

    /// REGISTER_BROKER from a broker elsewhere: header fields and a JSON
    /// `topicConfigSerializeWrapper` body (compressed bodies are refused).
    fn register_over_wire(&self, req: &RemotingCommand) -> RemotingCommand {
        let (Some(cluster), Some(name), Some(addr)) = (
            req.ext("clusterName"),
            req.ext("brokerName"),
            req.ext("brokerAddr"),
        ) else {
            return missing_field(req, "clusterName, brokerName and brokerAddr");
        };
        if req.ext_bool("compressed") == Some(true) {
            return RemotingCommand::response_to(
                req,
                codes::SYSTEM_ERROR,
                Some("compressed broker registrations are not supported by OpenDMS".into()),
            );
        }
        let mut topics = BTreeMap::new();
        if !req.body.is_empty() {
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return RemotingCommand::response_to(
                    req,
                    codes::SYSTEM_ERROR,
                    Some("the registration body is not JSON".into()),
                );
            };
            if let Some(table) = body
                .pointer("/topicConfigSerializeWrapper/topicConfigTable")
                .and_then(Value::as_object)
            {
                for (topic, c) in table {
                    let n = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(0) as i32;
                    topics.insert(
                        topic.clone(),
                        QueueData {
                            read_queue_nums: n("readQueueNums"),
                            write_queue_nums: n("writeQueueNums"),
                            perm: n("perm"),
                            topic_sys_flag: n("topicSysFlag"),
                        },
                    );
                }
            }
        }
        self.register(BrokerRegistration {
            cluster: cluster.to_string(),
            broker_name: name.to_string(),
            broker_id: req.ext_i64("brokerId").unwrap_or(0),
            addr: addr.to_string(),
            topics,
        });
        RemotingCommand::response_to(req, codes::SUCCESS, None)
    }
}

fn missing_field(req: &RemotingCommand, what: &str) -> RemotingCommand {
    RemotingCommand::response_to(
        req,
        codes::SYSTEM_ERROR,
        Some(format!("the request header lacks {what}")),
    )
}

/// `BrokerData` as fastjson writes it: the broker-id map keys unquoted (`{0:"addr"}`), which
/// every client parses (Apache 4.9.7's name server answers so to every client version, the
/// `acceptStandardJsonOnly` ones included; measured). `enableActingMaster` is a RocketMQ 5.x
/// field 4.x clients ignore; the Rust client 1.0 refuses a route without it (its `BrokerData`
/// requires the field), so we write it as a 5.x name server does.
fn broker_data(cluster: &str, name: &str, addrs: &BTreeMap<i64, String>) -> String {
    let mut a = String::from("{");
    for (i, (id, addr)) in addrs.iter().enumerate() {
        if i > 0 {
            a.push(',');
        }
        let _ = write!(a, "{id}:{}", json!(addr));
    }
    a.push('}');
    format!(
        "{{\"brokerAddrs\":{a},\"brokerName\":{},\"cluster\":{},\"enableActingMaster\":false}}",
        json!(name),
        json!(cluster)
    )
}

fn route_json(r: &Routes, queues: &BTreeMap<String, QueueData>) -> String {
    let mut brokers = Vec::new();
    let mut queue_datas = Vec::new();
    for (name, q) in queues {
        queue_datas.push(json!({
            "brokerName": name,
            "perm": q.perm,
            "readQueueNums": q.read_queue_nums,
            "topicSysFlag": q.topic_sys_flag,
            "writeQueueNums": q.write_queue_nums,
        }));
        if let Some((cluster, addrs)) = r.brokers.get(name) {
            brokers.push(broker_data(cluster, name, addrs));
        }
    }
    format!(
        "{{\"brokerDatas\":[{}],\"filterServerTable\":{{}},\"queueDatas\":{}}}",
        brokers.join(","),
        Value::Array(queue_datas)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, topics: &[&str]) -> BrokerRegistration {
        BrokerRegistration {
            cluster: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_id: 0,
            addr: format!(
                "127.0.0.1:{}",
                if name == "broker-a" { 10911 } else { 10921 }
            ),
            topics: topics
                .iter()
                .map(|t| {
                    (
                        t.to_string(),
                        QueueData {
                            read_queue_nums: 4,
                            write_queue_nums: 4,
                            perm: 6,
                            topic_sys_flag: 0,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn routes_follow_registrations() {
        let ns = NameServer::default();
        ns.register(reg("broker-a", &["t1", "t2"]));
        ns.register(reg("broker-b", &["t1"]));
        let r = ns.routes.read();
        let json = route_json(&r, &r.topics["t1"]);
        assert!(
            json.contains("\"brokerAddrs\":{0:\"127.0.0.1:10911\"}"),
            "{json}"
        );
        assert!(
            json.contains("\"brokerAddrs\":{0:\"127.0.0.1:10921\"}"),
            "{json}"
        );
        assert_eq!(json.matches("\"perm\":6").count(), 2);
        drop(r);
        ns.register(reg("broker-a", &["t1"]));
        assert_eq!(ns.topics(), ["t1"]);
        ns.unregister("broker-b", 0);
        assert_eq!(ns.routes.read().topics["t1"].len(), 1);
    }

    #[test]
    fn unknown_topics_and_keys_get_apache_remarks() {
        let ns = NameServer::default();
        let mut req = RemotingCommand::request(codes::GET_ROUTEINFO_BY_TOPIC, 5);
        req.set_ext("topic", "nope");
        let resp = ns.route_info(&req);
        assert_eq!(resp.code, codes::TOPIC_NOT_EXIST);
        assert!(resp
            .remark
            .unwrap()
            .starts_with("No topic route info in name server for the topic: nope\nSee "));
        let mut req = RemotingCommand::request(codes::GET_KV_CONFIG, 6);
        req.set_ext("namespace", "ORDER_TOPIC_CONFIG");
        req.set_ext("key", "t");
        let resp = ns.get_kv(&req);
        assert_eq!(resp.code, codes::QUERY_NOT_FOUND);
        assert_eq!(
            resp.remark.as_deref(),
            Some("No config item, Namespace: ORDER_TOPIC_CONFIG Key: t")
        );
    }
}
