//! The reconciler: brings each instance's brokers to the state its record asks for, and
//! records the outcome. One reconciliation runs at a time per instance.

use std::sync::Arc;
use std::time::Duration;

use engine::{EngineError, InstancePlan};
use store::InstanceRecord;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{engine_of, limits_of, now_ms, ControlPlane, ReadGate};
use crate::error::ControlError;
use crate::lifecycle::{Transition, TransitionControl};
use crate::model::*;

/// Default message retention of an instance, in hours (the documents' default).
const RETENTION_HOURS: i64 = 72;

/// How often a create allocates new addresses when another process took one of its own
/// between allocation and start.
const ADDRESS_ATTEMPTS: usize = 3;

impl ControlPlane {
    /// Brings every recorded instance to its recorded state; called once at start-up,
    /// before the APIs answer. Running instances get their brokers back before this returns,
    /// so no API shows RUNNING for brokers that are not up yet; the others (transitions cut
    /// short by the stop) are finished in the background.
    pub async fn reconcile_all(self: &Arc<Self>) -> Result<(), ControlError> {
        for r in self.store.instances(None).await? {
            if InstanceStatus::of(&r) == InstanceStatus::Running {
                let lock = self
                    .instance_locks
                    .lock()
                    .entry(r.id.clone())
                    .or_default()
                    .clone();
                let _g = lock.lock().await;
                if let Err(e) = self.reconcile_instance(&r.id).await {
                    warn!(instance = %r.id, error = %e, "reconciliation failed");
                }
            } else {
                self.kick(&r.id);
            }
        }
        Ok(())
    }

