//! Alibaba's order-then-deploy lifecycle and its upgrade orders.

use std::sync::Arc;

use tracing::info;

use super::{now_ms, Caller, ControlPlane};
use crate::catalog;
use crate::error::ControlError;
use crate::lifecycle::Transition;
use crate::model::*;
use crate::validation;

/// Alibaba's order-then-deploy lifecycle.
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
        let partitions =
            u32::try_from(req.partition_num.unwrap_or(400).clamp(1, 100_000)).unwrap_or(400);
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
            engine: EngineKind::Kafka.as_str().into(),
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
            let first_user = engine::Credentials {
                user: user.clone(),
                password: password.clone(),
            };
            self.engines
                .provision(EngineKind::Kafka, &self.instance_dir(id), Some(first_user))
                .await?;
            doc.ssl_enable = true;
            doc.access_user = user.clone();
            doc.acl_enabled = true;
        }
        if doc.allowed_ips.is_empty() {
            // Alibaba opens the VPC port to every address until the list is changed.
            doc.allowed_ips
                .insert("vpc".into(), vec!["0.0.0.0/0".into()]);
        }
        if !self
            .assign_listeners(EngineKind::Kafka, &mut doc, &[])
            .await?
        {
            return Err(ControlError::Internal(self.pool_exhausted()));
        }
        r.status = InstanceStatus::Creating.as_str().into();
        r.status_reason = None;
        doc.store_in(&mut r)?;
        r.updated_at_ms = now_ms();
        self.save(&r).await?;
        drop(_guard);
        self.record_task(id, caller, Transition::Create, "").await;
        self.kick(id);
        Ok(())
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
        shrink(
            "DiskSize",
            req.disk_size_gb,
            i64::try_from(doc.storage_space_gb).unwrap_or(i64::MAX),
        )?;
        shrink("IoMax", req.io_max, doc.ali.io_max)?;
        shrink("EipMax", req.eip_max, doc.ali.eip_max)?;
        shrink(
            "PartitionNum",
            req.partition_num,
            i64::from(doc.partition_num),
        )?;
        let partition_num = match req.partition_num {
            None => None,
            Some(p) => Some(u32::try_from(p).map_err(|_| {
                ControlError::InvalidParameter(format!("PartitionNum {p}: at most {}", u32::MAX))
            })?),
        };
        if let Some(q) = req.topic_quota {
            let topics = self
                .engines
                .admin(id)
                .ok()
                .and_then(|a| a.topics().ok())
                .map_or(0, |t| i64::try_from(t.len()).unwrap_or(i64::MAX));
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
            if let Some(v) = partition_num {
                d.partition_num = v;
            }
            if let Some(v) = changes.spec_type {
                d.ali.spec_type = v;
            }
            Ok(())
        })
        .await?;
        if let (Some(p), Ok(admin)) = (partition_num, self.engines.admin(id)) {
            let mut limits = super::limits_of(&doc);
            limits.max_partitions = Some(p);
            admin.apply_limits(&limits);
        }
        if let Some(disk) = req
            .disk_size_gb
            .filter(|d| u64::try_from(*d).is_ok_and(|d| d > doc.storage_space_gb))
        {
            let resize = Resize {
                oper_type: Some("storage".into()),
                new_storage_space: Some(disk),
            };
            self.resize_instance(caller, id, &resize).await?;
        }
        Ok(())
    }
}
