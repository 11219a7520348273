//! What only RocketMQ instances have (seed 001 5.1.7–5.6): brokers, topics of message
//! queues, subscription groups with their offsets and online clients, messages, traces,
//! dead letters, and the broker's ACL users. Everything is read from and written to the
//! running brokers; the control plane keeps no copy.

use std::sync::Arc;

use engine::mq::{
    AclUser, DirectConsumeResult, MqClient, MqMessage, MqQueueLag, MqQueueOffset, MqQueueOffsets,
    MqSettings, MqTopic, MqTraceRecord, NewMqTopic, OutgoingMessage, ResourcePerm, SentMessage,
    SubscriptionGroup, TopicPermission,
};
use engine::{BrokerAdmin, EngineError};

use super::{Caller, ControlPlane};
use crate::catalog;
use crate::error::ControlError;
use crate::model::*;
use crate::validation;

/// How many messages a time-range query reads at most (the API pages over them).
const MESSAGE_QUERY_MAX: usize = 2048;

/// A topic to create (seed 001 5.3.1 / `CreateTopicOrBatchDeleteTopicReq`).
#[derive(Clone, Debug, Default)]
pub struct MqTopicRequest {
    pub name: Option<String>,
    pub brokers: Option<Vec<String>>,
    /// Queues on each broker: 1–50, default 8.
    pub queue_num: Option<i64>,
    /// Per-broker queue numbers (the SDK's `queues`), instead of `brokers` + `queue_num`.
    pub queues: Vec<(String, i64)>,
    pub permission: Option<String>,
}

/// Changes to a topic (seed 001 5.3.4).
#[derive(Clone, Debug, Default)]
pub struct MqTopicChange {
    pub read_queue_num: Option<i64>,
    pub write_queue_num: Option<i64>,
    pub permission: Option<String>,
}

/// A consumer group as seed 001's ConsumerGroup gives it; `None` keeps (or defaults) a field.
#[derive(Clone, Debug, Default)]
pub struct MqGroupRequest {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub broadcast: Option<bool>,
    pub brokers: Option<Vec<String>>,
    pub retry_max_time: Option<i64>,
    pub from_beginning: Option<bool>,
}

/// An ACL user as seed 001's User gives it; on a change `None` keeps a field.
#[derive(Clone, Default)]
pub struct AclUserRequest {
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub white_remote_address: Option<String>,
    pub admin: Option<bool>,
    pub default_topic_perm: Option<String>,
    pub default_group_perm: Option<String>,
    pub topic_perms: Option<Vec<ResourcePerm>>,
    pub group_perms: Option<Vec<ResourcePerm>>,
}

/// One user's permission on a topic or group (5.5.6 / 5.5.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    pub access_key: String,
    pub white_remote_address: String,
    pub admin: bool,
    pub perm: String,
}

/// Messages of a time range or an id (5.4.1).
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    pub topic: String,
    pub msg_id: Option<String>,
    /// A message key (`KEYS`), the SDK's `key`.
    pub key: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub queue: Option<i32>,
}

/// The seed's permission names for a topic: `all` (publish and subscribe), `pub`, `sub`.
pub fn topic_permission(name: &str) -> Result<TopicPermission, ControlError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(TopicPermission::All),
        "pub" => Ok(TopicPermission::Pub),
        "sub" => Ok(TopicPermission::Sub),
        other => Err(ControlError::InvalidParameter(format!(
            "permission {other:?}: must be all, pub or sub"
        ))),
    }
}

pub fn permission_name(p: TopicPermission) -> &'static str {
    match p {
        TopicPermission::All => "all",
        TopicPermission::Pub => "pub",
        TopicPermission::Sub => "sub",
        TopicPermission::Deny => "deny",
    }
}

