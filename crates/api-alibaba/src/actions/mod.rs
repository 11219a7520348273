//! The alikafka actions as a table: one function per action. Each answers the action's own
//! fields; the envelope adds `RequestId`, `Code`, `Message` and `Success`. An action of the
//! official SDKs that OpenDMS does not implement answers 501 `UnsupportedAction` naming it.

mod groups;
mod instances;
pub(crate) mod params;
mod security;
mod tags;
mod topics;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use control::model::EngineKind;
use control::ControlError;

use crate::envelope::AliError;
use crate::monitor;
use crate::request::Parsed;
use crate::AliState;
use params::Fields;

type Answer = Pin<Box<dyn Future<Output = Result<Fields, AliError>> + Send>>;

/// One action and the function that answers it.
pub(crate) struct Action {
    pub name: &'static str,
    handler: fn(Arc<AliState>, Parsed) -> Answer,
}

macro_rules! action {
    ($name:literal, $handler:path) => {
        Action {
            name: $name,
            handler: |state, p| Box::pin($handler(state, p)),
        }
    };
}

pub(crate) static ACTIONS: &[Action] = &[
    // ---- orders and instances ----------------------------------------------------------
    action!("CreatePostPayOrder", instances::create_order),
    action!("CreatePrePayOrder", instances::create_order),
    action!("StartInstance", instances::start_instance),
    action!("GetInstanceList", instances::get_instance_list),
    action!("GetAllInstanceIdList", instances::get_all_instance_id_list),
    action!("ModifyInstanceName", instances::modify_instance_name),
    action!("ReleaseInstance", instances::release_instance),
    action!("DeleteInstance", instances::release_instance),
    action!("UpgradePrePayOrder", instances::upgrade_order),
    action!("UpgradePostPayOrder", instances::upgrade_order),
    // ---- topics --------------------------------------------------------------------------
    action!("CreateTopic", topics::create_topic),
    action!("DeleteTopic", topics::delete_topic),
    action!("GetTopicList", topics::get_topic_list),
    action!("GetTopicStatus", topics::get_topic_status),
    action!("ModifyPartitionNum", topics::modify_partition_num),
    action!("ModifyTopicRemark", topics::modify_topic_remark),
    // ---- consumer groups ---------------------------------------------------------------
    action!("CreateConsumerGroup", groups::create_consumer_group),
    action!("DeleteConsumerGroup", groups::delete_consumer_group),
    action!("GetConsumerList", groups::get_consumer_list),
    action!("GetConsumerProgress", groups::get_consumer_progress),
    // ---- tags ----------------------------------------------------------------------------
    action!("TagResources", tags::tag_resources),
    action!("UntagResources", tags::untag_resources),
    action!("ListTagResources", tags::list_tag_resources),
    // ---- users, ACLs, allowed networks -------------------------------------------------
    action!("CreateSaslUser", security::create_sasl_user),
    action!("DeleteSaslUser", security::delete_sasl_user),
    action!("DescribeSaslUsers", security::describe_sasl_users),
    action!("CreateAcl", security::create_acl),
    action!("DeleteAcl", security::delete_acl),
    action!("DescribeAcls", security::describe_acls),
    action!("GetAllowedIpList", security::get_allowed_ip_list),
    action!("UpdateAllowedIp", security::update_allowed_ip),
    // ---- CloudMonitor (seed 004 §16) ----------------------------------------------------
    action!("DescribeProjectMeta", monitor::describe_project_meta),
    action!("DescribeMetricMetaList", monitor::describe_metric_meta_list),
    action!("DescribeMetricLast", monitor::describe_metric_last),
    action!("DescribeMetricList", monitor::describe_metric_list),
    action!("DescribeMetricData", monitor::describe_metric_list),
    action!("DescribeMetricTop", monitor::describe_metric_top),
];

/// Every action of `alibabacloud-alikafka20190916` and of the legacy
/// `aliyun-python-sdk-alikafka` (one per line).
const SDK_ACTIONS: &str = include_str!("sdk_actions.txt");

/// Runs the action a request names.
pub(crate) async fn run(state: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    if let Some(a) = ACTIONS.iter().find(|a| a.name == p.action) {
        refuse_other_engines(&state, &p).await?;
        return (a.handler)(state, p).await;
    }
    if sdk_actions().any(|a| a == p.action) {
        return Err(AliError::new(
            501,
            "UnsupportedAction",
            format!("The action {} is not supported by OpenDMS.", p.action),
        ));
    }
    Err(AliError::new(
        404,
        "InvalidAction.NotFound",
        format!(
            "Specified api is not found, please check your url and method. ({})",
            p.action
        ),
    ))
}

/// This API is Message Queue for Kafka's: an instance of the project that runs another engine
/// (created through the Huawei RabbitMQ or RocketMQ APIs) does not exist for it, as another
/// product's instance does not for alikafka. Ids that name no instance are left to the action
/// (it answers them as it answers any unknown id), and so are listings, whose ids only filter
/// the Kafka instances they list.
async fn refuse_other_engines(state: &AliState, p: &Parsed) -> Result<(), AliError> {
    if matches!(p.action.as_str(), "GetInstanceList" | "ListTagResources") {
        return Ok(());
    }
    let named = p
        .get("InstanceId")
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    for id in named.into_iter().chain(params::repeated(p, "ResourceId")) {
        if let Ok(kind) = state.plane.instance_engine(&p.caller.project_id, &id).await {
            if kind != EngineKind::Kafka {
                return Err(ControlError::InstanceNotFound(id).into());
            }
        }
    }
    Ok(())
}

fn sdk_actions() -> impl Iterator<Item = &'static str> {
    SDK_ACTIONS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms;

    #[test]
    fn implemented_actions_are_sdk_actions_and_unique() {
        let sdk: Vec<&str> = sdk_actions().collect();
        for a in ACTIONS {
            assert!(
                sdk.contains(&a.name) || cms::is_monitor_action(a.name),
                "{} is not an action of the SDKs",
                a.name
            );
            assert_eq!(
                ACTIONS.iter().filter(|b| b.name == a.name).count(),
                1,
                "{} twice",
                a.name
            );
        }
    }
}
