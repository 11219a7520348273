//! Consumer groups: the ones the broker has (clients joined them) and the ones declared
//! through the APIs before anyone joined.

use std::collections::BTreeMap;

use engine::EngineError;

use super::{now_ms, ControlPlane};
use crate::error::ControlError;
use crate::model::*;

impl ControlPlane {
    /// Declares a consumer group so that it is listed before any client joins it.
    pub async fn declare_group(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
        remark: &str,
    ) -> Result<(), ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        if doc.declared_groups.contains_key(group) || admin.groups()?.iter().any(|g| g == group) {
            return Err(ControlError::Refused(format!(
                "consumer group {group:?} already exists"
            )));
        }
        admin.declare_group(group)?;
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
            Ok(()) => {}
            // Declared and never used: the broker forgot it at a restart.
            Err(EngineError::NotFound(_)) if declared => {}
            Err(EngineError::NotFound(_)) => {
                return Err(ControlError::Refused(format!(
                    "consumer group {group:?} does not exist"
                )))
            }
            Err(EngineError::InUse(_)) => {
                return Err(ControlError::Refused(format!(
                    "consumer group {group:?} has active members"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let group = group.to_string();
        self.edit_doc(project_id, id, move |d| {
            d.declared_groups.remove(&group);
            Ok(())
        })
        .await
    }

    /// Every group of an instance: declared ones and those the broker knows, by name.
    pub async fn groups(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Vec<GroupSummary>, ControlError> {
        let (doc, admin) = self.running_admin(project_id, id).await?;
        let mut out: BTreeMap<String, GroupSummary> = doc
            .declared_groups
            .iter()
            .map(|(g, d)| {
                let summary = GroupSummary {
                    name: g.clone(),
                    remark: d.remark.clone(),
                    created_ms: d.created_ms,
                    declared: true,
                };
                (g.clone(), summary)
            })
            .collect();
        for g in admin.groups()? {
            out.entry(g.clone()).or_insert(GroupSummary {
                name: g,
                remark: String::new(),
                created_ms: 0,
                declared: false,
            });
        }
        Ok(out.into_values().collect())
    }

    /// How far a group is behind in every partition it committed to, by topic.
    pub async fn group_lag(
        &self,
        project_id: &str,
        id: &str,
        group: &str,
    ) -> Result<BTreeMap<String, Vec<PartitionLag>>, ControlError> {
        let (_, admin) = self.running_admin(project_id, id).await?;
        Ok(admin.group_lag(group)?)
    }
}