impl ControlPlane {
    /// The record of a RocketMQ instance of the project; another engine's is refused.
    pub(super) async fn rocketmq_record(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<store::InstanceRecord, ControlError> {
        self.record_of_engine(project_id, id, EngineKind::Rocketmq)
            .await
    }

    /// The admin handle of a running RocketMQ instance that has consumer group `group`.
    async fn group_admin(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
    ) -> Result<Arc<dyn BrokerAdmin>, ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        if !admin.subscription_groups()?.iter().any(|g| g.name == group) {
            return Err(ControlError::GroupNotFound(group.to_string()));
        }
        Ok(admin)
    }

    /// The document and admin handle of a running RocketMQ instance of the project.
    pub(super) async fn rocketmq_admin(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, Arc<dyn BrokerAdmin>), ControlError> {
        let r = self.rocketmq_record(project_id, id).await?;
        self.admin_of_running(&r)
    }

    /// Records a finished job of an operation that answers a `job_id` (batch deletes and
    /// changes), as a background task.
    pub async fn record_job(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
        params: &str,
    ) -> Result<String, ControlError> {
        self.record_done_task(id, caller, name, params).await
    }

    // ---- brokers (5.1.7) -------------------------------------------------------------------

    /// The brokers of a running instance with their addresses, in order.
    pub async fn rocketmq_brokers(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, ControlError> {
        let (doc, admin) = self.rocketmq_admin(project_id, id).await?;
        Ok(admin
            .broker_names()?
            .into_iter()
            .zip(doc.listeners.iter().cloned())
            .collect())
    }

    // ---- topics (5.3) ----------------------------------------------------------------------

    pub async fn mq_topics(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<MqTopic>, ControlError> {
        Ok(self
            .rocketmq_admin(project_id, id)
            .await?
            .1
            .mq_topics(false)?)
    }

    pub async fn mq_topic(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<MqTopic, ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        admin
            .mq_topics(true)?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ControlError::Refused(format!("topic {name} does not exist")))
    }

    /// Creates a topic on the brokers named (every broker when none), `queue_num` queues
    /// on each.
    pub async fn create_mq_topic(
        &self,
        project_id: &str,
        id: &str,
        req: &MqTopicRequest,
    ) -> Result<MqTopic, ControlError> {
        let name = req.name.as_deref().unwrap_or("");
        validation::check_mq_name("topic", name)?;
        let permission = topic_permission(req.permission.as_deref().unwrap_or("all"))?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        if admin.mq_topics(true)?.iter().any(|t| t.name == name) {
            return Err(ControlError::TopicExists(name.to_string()));
        }
        let mut plan: Vec<(Vec<String>, i32)> = Vec::new();
        if req.queues.is_empty() {
            let queues = req.queue_num.unwrap_or(8);
            validation::check_queue_num("queue_num", queues)?;
            plan.push((req.brokers.clone().unwrap_or_default(), queues as i32));
        } else {
            for (broker, queues) in &req.queues {
                validation::check_queue_num("queues.queue_num", *queues)?;
                plan.push((vec![broker.clone()], *queues as i32));
            }
        }
        let known = admin.broker_names()?;
        for (brokers, _) in &plan {
            if let Some(b) = brokers.iter().find(|b| !known.contains(b)) {
                return Err(ControlError::InvalidParameter(format!(
                    "brokers: {b} is not a broker of the instance ({})",
                    known.join(", ")
                )));
            }
        }
        let mut created = None;
        for (brokers, queues) in plan {
            created = Some(
                admin
                    .put_mq_topic(NewMqTopic {
                        name: name.to_string(),
                        brokers,
                        read_queues: queues,
                        write_queues: queues,
                        permission,
                    })
                    .await?,
            );
        }
        tracing::info!(instance = %id, topic = name, "topic created");
        created.ok_or_else(|| ControlError::Internal("no topic was created".into()))
    }

    /// Changes a topic's queue numbers (per broker) or permission where it is.
    pub async fn change_mq_topic(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
        change: &MqTopicChange,
    ) -> Result<(), ControlError> {
        let current = self.mq_topic(project_id, id, name).await?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let first = current.brokers.first();
        let read = match change.read_queue_num {
            Some(n) => {
                validation::check_queue_num("read_queue_num", n)?;
                n as i32
            }
            None => first.map_or(8, |b| b.read_queues),
        };
        let write = match change.write_queue_num {
            Some(n) => {
                validation::check_queue_num("write_queue_num", n)?;
                n as i32
            }
            None => first.map_or(8, |b| b.write_queues),
        };
        let permission = match change.permission.as_deref() {
            Some(p) => topic_permission(p)?,
            None => current.permission,
        };
        admin
            .put_mq_topic(NewMqTopic {
                name: name.to_string(),
                brokers: Vec::new(),
                read_queues: read,
                write_queues: write,
                permission,
            })
            .await?;
        tracing::info!(instance = %id, topic = name, read, write, "topic changed");
        Ok(())
    }

    /// Deletes topics; every one must exist.
    pub async fn delete_mq_topics(
        &self,
        caller: &Caller,
        id: &str,
        names: &[String],
    ) -> Result<String, ControlError> {
        if names.is_empty() {
            return Err(ControlError::InvalidParameter(
                "topics: the list is empty".into(),
            ));
        }
        let (_, admin) = self.rocketmq_admin(&caller.project_id, id).await?;
        let existing = admin.mq_topics(false)?;
        if let Some(missing) = names
            .iter()
            .find(|n| !existing.iter().any(|t| &t.name == *n))
        {
            return Err(ControlError::Refused(format!(
                "topic {missing} does not exist"
            )));
        }
        for n in names {
            admin.delete_mq_topic(n).await?;
        }
        tracing::info!(instance = %id, topics = ?names, "topics deleted");
        let params = serde_json::json!({ "topics": names }).to_string();
        self.record_done_task(id, caller, "deleteTopic", &params)
            .await
    }

    pub async fn mq_topic_offsets(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
    ) -> Result<Vec<MqQueueOffsets>, ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        admin
            .mq_queue_offsets(topic)?
            .ok_or_else(|| ControlError::Refused(format!("topic {topic} does not exist")))
    }

