//! Alibaba's order-then-deploy lifecycle, upgrades, consumer groups and topic remarks.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::Engines;
use tracing::info;

use super::{now_ms, topic_error, Caller, ControlPlane};
use crate::catalog;
use crate::error::ControlError;
use crate::lifecycle::Transition;
use crate::model::*;
use crate::validation;

/// A topic to create, with its remark.
#[derive(Clone, Debug, Default)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i16,
    pub configs: BTreeMap<String, String>,
    pub remark: String,
}

/// Alibaba's order-then-deploy lifecycle, consumer groups and topic remarks.
impl ControlPlane {
    /// Records an order: an instance in `ORDERED` with no brokers yet. Answers
    /// (instance id, order id).
    pub async fn create_order(
        self: &Arc<Self>,
        caller: &Caller,
        req: &OrderRequest,
    ) -> Result<(String, String), ControlError> {
        if !(1..=2).contains(&(req.deploy_type - 3)) {
            return Err(ControlError::InvalidParameter(
                "DeployType: 4 (Internet and VPC) or 5 (VPC)".into(),
            ));
        }
        if req.disk_size_gb < 1 || req.disk_size_gb > 100_000 {
            return Err(ControlError::InvalidStorage(
                "DiskSize must be within 1-100000 GB".into(),
            ));
        }
        validation::check_tags(&req.tags)?;
        let id = uuid::Uuid::new_v4().to_string();
        // Alibaba order ids are 15 digits.
        let order_id = format!(
            "2{:014}",
            uuid::Uuid::new_v4().as_u128() % 100_000_000_000_000
        );
        let partitions = req.partition_num.unwrap_or(400).clamp(1, 100_000) as u32;
        let doc = InstanceDoc {
            engine_version: "2.2.0".into(),
            specification: format!(
                "alikafka {} io{}",
                req.spec_type.as_deref().unwrap_or("normal"),
                req.io_max.unwrap_or(20)
            ),
            product_id: format!("alikafka.{}", req.spec_type.as_deref().unwrap_or("normal")),
            resource_spec_code: req.io_max_spec.clone().unwrap_or_default(),
            broker_num: 3,
            storage_space_gb: req.disk_size_gb as u64,
            partition_num: partitions,
            storage_spec_code: if req.disk_type == "1" {
                catalog::ULTRA.into()
            } else {
                catalog::HIGH.into()
            },
            retention_policy: "time_base".into(),
            enterprise_project_id: "0".into(),
            user_id: caller.user_id.clone(),
            user_name: caller.user_name.clone(),
            maintain_begin: catalog::default_maintain_window().begin.into(),
            maintain_end: catalog::default_maintain_window().end.into(),
            order_id: order_id.clone(),
            ali: AliInstance {
                region_id: req.region_id.clone(),
                deploy_type: req.deploy_type,
                disk_type: req.disk_type.clone(),
                io_max: req.io_max.unwrap_or(20),
                io_max_spec: req.io_max_spec.clone().unwrap_or_default(),
                eip_max: req.eip_max.unwrap_or(0),
                spec_type: req.spec_type.clone().unwrap_or_else(|| "normal".into()),
                paid_type: req.paid_type,
                topic_quota: req.topic_quota.unwrap_or(50),
                ..AliInstance::default()
            },
            ..InstanceDoc::default()
        };
        let now = now_ms();
        let record = InstanceRecord {
            id: id.clone(),
            project_id: caller.project_id.clone(),
            engine: "kafka".into(),
            // Alibaba names a new instance after its id until it is renamed.
            name: id.clone(),
            status: InstanceStatus::Ordered.as_str().into(),
            status_reason: None,
            document: serde_json::to_value(&doc)
                .map_err(|e| ControlError::Internal(e.to_string()))?,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let tags: Vec<store::Tag> = req
            .tags
            .iter()
            .map(|t| store::Tag {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect();
        self.store.insert_instance(&record, &tags).await?;
        info!(instance = %id, order = %order_id, "instance ordered");
        Ok((id, order_id))
    }

    /// StartInstance: gives an ordered (or failed) instance addresses and starts its brokers.
    pub async fn deploy_instance(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        req: &DeployRequest,
    ) -> Result<(), ControlError> {
        let _guard = self.create_lock.lock().await;
        let mut r = self.record(&caller.project_id, id).await?;
        let status = InstanceStatus::of(&r);
        if !matches!(
            status,
            InstanceStatus::Ordered | InstanceStatus::CreateFailed
        ) {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let mut doc = InstanceDoc::of(&r)?;
        if let Some(name) = req.name.as_deref() {
            r.name = name.to_string();
        }
        doc.vpc_id = req.vpc_id.clone();
        doc.subnet_id = req.vswitch_id.clone();
        doc.ali.vswitch_id = req.vswitch_id.clone();
        doc.ali.zone_id = req.zone_id.clone();
        if let Some((user, password)) = &req.sasl_user {
            validation::check_username("Username", user)?;
            Engines::prepare_user(self.instance_dir(id), user.clone(), password.clone()).await?;
            doc.ssl_enable = true;
            doc.access_user = user.clone();
            doc.acl_enabled = true;
        }
        if doc.allowed_ips.is_empty() {
            // Alibaba opens the VPC port to every address until the list is changed.
            doc.allowed_ips
                .insert("vpc".into(), vec!["0.0.0.0/0".into()]);
        }
        let Some(listeners) = self.allocate_listeners(doc.broker_num).await? else {
            return Err(ControlError::Internal(format!(
                "no free broker addresses: the pool of {} addresses from {} is used up",
                self.config.broker_ip_pool_size, self.config.broker_ip_pool
            )));
        };
        doc.listeners = listeners.iter().map(|a| a.to_string()).collect();
        r.status = InstanceStatus::Creating.as_str().into();
        r.status_reason = None;
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        match self.store.update_instance(&r).await {
            Err(store::StoreError::DuplicateName) => {
                return Err(ControlError::DuplicateName(r.name))
            }
            other => other?,
        }
        drop(_guard);
        self.record_task(id, caller, Transition::Create, "").await;
        self.kick(id);
        Ok(())
    }

    /// Replaces parts of an instance's document (renames go through `update_instance`).
    pub(super) async fn edit_doc(
        &self,
        project_id: &str,
        id: &str,
        edit: impl FnOnce(&mut InstanceDoc) -> Result<(), ControlError>,
    ) -> Result<(), ControlError> {
        let mut r = self.record(project_id, id).await?;
        let mut doc = InstanceDoc::of(&r)?;
        edit(&mut doc)?;
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        self.store.update_instance(&r).await?;
        Ok(())
    }

    pub async fn set_topic_remark(
        &self,
        project_id: &str,
        id: &str,
        topic: &str,
        remark: &str,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        if admin.topic(topic).is_none() {
            return Err(ControlError::TopicRejected(format!(
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

    /// Creates a topic with explicit settings (the Alibaba rules are checked by its façade).
    pub async fn create_topic_raw(
        &self,
        project_id: &str,
        id: &str,
        spec: TopicSpec,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let quota = doc.ali.topic_quota;
        if quota > 0 && admin.topics().len() as i64 >= quota {
            return Err(ControlError::TopicRejected(format!(
                "the instance allows at most {quota} topics"
            )));
        }
        let replication = spec.replication.min(doc.broker_num as i16);
        admin
            .create_topic(
                spec.name.clone(),
                spec.partitions,
                replication,
                spec.configs,
            )
            .await
            .map_err(topic_error)?;
        if !spec.remark.is_empty() {
            let (topic, remark) = (spec.name, spec.remark);
            self.edit_doc(project_id, id, move |d| {
                d.topic_remarks.insert(topic, remark);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    pub async fn delete_topic(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        admin
            .delete_topic(name.to_string())
            .await
            .map_err(topic_error)?;
        let name = name.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.topic_remarks.remove(&name);
            Ok(())
        })
        .await
    }

    pub async fn set_partitions(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
        total: i32,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        admin
            .add_partitions(name.to_string(), total)
            .await
            .map_err(topic_error)
    }

    /// Declares a consumer group so that it is listed before any client joins it.
    pub async fn declare_group(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
        remark: &str,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        if doc.declared_groups.contains_key(group) || admin.group_ids().iter().any(|g| g == group) {
            return Err(ControlError::TopicRejected(format!(
                "consumer group {group:?} already exists"
            )));
        }
        admin.declare_group(group);
        let (group, remark) = (group.to_string(), remark.to_string());
        self.edit_doc(project_id, id, move |d| {
            d.declared_groups.insert(
                group,
                DeclaredGroup {
                    remark,
                    created_ms: now_ms(),
                },
            );
            Ok(())
        })
        .await
    }

    /// Deletes a group in the broker (it must have no members) and forgets its declaration.
    pub async fn delete_group(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let declared = doc.declared_groups.contains_key(group);
        match admin.delete_group(group) {
            0 => {}
            // GROUP_ID_NOT_FOUND: only declared, never used.
            69 if declared => {}
            69 => {
                return Err(ControlError::TopicRejected(format!(
                    "consumer group {group:?} does not exist"
                )))
            }
            68 => {
                return Err(ControlError::TopicRejected(format!(
                    "consumer group {group:?} has active members"
                )))
            }
            code => {
                return Err(ControlError::Internal(format!(
                    "deleting group {group:?}: kafka error {code}"
                )))
            }
        }
        let group = group.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.declared_groups.remove(&group);
            Ok(())
        })
        .await
    }

    /// Every group of an instance: declared ones and those the broker knows. Answers
    /// (name, remark, created ms, declared through the API).
    pub async fn groups(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<(String, String, i64, bool)>, ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let mut out: BTreeMap<String, (String, i64, bool)> = doc
            .declared_groups
            .iter()
            .map(|(g, d)| (g.clone(), (d.remark.clone(), d.created_ms, true)))
            .collect();
        for g in admin.group_ids() {
            out.entry(g).or_insert((String::new(), 0, false));
        }
        Ok(out.into_iter().map(|(g, (r, c, d))| (g, r, c, d)).collect())
    }

    pub async fn admin_for(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<(InstanceDoc, engine::KafkaAdmin), ControlError> {
        self.running_admin(project_id, id).await
    }
}

/// What an Alibaba upgrade order changes; every value may only grow.
#[derive(Clone, Debug, Default)]
pub struct UpgradeRequest {
    pub disk_size_gb: Option<i64>,
    pub io_max: Option<i64>,
    pub eip_max: Option<i64>,
    pub topic_quota: Option<i64>,
    pub partition_num: Option<i64>,
    pub spec_type: Option<String>,
}

impl ControlPlane {
    /// UpgradePrePayOrder / UpgradePostPayOrder: raises the ordered figures; a larger disk
    /// goes through the same extension as the Huawei API (`EXTENDING`, then the new quota).
    pub async fn upgrade_order(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        req: &UpgradeRequest,
    ) -> Result<(), ControlError> {
        let r = self.record(&caller.project_id, id).await?;
        let status = InstanceStatus::of(&r);
        if status != InstanceStatus::Running {
            return Err(ControlError::Busy(status.as_str().into()));
        }
        let doc = InstanceDoc::of(&r)?;
        let shrink = |name: &str, new: Option<i64>, current: i64| -> Result<(), ControlError> {
            match new {
                Some(n) if n < current => Err(ControlError::InvalidParameter(format!(
                    "{name} cannot go down: {n} is below the current {current}"
                ))),
                _ => Ok(()),
            }
        };
        shrink("DiskSize", req.disk_size_gb, doc.storage_space_gb as i64)?;
        shrink("IoMax", req.io_max, doc.ali.io_max)?;
        shrink("EipMax", req.eip_max, doc.ali.eip_max)?;
        shrink(
            "PartitionNum",
            req.partition_num,
            i64::from(doc.partition_num),
        )?;
        if let Some(q) = req.topic_quota {
            let topics = self
                .engines
                .admin(id)
                .map(|a| a.topics().len() as i64)
                .unwrap_or(0);
            shrink(
                "TopicQuota",
                Some(q),
                topics.max(doc.ali.topic_quota.min(q)),
            )?;
        }
        if doc.ali.spec_type == "professional" && req.spec_type.as_deref() == Some("normal") {
            return Err(ControlError::InvalidParameter(
                "SpecType cannot go from professional to normal".into(),
            ));
        }
        let changes = req.clone();
        self.edit_doc(&caller.project_id, id, move |d| {
            if let Some(v) = changes.io_max {
                d.ali.io_max = v;
            }
            if let Some(v) = changes.eip_max {
                d.ali.eip_max = v;
            }
            if let Some(v) = changes.topic_quota {
                d.ali.topic_quota = v;
            }
            if let Some(v) = changes.partition_num {
                d.partition_num = v as u32;
            }
            if let Some(v) = changes.spec_type {
                d.ali.spec_type = v;
            }
            Ok(())
        })
        .await?;
        if let (Some(p), Ok(admin)) = (req.partition_num, self.engines.admin(id)) {
            admin.set_max_partitions(Some(p as u32));
        }
        if let Some(disk) = req
            .disk_size_gb
            .filter(|d| *d > doc.storage_space_gb as i64)
        {
            let resize = ResizeRequest {
                oper_type: Some("storage".into()),
                new_storage_space: Some(disk),
                ..ResizeRequest::default()
            };
            self.resize_instance(caller, id, &resize).await?;
        }
        Ok(())
    }
}