    /// Schedules a reconciliation of one instance.
    pub fn kick(self: &Arc<Self>, id: &str) {
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let lock = me
                .instance_locks
                .lock()
                .entry(id.clone())
                .or_default()
                .clone();
            let _g = lock.lock().await;
            if let Err(e) = me.reconcile_instance(&id).await {
                warn!(instance = %id, error = %e, "reconciliation failed");
            }
        });
    }

    fn plan(&self, r: &InstanceRecord, doc: &InstanceDoc) -> Result<InstancePlan, ControlError> {
        Ok(InstancePlan {
            instance_id: r.id.clone(),
            engine: engine_of(r)?,
            data_dir: self.instance_dir(&r.id),
            listeners: doc
                .listeners
                .iter()
                .filter_map(|l| l.parse().ok())
                .collect(),
            management_listener: doc.management_listener.parse().ok(),
            namesrv_listener: doc.namesrv_listener.parse().ok(),
            advertised_host: self.config.advertised_host.clone(),
            limits: limits_of(doc),
            auto_create_topics: doc.enable_auto_topic,
            require_auth: doc.ssl_enable,
            enforce_access_rules: doc.acl_enabled,
            admin_users: if doc.acl_enabled && !doc.access_user.is_empty() {
                vec![doc.access_user.clone()]
            } else {
                Vec::new()
            },
            allowed_networks: doc.allowed_networks(),
            declared_groups: doc.declared_groups.keys().cloned().collect(),
            retention_hours: RETENTION_HOURS,
            plugins: (engine_of(r)? == EngineKind::Rabbitmq).then(|| doc.plugins.clone()),
            mq_settings: (engine_of(r)? == EngineKind::Rocketmq)
                .then(|| super::rocketmq::mq_settings_of(doc)),
        })
    }

    pub(crate) async fn reconcile_instance(self: &Arc<Self>, id: &str) -> Result<(), ControlError> {
        let Some(r) = self.store.instance(id).await? else {
            return Ok(());
        };
        let doc = InstanceDoc::of(&r)?;
        let plan = self.plan(&r, &doc)?;
        match InstanceStatus::of(&r) {
            InstanceStatus::Running => self.bring_back(&r, &plan).await,
            InstanceStatus::Creating => self.finish_create(&r, doc, plan).await,
            InstanceStatus::Restarting => self.finish_restart(&r, &plan).await,
            InstanceStatus::Extending => self.finish_extend(&r, doc, &plan).await,
            InstanceStatus::Deleting => self.finish_delete(&r).await,
            InstanceStatus::Ordered => Ok(()),
            InstanceStatus::CreateFailed => {
                self.engines.stop(id).await;
                // A create task still open (one recorded just before a crash) ends here.
                self.finish_task(id, Transition::Create, false).await;
                Ok(())
            }
            InstanceStatus::Error => {
                self.engines.stop(id).await;
                Ok(())
            }
        }
    }

    /// A running instance after a restart of OpenDMS: start its brokers again.
    async fn bring_back(
        &self,
        r: &InstanceRecord,
        plan: &InstancePlan,
    ) -> Result<(), ControlError> {
        if let Err(e) = self.engines.start(plan).await {
            warn!(instance = %r.id, error = %e, "instance cannot be brought back");
            self.end_transition(
                &r.id,
                &r.status,
                InstanceStatus::Error,
                &e.to_string(),
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn finish_create(
        &self,
        r: &InstanceRecord,
        mut doc: InstanceDoc,
        mut plan: InstancePlan,
    ) -> Result<(), ControlError> {
        let id = &r.id;
        let control = self.controls.lock().take(Transition::Create);
        let started = if control.fail_next {
            Err("injected failure (fail_next on create)".to_string())
        } else {
            self.start_with_free_addresses(r, &mut doc, &mut plan).await
        };
        match started {
            Ok(()) => {
                self.complete(
                    id,
                    Transition::Create,
                    &control,
                    InstanceStatus::Creating,
                    InstanceStatus::Running,
                )
                .await
            }
            Err(reason) => {
                warn!(instance = %id, %reason, "instance creation failed");
                self.engines.stop(id).await;
                self.end_transition(
                    id,
                    &r.status,
                    InstanceStatus::CreateFailed,
                    &reason,
                    Some(Transition::Create),
                )
                .await
            }
        }
    }

    /// Starts a new instance's brokers. When another process took one of its addresses after
    /// they were allocated, allocates others (recording them) and tries again.
    async fn start_with_free_addresses(
        &self,
        r: &InstanceRecord,
        doc: &mut InstanceDoc,
        plan: &mut InstancePlan,
    ) -> Result<(), String> {
        let mut taken = Vec::new();
        loop {
            match self.engines.start(plan).await {
                Ok(()) => return Ok(()),
                Err(EngineError::AddressInUse(addr)) if taken.len() < ADDRESS_ATTEMPTS => {
                    info!(instance = %r.id, %addr, "broker address taken by another process; allocating again");
                    taken.push(addr);
                }
                Err(e) => return Err(e.to_string()),
            }
            let _guard = self.create_lock.lock().await;
            match self.assign_listeners(plan.engine, doc, &taken).await {
                Ok(true) => {}
                Ok(false) => return Err(self.pool_exhausted()),
                Err(e) => return Err(e.to_string()),
            }
            *plan = self.plan(r, doc).map_err(|e| e.to_string())?;
            let mut rec = r.clone();
            doc.store_in(&mut rec).map_err(|e| e.to_string())?;
            self.store
                .update_instance(&rec)
                .await
                .map_err(|e| e.to_string())?;
        }
    }

    async fn finish_restart(
        &self,
        r: &InstanceRecord,
        plan: &InstancePlan,
    ) -> Result<(), ControlError> {
        let id = &r.id;
        let control = self.controls.lock().take(Transition::Restart);
        if control.fail_next {
            warn!(instance = %id, "restart failed (injected)");
            self.engines.start(plan).await?;
            return self
                .end_transition(
                    id,
                    &r.status,
                    InstanceStatus::Running,
                    "restart failed: injected failure",
                    Some(Transition::Restart),
                )
                .await;
        }
        self.engines.stop(id).await;
        match self.engines.start(plan).await {
            Ok(()) => {
                self.complete(
                    id,
                    Transition::Restart,
                    &control,
                    InstanceStatus::Restarting,
                    InstanceStatus::Running,
                )
                .await
            }
            Err(e) => {
                self.end_transition(
                    id,
                    &r.status,
                    InstanceStatus::Error,
                    &e.to_string(),
                    Some(Transition::Restart),
                )
                .await
            }
        }
    }

    async fn finish_extend(
        &self,
        r: &InstanceRecord,
        mut doc: InstanceDoc,
        plan: &InstancePlan,
    ) -> Result<(), ControlError> {
        let id = &r.id;
        let control = self.controls.lock().take(Transition::Extend);
        self.engines.start(plan).await?;
        let pending = doc.pending_storage_gb.take();
        let mut rec = r.clone();
        let Some(new) = pending.filter(|_| !control.fail_next) else {
            doc.store_in(&mut rec)?;
            self.store.update_instance(&rec).await?;
            return self
                .end_transition(
                    id,
                    &r.status,
                    InstanceStatus::Running,
                    "extend failed: injected failure",
                    Some(Transition::Extend),
                )
                .await;
        };
        doc.storage_space_gb = new;
        doc.extend_times += 1;
        self.engines.admin(id)?.apply_limits(&limits_of(&doc));
        doc.store_in(&mut rec)?;
        rec.updated_at_ms = now_ms();
        self.store.update_instance(&rec).await?;
        self.complete(
            id,
            Transition::Extend,
            &control,
            InstanceStatus::Extending,
            InstanceStatus::Running,
        )
        .await
    }

    async fn finish_delete(&self, r: &InstanceRecord) -> Result<(), ControlError> {
        let id = &r.id;
        let control = self.controls.lock().take(Transition::Delete);
        if control.fail_next {
            warn!(instance = %id, "delete failed (injected)");
            let back = if self.engines.is_running(id) {
                InstanceStatus::Running
            } else {
                InstanceStatus::CreateFailed
            };
            return self
                .end_transition(
                    id,
                    &r.status,
                    back,
                    "delete failed: injected failure",
                    Some(Transition::Delete),
                )
                .await;
        }
        self.wait(id, &control).await;
        self.engines
            .destroy(engine_of(r)?, id, &self.instance_dir(id))
            .await?;
        self.store.delete_instance(id).await?;
        self.instance_locks.lock().remove(id);
        info!(instance = %id, "instance deleted");
        Ok(())
    }

    /// Ends a transition that did not succeed: marks its task failed, then records `to` with
    /// the reason (if the status is still `from`). The task first, so that a client who sees
    /// the new status also sees how the task ended.
    async fn end_transition(
        &self,
        id: &str,
        from: &str,
        to: InstanceStatus,
        reason: &str,
        task: Option<Transition>,
    ) -> Result<(), ControlError> {
        if let Some(t) = task {
            self.finish_task(id, t, false).await;
        }
        self.store
            .set_instance_status(id, Some(from), to.as_str(), Some(reason), now_ms())
            .await?;
        Ok(())
    }

    /// Waits for the transition's delay, then closes its task and moves `from` → `to`.
    async fn complete(
        &self,
        id: &str,
        t: Transition,
        control: &TransitionControl,
        from: InstanceStatus,
        to: InstanceStatus,
    ) -> Result<(), ControlError> {
        let done = self.wait(id, control).await;
        self.finish_task(id, t, true).await;
        let res = self
            .store
            .set_instance_status(id, Some(from.as_str()), to.as_str(), None, now_ms())
            .await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        info!(instance = %id, status = to.as_str(), "transition complete");
        res?;
        Ok(())
    }

    /// Applies a delay. For read delays, answers the channel to signal once the transition
    /// is recorded, so that the read that ended the wait returns only after it.
    async fn wait(&self, id: &str, control: &TransitionControl) -> Option<oneshot::Sender<()>> {
        if control.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(control.delay_ms)).await;
        }
        if control.delay_reads == 0 {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.read_gates.lock().insert(
            id.to_string(),
            ReadGate {
                remaining: control.delay_reads,
                reached: Some(tx),
            },
        );
        rx.await.ok()
    }

    /// Counts a read of an instance; when it is the last read a delay waits for, lets the
    /// transition complete and waits until it is recorded.
    pub(crate) async fn note_read(&self, id: &str) {
        let reached = {
            let mut gates = self.read_gates.lock();
            match gates.get_mut(id) {
                Some(g) => {
                    g.remaining = g.remaining.saturating_sub(1);
                    if g.remaining == 0 {
                        gates.remove(id).and_then(|mut g| g.reached.take())
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(reached) = reached {
            let (done_tx, done_rx) = oneshot::channel();
            if reached.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
            }
        }
    }
}