    pub async fn mq_topic_groups(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
    ) -> Result<Vec<String>, ControlError> {
        self.mq_topic(project_id, id, topic).await?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        Ok(admin.topic_groups(topic)?)
    }

    // ---- consumer groups (5.2) -------------------------------------------------------------

    /// Every group, and whether any of its clients is online.
    pub async fn mq_groups(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<(SubscriptionGroup, bool)>, ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        admin
            .subscription_groups()?
            .into_iter()
            .map(|g| {
                let online = !admin.group_clients(&g.name)?.is_empty();
                Ok((g, online))
            })
            .collect()
    }

    /// One group, and whether any of its clients is online.
    pub async fn mq_group(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(SubscriptionGroup, bool), ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let g = admin
            .subscription_groups()?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| ControlError::GroupNotFound(name.to_string()))?;
        let online = !admin.group_clients(name)?.is_empty();
        Ok((g, online))
    }

    /// Creates a group on the brokers named (every broker when none).
    pub async fn create_mq_group(
        &self,
        project_id: &str,
        id: &str,
        req: &MqGroupRequest,
    ) -> Result<String, ControlError> {
        let name = req.name.clone().unwrap_or_default();
        validation::check_mq_name("group", &name)?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        if admin.subscription_groups()?.iter().any(|g| g.name == name) {
            return Err(ControlError::GroupExists(name));
        }
        let group = group_of(&name, None, req)?;
        check_brokers(&*admin, &group.brokers)?;
        admin.put_subscription_group(group).await?;
        tracing::info!(instance = %id, group = %name, "consumer group created");
        Ok(name)
    }

    /// Changes groups; every one must exist. Fields not given keep their values.
    pub async fn change_mq_groups(
        &self,
        project_id: &str,
        id: &str,
        changes: &[(String, MqGroupRequest)],
    ) -> Result<(), ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let existing = admin.subscription_groups()?;
        let mut updated = Vec::new();
        for (name, req) in changes {
            let current = existing
                .iter()
                .find(|g| &g.name == name)
                .ok_or_else(|| ControlError::GroupNotFound(name.clone()))?;
            if req.name.as_deref().is_some_and(|n| n != name) {
                return Err(ControlError::InvalidParameter(format!(
                    "name: a consumer group cannot be renamed ({name})"
                )));
            }
            let group = group_of(name, Some(current), req)?;
            check_brokers(&*admin, &group.brokers)?;
            updated.push(group);
        }
        for group in updated {
            tracing::info!(instance = %id, group = %group.name, "consumer group changed");
            admin.put_subscription_group(group).await?;
        }
        Ok(())
    }

    /// Deletes groups with their offsets; every one must exist.
    pub async fn delete_mq_groups(
        &self,
        project_id: &str,
        id: &str,
        names: &[String],
    ) -> Result<(), ControlError> {
        if names.is_empty() {
            return Err(ControlError::InvalidParameter(
                "groups: the list is empty".into(),
            ));
        }
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let existing = admin.subscription_groups()?;
        if let Some(missing) = names
            .iter()
            .find(|n| !existing.iter().any(|g| &g.name == *n))
        {
            return Err(ControlError::GroupNotFound(missing.clone()));
        }
        for n in names {
            admin.delete_subscription_group(n).await?;
        }
        tracing::info!(instance = %id, groups = ?names, "consumer groups deleted");
        Ok(())
    }

    /// Topics a group consumes (5.2.7 without `topic`).
    pub async fn mq_group_topics(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
    ) -> Result<Vec<String>, ControlError> {
        let admin = self.group_admin(project_id, id, group).await?;
        Ok(admin.group_topics(group)?)
    }

    /// Where a group stands in every queue of a topic (5.2.7 with `topic`).
    pub async fn mq_group_lag(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
        topic: &str,
    ) -> Result<Vec<MqQueueLag>, ControlError> {
        let admin = self.group_admin(project_id, id, group).await?;
        admin
            .mq_group_lag(group, topic)
            .await
            .map_err(|e| topic_missing(e, topic))
    }

    /// The online clients of a group (the SDK's `show_consumer_connections`).
    pub async fn mq_group_clients(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
    ) -> Result<Vec<MqClient>, ControlError> {
        let admin = self.group_admin(project_id, id, group).await?;
        Ok(admin.group_clients(group)?)
    }

    /// 5.2.8: moves a group's offsets on a topic (every topic it consumes when none is
    /// given) to a time; online clients are told at once.
    pub async fn reset_mq_offsets(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
        topic: Option<&str>,
        timestamp_ms: i64,
    ) -> Result<Vec<MqQueueOffset>, ControlError> {
        if !(0..=crate::plane::now_ms() + 365 * 86_400_000).contains(&timestamp_ms) {
            return Err(ControlError::InvalidTimestamp(timestamp_ms));
        }
        let admin = self.group_admin(project_id, id, group).await?;
        let topics = match topic.filter(|t| !t.is_empty()) {
            Some(t) => vec![t.to_string()],
            None => admin.group_topics(group)?,
        };
        let mut out = Vec::new();
        for t in topics {
            let queues = admin
                .reset_group_offsets(group, &t, timestamp_ms)
                .await
                .map_err(|e| topic_missing(e, &t))?;
            out.extend(queues);
        }
        tracing::info!(instance = %id, group, ?topic, timestamp_ms, "consumer offsets reset");
        Ok(out)
    }

    // ---- messages (5.4) --------------------------------------------------------------------

    /// 5.4.1: messages of a topic by id, by key, or stored in a time range.
    pub async fn mq_messages(
        &self,
        project_id: &str,
        id: &str,
        q: &MessageQuery,
    ) -> Result<Vec<MqMessage>, ControlError> {
        if q.topic.is_empty() {
            return Err(ControlError::InvalidParameter("topic is required".into()));
        }
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        if !admin.mq_topics(true)?.iter().any(|t| t.name == q.topic) {
            return Err(ControlError::Refused(format!(
                "topic {} does not exist",
                q.topic
            )));
        }
        let mut found = if let Some(msg_id) = q.msg_id.as_deref().filter(|m| !m.is_empty()) {
            admin.messages_by_id(Some(&q.topic), msg_id).await?
        } else {
            let (start, end) = match (q.start_ms, q.end_ms) {
                (Some(s), Some(e)) if s <= e => (s, e),
                (Some(s), Some(e)) => {
                    return Err(ControlError::InvalidParameter(format!(
                        "start_time {s} is after end_time {e}"
                    )))
                }
                // Table 5-66: mandatory when msg_id is not used.
                _ => {
                    return Err(ControlError::InvalidParameter(
                        "start_time and end_time are required when msg_id is not given".into(),
                    ))
                }
            };
            admin
                .messages_between(&q.topic, start, end, MESSAGE_QUERY_MAX)
                .await?
        };
        if let Some(key) = q.key.as_deref().filter(|k| !k.is_empty()) {
            found.retain(|m| {
                m.property("KEYS")
                    .is_some_and(|ks| ks.split(' ').any(|k| k == key))
            });
        }
        if let Some(queue) = q.queue {
            found.retain(|m| m.queue_id == queue);
        }
        found.sort_by(|a, b| {
            (a.store_ms, a.queue_id, a.queue_offset).cmp(&(b.store_ms, b.queue_id, b.queue_offset))
        });
        Ok(found)
    }

    /// The SDK's `send_message`: publishes one message as a producer would.
    pub async fn send_mq_message(
        &self,
        project_id: &str,
        id: &str,
        message: OutgoingMessage,
    ) -> Result<SentMessage, ControlError> {
        if message.topic.is_empty() {
            return Err(ControlError::InvalidParameter("topic is required".into()));
        }
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        admin.send_message(message).await.map_err(|e| match e {
            EngineError::NotFound(m) => {
                ControlError::Refused(format!("{m} does not exist or cannot be written"))
            }
            other => other.into(),
        })
    }

    /// 5.4.3: dead letters of a DLQ topic by offset id or unique key.
    pub async fn export_dead_letters(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
        ids: &[String],
    ) -> Result<Vec<MqMessage>, ControlError> {
        check_dlq_topic(topic)?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let mut out = Vec::new();
        for msg_id in ids {
            for m in admin.messages_by_id(Some(topic), msg_id).await? {
                if !out.iter().any(|o: &MqMessage| o.msg_id == m.msg_id) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// 5.4.4: publishes dead letters again to their first topic; one result per id.
    pub async fn resend_dead_letters(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Result<SentMessage, String>)>, ControlError> {
        check_dlq_topic(topic)?;
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let mut out = Vec::new();
        for msg_id in ids {
            let r = admin
                .resend_dead_letter(topic, msg_id)
                .await
                .map_err(|e| e.to_string());
            out.push((msg_id.clone(), r));
        }
        Ok(out)
    }

    /// 5.4.5: hands each message to one online client of a group; one result per id. An
    /// offline group is refused as a whole (DMS.50050004).
    pub async fn verify_consumption(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
        client_id: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Result<DirectConsumeResult, String>)>, ControlError> {
        let admin = self.group_admin(project_id, id, group).await?;
        let clients = admin.group_clients(group)?;
        if clients.is_empty() {
            return Err(ControlError::GroupOffline(group.to_string()));
        }
        // The document's example names the client by its IP; a RocketMQ client id is
        // `ip@instance`. Either names one online client.
        let client = clients
            .iter()
            .find(|c| c.client_id == client_id)
            .or_else(|| {
                clients
                    .iter()
                    .find(|c| c.client_id.split('@').next() == Some(client_id))
            })
            .ok_or_else(|| {
                ControlError::Refused(format!(
                    "client {client_id} of consumer group {group} is not online"
                ))
            })?;
        let mut out = Vec::new();
        for msg_id in ids {
            let r = admin
                .consume_directly(group, &client.client_id, msg_id)
                .await
                .map_err(|e| e.to_string());
            out.push((msg_id.clone(), r));
        }
        Ok(out)
    }

    /// 5.4.2: the trace records of a message.
    pub async fn mq_trace(
        &self,
        project_id: &str,
        id: &str,
        msg_id: &str,
    ) -> Result<Vec<MqTraceRecord>, ControlError> {
        if msg_id.is_empty() {
            return Err(ControlError::InvalidParameter("msg_id is required".into()));
        }
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        Ok(admin.message_trace(msg_id).await?)
    }

    // ---- ACL users (5.5) -------------------------------------------------------------------

    pub async fn acl_users(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<AclUser>, ControlError> {
        Ok(self.rocketmq_admin(project_id, id).await?.1.acl_users()?)
    }

    pub async fn acl_user(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<AclUser, ControlError> {
        self.acl_users(project_id, id)
            .await?
            .into_iter()
            .find(|u| u.access_key == name)
            .ok_or_else(|| ControlError::Refused(format!("user {name} does not exist")))
    }

    /// 5.5.1: a new user, effective in every broker at once.
    pub async fn create_acl_user(
        &self,
        project_id: &str,
        id: &str,
        req: &AclUserRequest,
    ) -> Result<AclUser, ControlError> {
        let (doc, admin) = self.rocketmq_admin(project_id, id).await?;
        if !doc.acl_enabled {
            return Err(ControlError::NotSupported(
                "the instance's ACL is off: enable_acl must be true to manage users".into(),
            ));
        }
        let access_key = req.access_key.clone().unwrap_or_default();
        validation::check_access_key(&access_key)?;
        if admin
            .acl_users()?
            .iter()
            .any(|u| u.access_key == access_key)
        {
            return Err(ControlError::Refused(format!(
                "user {access_key} already exists"
            )));
        }
        let secret = req.secret_key.clone().unwrap_or_default();
        validation::check_secret_key(&access_key, &secret)?;
        let user = AclUser {
            access_key,
            secret_key: secret,
            white_remote_address: String::new(),
            admin: false,
            default_topic_perm: "DENY".into(),
            default_group_perm: "DENY".into(),
            topic_perms: Vec::new(),
            group_perms: Vec::new(),
        };
        let user = apply_user_request(user, req)?;
        admin.put_acl_user(user.clone()).await?;
        Ok(user)
    }

    /// 5.5.3: changes a user; fields not given keep their values.
    pub async fn change_acl_user(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
        req: &AclUserRequest,
    ) -> Result<AclUser, ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        let current = admin
            .acl_users()?
            .into_iter()
            .find(|u| u.access_key == name)
            .ok_or_else(|| ControlError::Refused(format!("user {name} does not exist")))?;
        if req
            .access_key
            .as_deref()
            .is_some_and(|k| !k.is_empty() && k != name)
        {
            return Err(ControlError::InvalidParameter(format!(
                "access_key: a user cannot be renamed ({name})"
            )));
        }
        if let Some(secret) = req
            .secret_key
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "*****")
        {
            validation::check_secret_key(name, secret)?;
        }
        let user = apply_user_request(current, req)?;
        admin.put_acl_user(user.clone()).await?;
        Ok(user)
    }

    pub async fn delete_acl_user(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.rocketmq_admin(project_id, id).await?;
        if !admin.delete_acl_user(name).await? {
            return Err(ControlError::Refused(format!("user {name} does not exist")));
        }
        Ok(())
    }

    /// 5.5.6 / 5.5.7: the users with an explicit permission on a topic (`group`: false) or
    /// a group.
    pub async fn access_policies(
        &self,
        project_id: &str,
        id: &str,
        resource: &str,
        group: bool,
    ) -> Result<Vec<AccessPolicy>, ControlError> {
        let users = self.acl_users(project_id, id).await?;
        Ok(users
            .into_iter()
            .filter_map(|u| {
                let perms = if group {
                    &u.group_perms
                } else {
                    &u.topic_perms
                };
                perms
                    .iter()
                    .find(|p| p.name == resource)
                    .map(|p| AccessPolicy {
                        access_key: u.access_key.clone(),
                        white_remote_address: u.white_remote_address.clone(),
                        admin: u.admin,
                        perm: p.perm.clone(),
                    })
            })
            .collect())
    }

    /// Seed 001 5.1.5 `enable_acl`: switches the brokers' ACL at once and records it.
    pub(crate) async fn set_rocketmq_acl(
        &self,
        r: &store::InstanceRecord,
        enabled: bool,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.admin_of_running(r)?;
        admin.set_acl_enabled(enabled).await?;
        tracing::info!(instance = %r.id, enabled, "acl switched");
        Ok(())
    }
}

/// An engine's "no such topic" as the API's refusal naming it.
fn topic_missing(e: EngineError, topic: &str) -> ControlError {
    match e {
        EngineError::NotFound(_) => ControlError::Refused(format!("topic {topic} does not exist")),
        other => other.into(),
    }
}

/// Dead letters are in `%DLQ%<group>` topics (seed 001 5.4.3, 5.4.4).
fn check_dlq_topic(topic: &str) -> Result<(), ControlError> {
    if topic.starts_with("%DLQ%") {
        Ok(())
    } else {
        Err(ControlError::InvalidParameter(format!(
            "topic {topic:?}: dead letters are in a %DLQ%<group> topic"
        )))
    }
}

fn check_brokers(admin: &dyn BrokerAdmin, brokers: &[String]) -> Result<(), ControlError> {
    let known = admin.broker_names()?;
    match brokers.iter().find(|b| !known.contains(b)) {
        Some(b) => Err(ControlError::InvalidParameter(format!(
            "brokers: {b} is not a broker of the instance ({})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A group from a request, over its current settings (or RocketMQ's defaults).
fn group_of(
    name: &str,
    current: Option<&SubscriptionGroup>,
    req: &MqGroupRequest,
) -> Result<SubscriptionGroup, ControlError> {
    let retry = match req.retry_max_time {
        Some(n) if !(0..=16).contains(&n) => {
            return Err(ControlError::InvalidParameter(format!(
                "retry_max_time {n}: must be within 0-16"
            )))
        }
        Some(n) => n as i32,
        None => current.map_or(16, |c| c.retry_max_times),
    };
    Ok(SubscriptionGroup {
        name: name.to_string(),
        consume_enable: req
            .enabled
            .unwrap_or_else(|| current.is_none_or(|c| c.consume_enable)),
        broadcast: req
            .broadcast
            .unwrap_or_else(|| current.is_some_and(|c| c.broadcast)),
        retry_max_times: retry,
        consume_from_min: req
            .from_beginning
            .unwrap_or_else(|| current.is_some_and(|c| c.consume_from_min)),
        brokers: req
            .brokers
            .clone()
            .filter(|b| !b.is_empty())
            .or_else(|| current.map(|c| c.brokers.clone()))
            .unwrap_or_default(),
    })
}

/// A user with a request's fields applied (`*****`, the masked secret answers show, keeps
/// the secret).
fn apply_user_request(mut u: AclUser, req: &AclUserRequest) -> Result<AclUser, ControlError> {
    if let Some(s) = req
        .secret_key
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "*****")
    {
        u.secret_key = s.to_string();
    }
    if let Some(w) = &req.white_remote_address {
        u.white_remote_address = w.clone();
    }
    if let Some(a) = req.admin {
        u.admin = a;
    }
    if let Some(p) = &req.default_topic_perm {
        u.default_topic_perm = validation::check_acl_perm("default_topic_perm", p)?;
    }
    if let Some(p) = &req.default_group_perm {
        u.default_group_perm = validation::check_acl_perm("default_group_perm", p)?;
    }
    if let Some(list) = &req.topic_perms {
        u.topic_perms = list
            .iter()
            .map(|p| {
                validation::check_mq_name("topic", &p.name)?;
                Ok(ResourcePerm {
                    name: p.name.clone(),
                    perm: validation::check_acl_perm("topic_perms.perm", &p.perm)?,
                })
            })
            .collect::<Result<_, ControlError>>()?;
    }
    if let Some(list) = &req.group_perms {
        u.group_perms = list
            .iter()
            .map(|p| {
                validation::check_mq_name("group", &p.name)?;
                Ok(ResourcePerm {
                    name: p.name.clone(),
                    perm: validation::check_acl_perm("group_perms.perm", &p.perm)?,
                })
            })
            .collect::<Result<_, ControlError>>()?;
    }
    Ok(u)
}

/// A configuration parameter and its value (the SDK's `RocketMQConfigResp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigValue {
    pub param: &'static catalog::RocketmqConfigParam,
    pub value: String,
}

/// The value of a parameter in a document (its default when never changed).
fn config_value<'a>(doc: &'a InstanceDoc, p: &'a catalog::RocketmqConfigParam) -> &'a str {
    doc.rocketmq_configs
        .get(p.name)
        .map_or(p.default, String::as_str)
}

/// The brokers' live settings a document asks for.
pub(crate) fn mq_settings_of(doc: &InstanceDoc) -> MqSettings {
    let number = |name: &str| {
        catalog::ROCKETMQ_CONFIGS
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| config_value(doc, p).parse::<u64>().ok())
            .unwrap_or(0)
    };
    let flag = |name: &str| {
        catalog::ROCKETMQ_CONFIGS
            .iter()
            .find(|p| p.name == name)
            .is_some_and(|p| config_value(doc, p) == "true")
    };
    MqSettings {
        retention_hours: u32::try_from(number("fileReservedTime")).unwrap_or(u32::MAX),
        max_message_bytes: number("maxMessageSize"),
        auto_create_topics: flag("autoCreateTopicEnable"),
        auto_create_groups: flag("autoCreateSubscriptionGroup"),
    }
}

impl ControlPlane {
    /// The SDK's `show_rocket_mq_configs`: every parameter with the value the brokers use.
    pub async fn rocketmq_configs(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<ConfigValue>, ControlError> {
        let r = self.rocketmq_record(project_id, id).await?;
        let doc = InstanceDoc::of(&r)?;
        Ok(catalog::ROCKETMQ_CONFIGS
            .iter()
            .map(|p| ConfigValue {
                param: p,
                value: config_value(&doc, p).to_string(),
            })
            .collect())
    }

    /// The SDK's `update_rocket_mq_configs`: every value is checked before any is applied;
    /// the brokers take them at once and the instance keeps them across restarts.
    pub async fn update_rocketmq_configs(
        &self,
        project_id: &str,
        id: &str,
        changes: &[(String, String)],
    ) -> Result<(), ControlError> {
        if changes.is_empty() {
            return Err(ControlError::InvalidParameter(
                "rocketmq_configs: the list is empty".into(),
            ));
        }
        let mut checked = Vec::new();
        for (name, value) in changes {
            let p = catalog::ROCKETMQ_CONFIGS
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    ControlError::InvalidParameter(format!(
                        "rocketmq_configs: {name} is not a configurable parameter ({})",
                        catalog::ROCKETMQ_CONFIGS
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            let value = value.trim();
            let ok = match p.value_type {
                "boolean" => matches!(value, "true" | "false"),
                _ => value
                    .parse::<u64>()
                    .is_ok_and(|n| (p.min..=p.max).contains(&n)),
            };
            if !ok {
                return Err(ControlError::InvalidParameter(format!(
                    "rocketmq_configs: {name}={value:?} must be {}",
                    p.valid_values
                )));
            }
            checked.push((p.name.to_string(), value.to_string()));
        }
        let (mut doc, admin) = self.rocketmq_admin(project_id, id).await?;
        doc.rocketmq_configs.extend(checked.iter().cloned());
        admin.apply_mq_settings(mq_settings_of(&doc)).await?;
        self.edit_doc(project_id, id, move |d| {
            d.rocketmq_configs.extend(checked);
            Ok(())
        })
        .await?;
        tracing::info!(instance = %id, "rocketmq configuration changed");
        Ok(())
    }
}
