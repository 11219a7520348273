//! The lifecycle the control plane drives, against a fake engine: every transition, the
//! lifecycle controls, address allocation and start-up reconciliation, with no broker.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::{
    Broker, BrokerAdmin, Credentials, Engine, EngineError, Engines, InstancePlan, Limits, Usage,
};
use parking_lot::Mutex;

use super::*;
use crate::lifecycle::{LifecycleControls, TransitionControl};
use crate::model::{CreateShape, KafkaOptions, NewInstance, Resize};

/// What the fake engine was asked to do, and what it should do next.
#[derive(Default)]
struct FakeState {
    /// Instance ids in the order their brokers were started.
    starts: Vec<String>,
    stops: Vec<String>,
    destroyed: Vec<String>,
    provisioned: Vec<(String, String)>,
    /// The listeners of the latest start of each instance.
    listeners: std::collections::HashMap<String, Vec<SocketAddr>>,
    /// Addresses "another process" holds: a start that needs one fails with AddressInUse.
    taken: HashSet<SocketAddr>,
    /// The next start fails with this reason.
    fail_next_start: Option<String>,
    /// Limits applied to running instances.
    limits: Vec<Limits>,
}

#[derive(Clone, Default)]
struct FakeEngine(Arc<Mutex<FakeState>>);

struct FakeBroker {
    id: String,
    state: Arc<Mutex<FakeState>>,
}

struct FakeAdmin(Arc<Mutex<FakeState>>);

#[async_trait]
impl Engine for FakeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Kafka
    }

    async fn provision(
        &self,
        data_dir: &Path,
        first_user: Option<Credentials>,
    ) -> Result<(), EngineError> {
        if let Some(c) = first_user {
            let dir = data_dir.display().to_string();
            self.0.lock().provisioned.push((dir, c.user));
        }
        Ok(())
    }

    async fn start(&self, plan: &InstancePlan) -> Result<Box<dyn Broker>, EngineError> {
        let mut s = self.0.lock();
        if let Some(reason) = s.fail_next_start.take() {
            return Err(EngineError::Start(reason));
        }
        if let Some(a) = plan.listeners.iter().find(|a| s.taken.contains(a)) {
            return Err(EngineError::AddressInUse(*a));
        }
        s.starts.push(plan.instance_id.clone());
        s.listeners
            .insert(plan.instance_id.clone(), plan.listeners.clone());
        Ok(Box::new(FakeBroker {
            id: plan.instance_id.clone(),
            state: self.0.clone(),
        }))
    }

    async fn destroy(&self, data_dir: &Path) -> Result<(), EngineError> {
        let id = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.0.lock().destroyed.push(id);
        Ok(())
    }
}

#[async_trait]
impl Broker for FakeBroker {
    fn admin(&self) -> Arc<dyn BrokerAdmin> {
        Arc::new(FakeAdmin(self.state.clone()))
    }

    async fn stop(self: Box<Self>) {
        self.state.lock().stops.push(self.id.clone());
    }
}

#[async_trait]
impl BrokerAdmin for FakeAdmin {
    fn kind(&self) -> EngineKind {
        EngineKind::Kafka
    }

    fn usage(&self) -> Usage {
        Usage::default()
    }

    fn traffic_by_resource(&self) -> std::collections::HashMap<String, (u64, u64)> {
        Default::default()
    }

    fn apply_limits(&self, limits: &Limits) {
        self.0.lock().limits.push(*limits);
    }

    fn set_allowed_networks(&self, _networks: Option<Vec<String>>) -> Result<(), EngineError> {
        Ok(())
    }
}

struct Harness {
    plane: Arc<ControlPlane>,
    engine: FakeEngine,
    store: Arc<dyn store::MetaStore>,
    caller: Caller,
    config: PlaneConfig,
    _dir: tempfile::TempDir,
}

