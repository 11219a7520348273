//! What only RabbitMQ instances have (seed 002 4.2): the access user's password and the
//! broker's plug-ins.

use super::{engine_of, Caller, ControlPlane};
use crate::catalog;
use crate::error::ControlError;
use crate::model::*;
use crate::validation;

impl ControlPlane {
    /// Seed 002 4.2.1: the access user gets a new password in the broker at once (the old
    /// one stops working for new connections).
    pub async fn reset_access_password(
        &self,
        project_id: &str,
        id: &str,
        new_password: &str,
    ) -> Result<(), ControlError> {
        validation::check_reset_password(new_password)?;
        self.rabbitmq_record(project_id, id).await?;
        let (doc, admin) = self.running_admin(project_id, id).await?;
        if doc.access_user.is_empty() {
            return Err(ControlError::NotSupported(
                "the instance has no access user".into(),
            ));
        }
        admin
            .set_user_password(&doc.access_user, new_password)
            .await?;
        tracing::info!(instance = %id, user = %doc.access_user, "access user password reset");
        Ok(())
    }

    /// Seed 002 4.2.2: every plug-in a DMS RabbitMQ 3.8.35 instance lists, with whether it
    /// is switched on and whether the broker runs it now.
    pub async fn plugins(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<PluginState>, ControlError> {
        let r = self.rabbitmq_record(project_id, id).await?;
        let doc = InstanceDoc::of(&r)?;
        let running_now: Option<Vec<String>> = match self.engines.admin(id) {
            Ok(admin) => Some(admin.plugins()?),
            Err(_) => None,
        };
        Ok(catalog::RABBITMQ_PLUGINS
            .iter()
            .map(|&(name, version)| {
                let management = name == catalog::RABBITMQ_MANAGEMENT_PLUGIN;
                let enable = management || doc.plugins.iter().any(|p| p == name);
                let running = match &running_now {
                    None => false,
                    Some(_) if management => true,
                    Some(on) => on.iter().any(|p| p == name),
                };
                PluginState {
                    name,
                    version,
                    enable,
                    running,
                }
            })
            .collect())
    }

    /// Seed 002 4.2.3: switches plug-ins on or off in the running broker and records it.
    /// `plugins` is the document's comma-separated list. A name the list does not have is
    /// DMS.00400970; one the embedded broker does not implement is refused by name, and
    /// nothing changes unless every name can be applied. Answers the task's id (`job_id`).
    pub async fn update_plugins(
        &self,
        caller: &Caller,
        id: &str,
        enable: bool,
        plugins: &str,
    ) -> Result<String, ControlError> {
        let names: Vec<&str> = plugins
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(ControlError::InvalidParameter(
                "plugins: a comma-separated list of plug-in names".into(),
            ));
        }
        for name in &names {
            if !catalog::RABBITMQ_PLUGINS.iter().any(|(n, _)| n == name) {
                return Err(ControlError::PluginNotFound(name.to_string()));
            }
            if !catalog::RABBITMQ_IMPLEMENTED_PLUGINS.contains(name) {
                return Err(ControlError::NotSupported(format!(
                    "plug-in {name} is not supported by OpenDMS (its RabbitMQ broker implements {})",
                    catalog::RABBITMQ_IMPLEMENTED_PLUGINS.join(", ")
                )));
            }
            if *name == catalog::RABBITMQ_MANAGEMENT_PLUGIN && !enable {
                return Err(ControlError::NotSupported(
                    "the rabbitmq_management plug-in cannot be disabled: every instance has its management API".into(),
                ));
            }
        }
        self.rabbitmq_record(&caller.project_id, id).await?;
        let (_, admin) = self.running_admin(&caller.project_id, id).await?;
        for name in &names {
            if *name != catalog::RABBITMQ_MANAGEMENT_PLUGIN {
                admin.set_plugin(name, enable)?;
            }
        }
        self.edit_doc(&caller.project_id, id, |doc| {
            for name in &names {
                if *name == catalog::RABBITMQ_MANAGEMENT_PLUGIN {
                    continue;
                }
                doc.plugins.retain(|p| p != name);
                if enable {
                    doc.plugins.push(name.to_string());
                }
            }
            doc.plugins.sort();
            Ok(())
        })
        .await?;
        tracing::info!(instance = %id, enable, plugins = %names.join(","), "plug-ins changed");
        let params = serde_json::json!({"enable": enable, "plugins": names.join(",")}).to_string();
        self.record_done_task(id, caller, "modifyPlugins", &params)
            .await
    }

    /// The record of a RabbitMQ instance of the project; another engine's instance is
    /// refused as not having the operation.
    async fn rabbitmq_record(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<store::InstanceRecord, ControlError> {
        let r = self.record(project_id, id).await?;
        let engine = engine_of(&r)?;
        if engine != EngineKind::Rabbitmq {
            return Err(ControlError::NotSupported(format!(
                "the operation is RabbitMQ's; instance {id} is a {engine} instance"
            )));
        }
        Ok(r)
    }
}
