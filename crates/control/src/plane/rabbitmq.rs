//! What only RabbitMQ instances have (seed 002 4.2): the access user's password and the
//! broker's plug-ins.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::BrokerAdmin;

use super::{Caller, ControlPlane};
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
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
        let (doc, admin) = self.admin_of_running(&r)?;
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
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
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
        let r = self
            .record_of_engine(&caller.project_id, id, EngineKind::Rabbitmq)
            .await?;
        let (_, admin) = self.admin_of_running(&r)?;
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

    /// The admin handle of a running RabbitMQ instance of the project.
    async fn rabbitmq_admin(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Arc<dyn BrokerAdmin>, ControlError> {
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
        Ok(self.admin_of_running(&r)?.1)
    }

    pub async fn vhosts(&self, project_id: &str, id: &str) -> Result<Vec<String>, ControlError> {
        Ok(self.rabbitmq_admin(project_id, id).await?.vhosts()?)
    }

    /// Creates a vhost; an existing one is `Refused` as existing.
    pub async fn create_vhost(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
    ) -> Result<(), ControlError> {
        check_amqp_name("vhost", name)?;
        let admin = self.rabbitmq_admin(project_id, id).await?;
        if !admin.create_vhost(name).await? {
            return Err(ControlError::Refused(format!(
                "vhost {name} already exists"
            )));
        }
        Ok(())
    }

    /// Deletes vhosts by name; every name must exist ("/" cannot be deleted).
    pub async fn delete_vhosts(
        &self,
        project_id: &str,
        id: &str,
        names: &[String],
    ) -> Result<(), ControlError> {
        let admin = self.rabbitmq_admin(project_id, id).await?;
        let existing = admin.vhosts()?;
        for n in names {
            if n == "/" {
                return Err(ControlError::Refused(
                    "the default vhost / cannot be deleted".into(),
                ));
            }
            if !existing.contains(n) {
                return Err(ControlError::Refused(format!("vhost {n} does not exist")));
            }
        }
        for n in names {
            admin.delete_vhost(n).await?;
        }
        Ok(())
    }

    pub async fn exchanges(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
    ) -> Result<Vec<ExchangeInfo>, ControlError> {
        Ok(self
            .rabbitmq_admin(project_id, id)
            .await?
            .exchanges(vhost)?)
    }

    pub async fn create_exchange(
        &self,
        project_id: &str,
        id: &str,
        exchange: ExchangeInfo,
    ) -> Result<ExchangeInfo, ControlError> {
        check_amqp_name("exchange", &exchange.name)?;
        let admin = self.rabbitmq_admin(project_id, id).await?;
        Ok(admin.create_exchange(exchange).await?)
    }

    /// Deletes exchanges by name; every name must exist.
    pub async fn delete_exchanges(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        names: &[String],
    ) -> Result<(), ControlError> {
        let admin = self.rabbitmq_admin(project_id, id).await?;
        for n in names {
            admin.delete_exchange(vhost, n).await?;
        }
        Ok(())
    }

    pub async fn queues(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
    ) -> Result<Vec<QueueInfo>, ControlError> {
        Ok(self.rabbitmq_admin(project_id, id).await?.queues(vhost)?)
    }

    pub async fn queue(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        name: &str,
    ) -> Result<QueueInfo, ControlError> {
        self.rabbitmq_admin(project_id, id)
            .await?
            .queue(vhost, name)?
            .ok_or_else(|| ControlError::Refused(format!("queue {name} does not exist")))
    }

    pub async fn create_queue(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        queue: NewQueue,
    ) -> Result<QueueInfo, ControlError> {
        check_amqp_name("queue", &queue.name)?;
        let admin = self.rabbitmq_admin(project_id, id).await?;
        Ok(admin.create_queue(vhost, queue).await?)
    }

    pub async fn delete_queues(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        names: &[String],
    ) -> Result<(), ControlError> {
        let admin = self.rabbitmq_admin(project_id, id).await?;
        for n in names {
            admin.delete_queue(vhost, n).await?;
        }
        Ok(())
    }

    /// Drops a queue's ready messages (`delete_queue_info`); answers how many.
    pub async fn purge_queue(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        name: &str,
    ) -> Result<u64, ControlError> {
        Ok(self
            .rabbitmq_admin(project_id, id)
            .await?
            .purge_queue(vhost, name)?)
    }

    pub async fn bindings(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        exchange: &str,
    ) -> Result<Vec<BindingInfo>, ControlError> {
        Ok(self
            .rabbitmq_admin(project_id, id)
            .await?
            .bindings(vhost, exchange)?)
    }

    pub async fn bind(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        binding: BindingInfo,
    ) -> Result<BindingInfo, ControlError> {
        Ok(self
            .rabbitmq_admin(project_id, id)
            .await?
            .bind(vhost, binding)
            .await?)
    }

    /// Removes a binding; one that does not exist is refused as missing.
    pub async fn unbind(
        &self,
        project_id: &str,
        id: &str,
        vhost: &str,
        binding: BindingInfo,
    ) -> Result<(), ControlError> {
        let admin = self.rabbitmq_admin(project_id, id).await?;
        if !admin.unbind(vhost, binding).await? {
            return Err(ControlError::Refused("the binding does not exist".into()));
        }
        Ok(())
    }

    /// The broker's users and their permissions; the access user (the instance's
    /// administrator, managed by the instance APIs) is not among them.
    pub async fn amqp_users(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<BTreeMap<String, Vec<VhostPermission>>, ControlError> {
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
        let (doc, admin) = self.admin_of_running(&r)?;
        let mut users = admin.user_permissions()?;
        users.remove(&doc.access_user);
        Ok(users)
    }

    /// Creates (`create`) or updates a broker user with its password (when given) and
    /// replaces its permissions.
    pub async fn put_amqp_user(
        &self,
        project_id: &str,
        id: &str,
        user: &str,
        password: Option<&str>,
        permissions: Vec<VhostPermission>,
        create: bool,
    ) -> Result<(), ControlError> {
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
        let doc = InstanceDoc::of(&r)?;
        validation::check_username("access_key", user)?;
        if user == doc.access_user {
            return Err(ControlError::Refused(format!(
                "{user} is the instance's access user; change its password with reset_password"
            )));
        }
        let (_, admin) = self.admin_of_running(&r)?;
        let exists = admin.users()?.iter().any(|u| u == user);
        match (create, exists) {
            (true, true) => {
                return Err(ControlError::Refused(format!("user {user} already exists")))
            }
            (false, false) => {
                return Err(ControlError::Refused(format!("user {user} does not exist")))
            }
            _ => {}
        }
        match password {
            Some(pw) => {
                validation::check_password("secret_key", pw)?;
                admin.set_user_password(user, pw).await?;
            }
            None if create => return Err(ControlError::WeakPassword("secret_key")),
            None => {}
        }
        admin.set_user_permissions(user, permissions).await?;
        Ok(())
    }

    pub async fn delete_amqp_user(
        &self,
        project_id: &str,
        id: &str,
        user: &str,
    ) -> Result<(), ControlError> {
        let r = self
            .record_of_engine(project_id, id, EngineKind::Rabbitmq)
            .await?;
        let doc = InstanceDoc::of(&r)?;
        if user == doc.access_user {
            return Err(ControlError::Refused(format!(
                "{user} is the instance's access user and cannot be deleted"
            )));
        }
        if !self.admin_of_running(&r)?.1.delete_user(user).await? {
            return Err(ControlError::Refused(format!("user {user} does not exist")));
        }
        Ok(())
    }
}

/// Names of vhosts, exchanges and queues: 1-255 characters (AMQP short strings), none of
/// them control characters.
fn check_amqp_name(what: &str, name: &str) -> Result<(), ControlError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ControlError::InvalidParameter(format!(
            "{what} name {name:?}: 1 to 255 characters without control characters"
        )));
    }
    Ok(())
}