/// A loopback pool of its own per test (tests run in parallel) on a port nothing uses.
fn config(dir: &Path, pool_size: u32) -> PlaneConfig {
    let n = std::process::id() % 200;
    let salt = rand_u8();
    PlaneConfig {
        data_dir: dir.to_path_buf(),
        region: "cn-north-4".into(),
        broker_ip_pool: Ipv4Addr::new(127, 77, (n as u8).wrapping_add(salt), 1),
        broker_ip_pool_size: pool_size,
        broker_port: free_port(),
        amqp_port: free_port(),
        amqp_management_port: free_port(),
        rocketmq_namesrv_port: free_port(),
        rocketmq_broker_port: free_port(),
        advertised_host: None,
        instance_quota: 100,
        controls: LifecycleControls::default(),
    }
}

fn rand_u8() -> u8 {
    (uuid::Uuid::new_v4().as_u128() & 0x7f) as u8
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn harness(pool_size: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::MetaStore> = Arc::new(
        store::SqliteStore::open(&dir.path().join("metadata.db"))
            .await
            .unwrap(),
    );
    let config = config(dir.path(), pool_size);
    let engine = FakeEngine::default();
    let plane = ControlPlane::new(
        store.clone(),
        Engines::new(vec![Arc::new(engine.clone())]),
        config.clone(),
    );
    Harness {
        plane,
        engine,
        store,
        caller: Caller {
            user_id: "u1".into(),
            user_name: "tester".into(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
        },
        config,
        _dir: dir,
    }
}

fn new_instance(plane: &ControlPlane, name: &str) -> NewInstance {
    NewInstance {
        name: Some(name.into()),
        engine: Some(EngineKind::Kafka),
        engine_version: Some("3.x".into()),
        product_id: Some("c6.2u4g.cluster".into()),
        broker_num: Some(3),
        storage_space_gb: Some(300),
        storage_spec_code: Some(crate::catalog::ULTRA_V2.into()),
        vpc_id: Some("vpc".into()),
        subnet_id: Some("subnet".into()),
        security_group_id: Some("sg".into()),
        available_zones: Some(vec![plane.zones()[0].id.clone()]),
        kafka: KafkaOptions::default(),
        ..NewInstance::default()
    }
}

impl Harness {
    async fn create(&self, name: &str) -> String {
        self.plane
            .create_instance(
                &self.caller,
                &new_instance(&self.plane, name),
                CreateShape::Flavor,
            )
            .await
            .unwrap()
    }

    /// The status of an instance, without counting as a read.
    async fn status(&self, id: &str) -> Option<InstanceStatus> {
        self.store
            .instance(id)
            .await
            .unwrap()
            .map(|r| InstanceStatus::of(&r))
    }

    async fn wait_for(&self, id: &str, want: Option<InstanceStatus>) {
        for _ in 0..500 {
            if self.status(id).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "instance {id} never reached {want:?}; it is {:?}",
            self.status(id).await
        );
    }

    /// Waits until the instance has a task of that name in that status (the reconciler closes
    /// a task right after it records the status).
    async fn wait_task(&self, id: &str, name: &str, status: &str) {
        let want = (name.to_string(), status.to_string());
        for _ in 0..500 {
            if self.task_statuses(id).await.contains(&want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no task {want:?}: {:?}", self.task_statuses(id).await);
    }

    async fn task_statuses(&self, id: &str) -> Vec<(String, String)> {
        let mut t: Vec<(String, String)> = self
            .store
            .tasks(id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.status))
            .collect();
        t.sort();
        t
    }

    fn controls(&self, f: impl FnOnce(&mut LifecycleControls)) {
        let mut c = self.plane.controls();
        f(&mut c);
        self.plane.set_controls(c);
    }
}

#[tokio::test]
async fn create_runs_the_brokers_then_reports_running() {
    let h = harness(250).await;
    let id = h.create("kafka-one").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    {
        let s = h.engine.0.lock();
        assert_eq!(s.starts, vec![id.clone()]);
        let listeners = &s.listeners[&id];
        assert_eq!(listeners.len(), 3);
        assert!(
            listeners
                .iter()
                .all(|a| a.port() == h.config.broker_port
                    && a.ip().to_string().starts_with("127.77."))
        );
    }
    h.wait_task(&id, "createInstance", "SUCCESS").await;
    assert_eq!(h.task_statuses(&id).await.len(), 1);
    let view = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    assert_eq!(view.engine, EngineKind::Kafka);
    assert_eq!(view.doc.listeners.len(), 3);
}

#[tokio::test]
async fn a_failed_start_ends_createfailed_with_its_reason() {
    let h = harness(250).await;
    h.engine.0.lock().fail_next_start = Some("disk on fire".into());
    let id = h.create("kafka-two").await;
    h.wait_for(&id, Some(InstanceStatus::CreateFailed)).await;
    let r = h.store.instance(&id).await.unwrap().unwrap();
    assert!(
        r.status_reason
            .as_deref()
            .unwrap_or("")
            .contains("disk on fire"),
        "{r:?}"
    );
    h.wait_task(&id, "createInstance", "FAILED").await;
    assert_eq!(h.task_statuses(&id).await.len(), 1);
    // Failed instances are listed only when asked for.
    let listed = |include_failure| ListFilter {
        include_failure,
        ..ListFilter::default()
    };
    let (_, shown) = h
        .plane
        .list_instances(&h.caller.project_id, &listed(false))
        .await
        .unwrap();
    let (_, all) = h
        .plane
        .list_instances(&h.caller.project_id, &listed(true))
        .await
        .unwrap();
    assert_eq!((shown, all), (0, 1));
}

#[tokio::test]
async fn an_exhausted_pool_ends_createfailed() {
    // Room for one three-broker instance.
    let h = harness(4).await;
    let first = h.create("kafka-first").await;
    h.wait_for(&first, Some(InstanceStatus::Running)).await;
    let second = h.create("kafka-second").await;
    h.wait_for(&second, Some(InstanceStatus::CreateFailed))
        .await;
    let r = h.store.instance(&second).await.unwrap().unwrap();
    assert!(r
        .status_reason
        .unwrap_or_default()
        .contains("no free broker addresses"));
    assert_eq!(h.engine.0.lock().starts, vec![first]);
}

#[tokio::test]
async fn addresses_held_by_other_processes_are_skipped() {
    let h = harness(250).await;
    // Another process listens on the pool's first address at the broker port.
    let first = SocketAddr::new(h.config.broker_ip_pool.into(), h.config.broker_port);
    let _held = std::net::TcpListener::bind(first).unwrap();
    let id = h.create("kafka-skip").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    let listeners = h.engine.0.lock().listeners[&id].clone();
    assert!(!listeners.contains(&first), "{listeners:?}");
}

#[tokio::test]
async fn an_address_taken_before_the_start_is_replaced() {
    let h = harness(250).await;
    // The probe sees the first three addresses free, the start finds one taken: the
    // reconciler allocates again and records the addresses it started on.
    let base = u32::from(h.config.broker_ip_pool);
    let taken = SocketAddr::new(Ipv4Addr::from(base + 1).into(), h.config.broker_port);
    h.engine.0.lock().taken.insert(taken);
    let id = h.create("kafka-retry").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    let started = h.engine.0.lock().listeners[&id].clone();
    assert!(!started.contains(&taken));
    let view = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    let recorded: Vec<SocketAddr> = view
        .doc
        .listeners
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(recorded, started);
}

#[tokio::test]
async fn restart_stops_and_starts_the_brokers() {
    let h = harness(250).await;
    let id = h.create("kafka-restart").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.plane.restart_instance(&h.caller, &id).await.unwrap();
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    for _ in 0..100 {
        if h.engine.0.lock().starts.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let s = h.engine.0.lock();
        assert_eq!(s.starts.len(), 2, "{:?}", s.starts);
        assert_eq!(s.stops, vec![id.clone()]);
    }
    h.wait_task(&id, "restartInstance", "SUCCESS").await;
}

#[tokio::test]
async fn extend_grows_the_storage_limit_of_the_running_brokers() {
    let h = harness(250).await;
    let id = h.create("kafka-extend").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    let small = Resize {
        oper_type: Some("storage".into()),
        new_storage_space: Some(200),
    };
    assert!(matches!(
        h.plane.resize_instance(&h.caller, &id, &small).await,
        Err(ControlError::InvalidStorage(_))
    ));
    let flavor_change = Resize {
        oper_type: Some("horizontal".into()),
        new_storage_space: None,
    };
    assert!(matches!(
        h.plane
            .resize_instance(&h.caller, &id, &flavor_change)
            .await,
        Err(ControlError::NotSupported(_))
    ));
    let grow = Resize {
        oper_type: Some("storage".into()),
        new_storage_space: Some(600),
    };
    let task = h
        .plane
        .resize_instance(&h.caller, &id, &grow)
        .await
        .unwrap();
    assert!(!task.is_empty());
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    let view = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    assert_eq!((view.doc.storage_space_gb, view.doc.extend_times), (600, 1));
    let limits = h.engine.0.lock().limits.clone();
    assert_eq!(
        limits.last().and_then(|l| l.storage_bytes),
        Some(600 * (1 << 30))
    );
}

#[tokio::test]
async fn delete_destroys_the_data_and_forgets_the_instance() {
    let h = harness(250).await;
    let id = h.create("kafka-delete").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.plane.delete_instance(&h.caller, &id).await.unwrap();
    h.wait_for(&id, None).await;
    assert!(matches!(
        h.plane.show_instance(&h.caller.project_id, &id).await,
        Err(ControlError::InstanceNotFound(_))
    ));
    let s = h.engine.0.lock();
    assert_eq!(s.destroyed, vec![id.clone()]);
    assert_eq!(s.stops, vec![id]);
}

#[tokio::test]
async fn other_projects_do_not_see_an_instance() {
    let h = harness(250).await;
    let id = h.create("kafka-private").await;
    let stranger = "fedcba9876543210fedcba9876543210";
    assert!(matches!(
        h.plane.show_instance(stranger, &id).await,
        Err(ControlError::InstanceNotFound(_))
    ));
    let (_, total) = h
        .plane
        .list_instances(stranger, &ListFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 0);
}

#[tokio::test]
async fn injected_failures_of_each_transition() {
    let h = harness(250).await;
    h.controls(|c| c.create.fail_next = true);
    let doomed = h.create("kafka-doomed").await;
    h.wait_for(&doomed, Some(InstanceStatus::CreateFailed))
        .await;
    assert!(
        !h.plane.controls().create.fail_next,
        "fail_next is one-shot"
    );
    assert!(h.engine.0.lock().starts.is_empty());

    let id = h.create("kafka-survivor").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.controls(|c| c.restart.fail_next = true);
    h.plane.restart_instance(&h.caller, &id).await.unwrap();
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.wait_task(&id, "restartInstance", "FAILED").await;

    h.controls(|c| c.delete.fail_next = true);
    h.plane.delete_instance(&h.caller, &id).await.unwrap();
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.wait_task(&id, "deleteInstance", "FAILED").await;
    assert!(h.engine.0.lock().destroyed.is_empty());
}

#[tokio::test]
async fn delay_reads_holds_the_status_through_shows_and_listings() {
    let h = harness(250).await;
    h.controls(|c| {
        c.create = TransitionControl {
            delay_reads: 3,
            ..TransitionControl::default()
        }
    });
    let id = h.create("kafka-slow").await;
    // The brokers are up well before the reads run out.
    for _ in 0..100 {
        if !h.engine.0.lock().starts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let show = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    let (listed, _) = h
        .plane
        .list_instances(&h.caller.project_id, &ListFilter::default())
        .await
        .unwrap();
    let third = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    let fourth = h
        .plane
        .show_instance(&h.caller.project_id, &id)
        .await
        .unwrap();
    assert_eq!(
        [show.status, listed[0].status, third.status, fourth.status],
        [
            InstanceStatus::Creating,
            InstanceStatus::Creating,
            InstanceStatus::Creating,
            InstanceStatus::Running
        ]
    );
}

#[tokio::test]
async fn delay_ms_holds_the_final_status() {
    let h = harness(250).await;
    h.controls(|c| c.create.delay_ms = 300);
    let id = h.create("kafka-delayed").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.status(&id).await, Some(InstanceStatus::Creating));
    assert_eq!(
        h.engine.0.lock().starts.len(),
        1,
        "the brokers run meanwhile"
    );
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
}

#[tokio::test]
async fn a_restarted_plane_brings_every_instance_back() {
    let h = harness(250).await;
    let running = h.create("kafka-back").await;
    h.wait_for(&running, Some(InstanceStatus::Running)).await;
    h.engine.0.lock().fail_next_start = Some("no".into());
    let failed = h.create("kafka-never").await;
    h.wait_for(&failed, Some(InstanceStatus::CreateFailed))
        .await;
    h.plane.shutdown().await;

    // A new process: same store, new engine.
    let engine = FakeEngine::default();
    let plane = ControlPlane::new(
        h.store.clone(),
        Engines::new(vec![Arc::new(engine.clone())]),
        h.config.clone(),
    );
    plane.reconcile_all().await.unwrap();
    for _ in 0..100 {
        if !engine.0.lock().starts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    {
        let s = engine.0.lock();
        assert_eq!(
            s.starts,
            vec![running.clone()],
            "only the running instance comes back"
        );
        assert_eq!(
            s.listeners[&running],
            h.engine.0.lock().listeners[&running],
            "on the addresses it had"
        );
    }
    assert_eq!(h.status(&running).await, Some(InstanceStatus::Running));
    assert_eq!(h.status(&failed).await, Some(InstanceStatus::CreateFailed));
}

#[tokio::test]
async fn an_instance_that_cannot_come_back_is_marked_error() {
    let h = harness(250).await;
    let id = h.create("kafka-lost").await;
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    h.plane.shutdown().await;
    let engine = FakeEngine::default();
    engine.0.lock().fail_next_start = Some("data directory unreadable".into());
    let plane = ControlPlane::new(
        h.store.clone(),
        Engines::new(vec![Arc::new(engine)]),
        h.config.clone(),
    );
    plane.reconcile_all().await.unwrap();
    h.wait_for(&id, Some(InstanceStatus::Error)).await;
    let r = h.store.instance(&id).await.unwrap().unwrap();
    assert!(r
        .status_reason
        .unwrap_or_default()
        .contains("data directory unreadable"));
}

#[tokio::test]
async fn engines_this_build_lacks_are_refused_at_create() {
    let h = harness(250).await;
    let mut req = new_instance(&h.plane, "rabbit-one");
    req.engine = Some(EngineKind::Rabbitmq);
    assert!(matches!(
        h.plane
            .create_instance(&h.caller, &req, CreateShape::Flavor)
            .await,
        Err(ControlError::EngineUnavailable(EngineKind::Rabbitmq))
    ));
    let (_, total) = h
        .plane
        .list_instances(&h.caller.project_id, &ListFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 0, "nothing was recorded");
}

#[tokio::test]
async fn sasl_users_are_provisioned_before_the_first_start() {
    let h = harness(250).await;
    let mut req = new_instance(&h.plane, "kafka-sasl");
    req.ssl_enable = Some(true);
    req.access_user = Some("app-user".into());
    req.password = Some("App-passw0rd".into());
    let id = h
        .plane
        .create_instance(&h.caller, &req, CreateShape::Flavor)
        .await
        .unwrap();
    h.wait_for(&id, Some(InstanceStatus::Running)).await;
    let provisioned = h.engine.0.lock().provisioned.clone();
    assert_eq!(provisioned.len(), 1);
    assert!(provisioned[0].0.ends_with(&id) && provisioned[0].1 == "app-user");
}

#[test]
fn the_broker_subnet_covers_the_pool() {
    let mut c = PlaneConfig {
        data_dir: "x".into(),
        region: "r".into(),
        broker_ip_pool: Ipv4Addr::new(127, 0, 1, 1),
        broker_ip_pool_size: 250,
        broker_port: 9092,
        amqp_port: 5672,
        amqp_management_port: 15672,
        rocketmq_namesrv_port: 8100,
        rocketmq_broker_port: 10100,
        advertised_host: None,
        instance_quota: 1,
        controls: LifecycleControls::default(),
    };
    assert_eq!(c.broker_subnet(), "127.0.1.0/24");
    c.broker_ip_pool_size = 1;
    assert_eq!(c.broker_subnet(), "127.0.1.1/32");
    c.broker_ip_pool = Ipv4Addr::new(10, 0, 0, 200);
    c.broker_ip_pool_size = 100;
    assert_eq!(c.broker_subnet(), "10.0.0.0/23");
}
