//! Topics of an instance, as the broker has them (whoever created them: API or client).

use engine::{EngineError, NewTopic, TopicChange};
use tracing::info;

use super::ControlPlane;
use crate::error::ControlError;
use crate::model::*;
use crate::validation::TopicRules;

/// A topic the broker refused to create because one of that name exists.
fn exists_or(e: EngineError, name: &str) -> ControlError {
    match e {
        EngineError::AlreadyExists(_) => ControlError::TopicExists(name.to_string()),
        other => other.into(),
    }
}

impl ControlPlane {
    /// Every topic of an instance, by name, with the instance's document.
    pub async fn topics(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, Vec<TopicInfo>), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        Ok((doc, admin.topics()?))
    }

    pub async fn topic(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<TopicInfo>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        Ok(admin.topic(name)?)
    }

    /// Offsets of every partition of a topic; `None` if it does not exist.
    pub async fn topic_offsets(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<Vec<PartitionOffsets>>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        Ok(admin.partition_offsets(name)?)
    }

    /// Creates a topic through the Huawei API under the rules of the API generation the
    /// request came in on. Answers its name.
    pub async fn create_topic(
        &self,
        project_id: &str,
        id: &str,
        req: &TopicRequest,
        rules: &TopicRules,
    ) -> Result<String, ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let name = req.name.clone().unwrap_or_default();
        rules.check_name(&name)?;
        let partitions = req.partitions.unwrap_or(3);
        rules.check_partitions(partitions)?;
        let max_replicas = i64::from(doc.broker_num.clamp(1, 3));
        let replication = req.replication.unwrap_or(max_replicas);
        if !(1..=max_replicas).contains(&replication) {
            return Err(ControlError::TopicReplicas(max_replicas));
        }
        let retention = req.retention_hours.unwrap_or(72);
        rules.check_retention(retention)?;
        let topic = NewTopic {
            name: name.clone(),
            // Both are within their rules' small ranges.
            partitions: i32::try_from(partitions).unwrap_or(i32::MAX),
            replication: i16::try_from(replication).unwrap_or(i16::MAX),
            retention_hours: Some(retention),
            sync_flush: req.sync_flush == Some(true),
            sync_replication: req.sync_replication == Some(true),
            other_configs: req.other_configs.iter().cloned().collect(),
        };
        admin
            .create_topic(topic)
            .await
            .map_err(|e| exists_or(e, &name))?;
        info!(instance = %id, topic = %name, partitions, "topic created through the api");
        Ok(name)
    }

    /// Deletes topics one by one; answers (name, deleted) for each.
    pub async fn delete_topics(
        &self,
        project_id: &str,
        id: &str,
        names: &[String],
    ) -> Result<Vec<(String, bool)>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        let mut out = Vec::new();
        for n in names {
            let ok = admin.delete_topic(n).await;
            if let Err(e) = &ok {
                info!(instance = %id, topic = %n, error = %e, "topic not deleted");
            }
            out.push((n.clone(), ok.is_ok()));
        }
        Ok(out)
    }

    /// Changes topics (`update_instance_topic`). Every entry is checked first, so that a bad
    /// entry changes nothing.
    pub async fn update_topics(
        &self,
        project_id: &str,
        id: &str,
        entries: &[TopicUpdate],
        rules: &TopicRules,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        let mut changes = Vec::new();
        for e in entries {
            let name = e.name.clone().unwrap_or_default();
            let current = admin
                .topic(&name)?
                .ok_or_else(|| ControlError::Refused(format!("topic {name:?} does not exist")))?;
            if let Some(r) = e.retention_hours {
                rules.check_retention(r)?;
            }
            let partitions = match e.new_partitions {
                None => None,
                Some(p) if p > i64::from(current.partitions) && p <= rules.max_partitions => {
                    Some(i32::try_from(p).unwrap_or(i32::MAX))
                }
                Some(_) => return Err(ControlError::TopicPartitions(rules.max_partitions)),
            };
            let change = TopicChange {
                retention_hours: e.retention_hours,
                sync_flush: e.sync_flush,
                sync_replication: e.sync_replication,
                other_configs: e.other_configs.iter().cloned().collect(),
                partitions,
            };
            changes.push((name, change));
        }
        for (name, change) in changes {
            admin.change_topic(&name, change).await?;
        }
        Ok(())
    }

    /// Creates a topic with explicit settings and a remark (Alibaba `CreateTopic`; its
    /// façade checks Alibaba's rules).
    pub async fn create_topic_with_remark(
        &self,
        project_id: &str,
        id: &str,
        mut topic: NewTopic,
        remark: &str,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let quota = doc.ali.topic_quota;
        let count = i64::try_from(admin.topics()?.len()).unwrap_or(i64::MAX);
        if quota > 0 && count >= quota {
            return Err(ControlError::Refused(format!(
                "the instance allows at most {quota} topics"
            )));
        }
        let brokers = i16::try_from(doc.broker_num).unwrap_or(i16::MAX);
        topic.replication = topic.replication.min(brokers);
        let name = topic.name.clone();
        admin
            .create_topic(topic)
            .await
            .map_err(|e| exists_or(e, &name))?;
        if !remark.is_empty() {
            let remark = remark.to_string();
            self.edit_doc(project_id, id, move |d| {
                d.topic_remarks.insert(name, remark);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes one topic and its remark.
    pub async fn delete_topic(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        admin.delete_topic(name).await?;
        let name = name.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.topic_remarks.remove(&name);
            Ok(())
        })
        .await
    }

    /// Grows a topic to `total` partitions.
    pub async fn set_partitions(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
        total: i32,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        let change = TopicChange {
            partitions: Some(total),
            ..TopicChange::default()
        };
        Ok(admin.change_topic(name, change).await?)
    }

    pub async fn set_topic_remark(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
        remark: &str,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        if admin.topic(topic)?.is_none() {
            return Err(ControlError::Refused(format!(
                "topic {topic:?} does not exist"
            )));
        }
        let (topic, remark) = (topic.to_string(), remark.to_string());
        self.edit_doc(project_id, id, move |d| {
            d.topic_remarks.insert(topic, remark);
            Ok(())
        })
        .await
    }
}
