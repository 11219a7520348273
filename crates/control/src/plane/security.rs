//! SASL users, ACLs and allowed client networks of an instance.

use std::collections::BTreeMap;

use super::ControlPlane;
use crate::error::ControlError;
use crate::model::*;
use crate::validation;

/// SASL users, ACLs and allowed networks, kept by the broker and listed by the APIs.
impl ControlPlane {
    pub async fn sasl_users(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<(String, SaslUserMeta)>, ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        Ok(admin
            .users()?
            .into_iter()
            .map(|u| {
                let meta = doc
                    .sasl_users
                    .get(&u)
                    .cloned()
                    .unwrap_or_else(|| SaslUserMeta {
                        kind: "scram".into(),
                        mechanism: "SCRAM-SHA-512".into(),
                    });
                (u, meta)
            })
            .collect())
    }

    pub async fn create_sasl_user(
        &self,
        project_id: &str,
        id: &str,
        user: &str,
        password: &str,
        meta: SaslUserMeta,
    ) -> Result<(), ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        validation::check_username("Username", user)?;
        if password.is_empty() || password.len() > 64 {
            return Err(ControlError::InvalidParameter(
                "Password: 1 to 64 characters".into(),
            ));
        }
        admin.set_user_password(user, password).await?;
        let user = user.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.sasl_users.insert(user, meta);
            Ok(())
        })
        .await
    }

    pub async fn delete_sasl_user(
        &self,
        project_id: &str,
        id: &str,
        user: &str,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        if doc.acl_enabled && doc.access_user == user {
            return Err(ControlError::InvalidParameter(
                "the instance's own user cannot be deleted".into(),
            ));
        }
        let existed = admin.delete_user(user).await?;
        if !existed {
            return Err(ControlError::InvalidParameter(format!(
                "SASL user {user:?} does not exist"
            )));
        }
        let user = user.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.sasl_users.remove(&user);
            Ok(())
        })
        .await
    }

    pub async fn access_rules(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<AccessRule>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        Ok(admin.access_rules()?)
    }

    pub async fn add_access_rule(
        &self,
        project_id: &str,
        id: &str,
        rule: AccessRule,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        if !doc.acl_enabled {
            return Err(ControlError::NotSupported(
                "ACLs need an instance deployed with SASL users (DeployModule eip with a user and password)".into(),
            ));
        }
        admin
            .add_access_rule(rule)
            .await
            .map_err(refused_as_invalid)
    }

    /// Removes the rules equal to `rule`; answers how many there were.
    pub async fn remove_access_rule(
        &self,
        project_id: &str,
        id: &str,
        rule: AccessRule,
    ) -> Result<usize, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        admin
            .remove_access_rule(rule)
            .await
            .map_err(refused_as_invalid)
    }

    pub async fn allowed_ips(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, ControlError> {
        let r = self.record(project_id, id).await?;
        let doc = InstanceDoc::of(&r)?;
        Ok(doc.allowed_ips)
    }

    /// Adds or removes networks of one list and applies the result to the running brokers.
    pub async fn update_allowed_ips(
        &self,
        project_id: &str,
        id: &str,
        list: &str,
        add: bool,
        networks: &[String],
    ) -> Result<(), ControlError> {
        engine::check_networks(networks).map_err(ControlError::InvalidParameter)?;
        let (list, networks) = (list.to_string(), networks.to_vec());
        let mut applied = None;
        self.edit_doc(project_id, id, |d| {
            let entry = d.allowed_ips.entry(list).or_default();
            if add {
                for n in networks {
                    if !entry.contains(&n) {
                        entry.push(n);
                    }
                }
            } else {
                entry.retain(|n| !networks.contains(n));
            }
            applied = Some(d.allowed_networks());
            Ok(())
        })
        .await?;
        if let (Some(networks), Ok(admin)) = (applied, self.engines.admin(id)) {
            admin
                .set_allowed_networks(networks)
                .map_err(refused_as_invalid)?;
        }
        Ok(())
    }
}

/// A rule the broker refused is a bad parameter of the request.
fn refused_as_invalid(e: engine::EngineError) -> ControlError {
    match e {
        engine::EngineError::Refused(m) => ControlError::InvalidParameter(m),
        other => other.into(),
    }
}
