//! The engines of this build and the instances they run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{info, warn};

use crate::{Broker, BrokerAdmin, Credentials, Engine, EngineError, EngineKind, InstancePlan};

struct Running {
    broker: Box<dyn Broker>,
    admin: Arc<dyn BrokerAdmin>,
}

/// Every engine of this build, and the running brokers of every instance by instance id.
pub struct Engines {
    engines: HashMap<EngineKind, Arc<dyn Engine>>,
    running: Mutex<HashMap<String, Running>>,
}

impl Engines {
    pub fn new(engines: Vec<Arc<dyn Engine>>) -> Arc<Engines> {
        Arc::new(Engines {
            engines: engines.into_iter().map(|e| (e.kind(), e)).collect(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The brokers the control plane creates instances of.
    pub fn embedded() -> Arc<Engines> {
        Engines::new(vec![
            Arc::new(crate::kafka::KafkaEngine),
            Arc::new(crate::rabbitmq::RabbitmqEngine),
            Arc::new(crate::rocketmq::RocketmqEngine),
        ])
    }

    pub fn is_available(&self, kind: EngineKind) -> bool {
        self.engines.contains_key(&kind)
    }

    fn engine(&self, kind: EngineKind) -> Result<&Arc<dyn Engine>, EngineError> {
        self.engines
            .get(&kind)
            .ok_or(EngineError::Unavailable(kind))
    }

    pub async fn provision(
        &self,
        kind: EngineKind,
        data_dir: &Path,
        first_user: Option<Credentials>,
    ) -> Result<(), EngineError> {
        self.engine(kind)?.provision(data_dir, first_user).await
    }

    /// Starts the brokers of an instance; a running instance is left as it is.
    pub async fn start(&self, plan: &InstancePlan) -> Result<(), EngineError> {
        let engine = self.engine(plan.engine)?.clone();
        if self.is_running(&plan.instance_id) {
            return Ok(());
        }
        let broker = engine.start(plan).await?;
        let admin = broker.admin();
        info!(instance = %plan.instance_id, engine = %plan.engine, "brokers started");
        let previous = self
            .running
            .lock()
            .insert(plan.instance_id.clone(), Running { broker, admin });
        if let Some(previous) = previous {
            // Two concurrent starts of one instance cannot both bind the same addresses, so
            // this is unreachable in practice; stop the older one rather than leak it.
            warn!(instance = %plan.instance_id, "instance was started twice");
            previous.broker.stop().await;
        }
        Ok(())
    }

    /// Stops the brokers of an instance. Stopping a stopped instance does nothing.
    pub async fn stop(&self, instance_id: &str) {
        let running = self.running.lock().remove(instance_id);
        if let Some(running) = running {
            running.broker.stop().await;
            info!(instance = %instance_id, "brokers stopped");
        }
    }

    /// Stops the brokers and deletes every byte the instance stored.
    pub async fn destroy(
        &self,
        kind: EngineKind,
        instance_id: &str,
        data_dir: &Path,
    ) -> Result<(), EngineError> {
        self.stop(instance_id).await;
        match self.engine(kind) {
            Ok(engine) => engine.destroy(data_dir).await,
            // An instance of an engine this build lacks never ran here: only its directory
            // (if any) is left.
            Err(_) => crate::remove_dir(data_dir).await,
        }
    }

    pub async fn stop_all(&self) {
        let all: Vec<(String, Running)> = self.running.lock().drain().collect();
        for (id, running) in all {
            running.broker.stop().await;
            info!(instance = %id, "brokers stopped");
        }
    }

    pub fn is_running(&self, instance_id: &str) -> bool {
        self.running.lock().contains_key(instance_id)
    }

    /// The administration handle of a running instance.
    pub fn admin(&self, instance_id: &str) -> Result<Arc<dyn BrokerAdmin>, EngineError> {
        self.running
            .lock()
            .get(instance_id)
            .map(|r| r.admin.clone())
            .ok_or_else(|| EngineError::NotRunning(instance_id.to_string()))
    }
}
