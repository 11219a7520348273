//! `opendms serve`: the control plane and the brokers of every instance in one process.
//!
//! Settings come from, in rising precedence: the defaults below, a TOML file (`--config`),
//! `OPENDMS_*` environment variables, and command-line flags.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use control::lifecycle::LifecycleControls;
use control::{ControlPlane, PlaneConfig};
use serde::{Deserialize, Serialize};
use store::{CachedStore, Credential, Domain, MetaStore, Project, SqliteStore, User};

/// The configuration file's shape; every field has a documented default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// HTTP address of the APIs (`OPENDMS_LISTEN`). Loopback by default.
    pub listen: SocketAddr,
    /// Metadata, credentials and every instance's data (`OPENDMS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Region this server answers as (`OPENDMS_REGION`): the project name and AZ codes.
    pub region: String,
    /// Host advertised to Kafka clients instead of the broker listen addresses
    /// (`OPENDMS_ADVERTISED_HOST`), for clients on other machines or in containers.
    pub advertised_host: Option<String>,
    /// First address of the pool brokers listen on (`OPENDMS_BROKER_IP_POOL`); each broker
    /// of each instance takes its own address, so all keep the same port, as in the cloud.
    pub broker_ip_pool: Ipv4Addr,
    /// Addresses in the pool (`OPENDMS_BROKER_IP_POOL_SIZE`).
    pub broker_ip_pool_size: u32,
    /// Port every Kafka broker listens on (`OPENDMS_BROKER_PORT`).
    pub broker_port: u16,
    /// AMQP port of every RabbitMQ instance (`OPENDMS_AMQP_PORT`).
    pub amqp_port: u16,
    /// Management API port of every RabbitMQ instance (`OPENDMS_AMQP_MANAGEMENT_PORT`).
    pub amqp_management_port: u16,
    /// Name server port of every RocketMQ instance (`OPENDMS_ROCKETMQ_NAMESRV_PORT`; 8100 as
    /// in the cloud's `namesrv_address`).
    pub rocketmq_namesrv_port: u16,
    /// Port every RocketMQ broker listens on (`OPENDMS_ROCKETMQ_BROKER_PORT`; 10100).
    pub rocketmq_broker_port: u16,
    /// Instances a project may have (reported by `show_quotas`).
    pub instance_quota: u32,
    /// The account created at first start (`OPENDMS_DOMAIN`, `OPENDMS_USER`,
    /// `OPENDMS_PASSWORD`, `OPENDMS_PROJECT_ID`, `OPENDMS_ACCESS_KEY`, `OPENDMS_SECRET_KEY`).
    /// Missing values are generated once and kept in `<data_dir>/credentials.json`.
    pub bootstrap: BootstrapConfig,
    /// Transition delays and injected failures (also settable at
    /// `PUT /opendms/admin/lifecycle`).
    pub lifecycle: LifecycleControls,
    /// Alibaba `RegionId` → project id. A region not listed uses the account's project
    /// named after it, else the account's first project.
    pub alibaba_regions: std::collections::HashMap<String, String>,
    /// Requests per second per user and Alibaba action (`OPENDMS_ALIBABA_QPS`). Unset: the
    /// documented rates (3, CreateTopic 1); 0 turns throttling off.
    pub alibaba_qps: Option<f64>,
    /// Seconds between samples of the brokers for the monitoring APIs
    /// (`OPENDMS_METRICS_INTERVAL_SECS`).
    pub metrics_interval_secs: u64,
    /// How long samples are kept.
    pub metrics_retention_hours: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8780)),
            data_dir: PathBuf::from("opendms-data"),
            region: "cn-north-4".into(),
            advertised_host: None,
            broker_ip_pool: Ipv4Addr::new(127, 0, 1, 1),
            broker_ip_pool_size: 250,
            broker_port: 9092,
            amqp_port: 5672,
            amqp_management_port: 15672,
            rocketmq_namesrv_port: 8100,
            rocketmq_broker_port: 10100,
            instance_quota: 100,
            bootstrap: BootstrapConfig::default(),
            lifecycle: LifecycleControls::default(),
            alibaba_regions: Default::default(),
            alibaba_qps: None,
            metrics_interval_secs: 60,
            metrics_retention_hours: 24,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    pub domain: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub project_id: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see README for every key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address [env: OPENDMS_LISTEN] [default: 127.0.0.1:8780]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [env: OPENDMS_DATA_DIR] [default: opendms-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn load_config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => ServeConfig::default(),
    };
    if let Some(v) = env("OPENDMS_LISTEN") {
        cfg.listen = v.parse().context("OPENDMS_LISTEN must be HOST:PORT")?;
    }
    if let Some(v) = env("OPENDMS_DATA_DIR") {
        cfg.data_dir = v.into();
    }
    if let Some(v) = env("OPENDMS_REGION") {
        cfg.region = v;
    }
    if let Some(v) = env("OPENDMS_ADVERTISED_HOST") {
        cfg.advertised_host = Some(v);
    }
    if let Some(v) = env("OPENDMS_BROKER_IP_POOL") {
        cfg.broker_ip_pool = v
            .parse()
            .context("OPENDMS_BROKER_IP_POOL must be an IPv4 address")?;
    }
    if let Some(v) = env("OPENDMS_BROKER_IP_POOL_SIZE") {
        cfg.broker_ip_pool_size = v
            .parse()
            .context("OPENDMS_BROKER_IP_POOL_SIZE must be a number")?;
    }
    if let Some(v) = env("OPENDMS_METRICS_INTERVAL_SECS") {
        cfg.metrics_interval_secs = v
            .parse()
            .context("OPENDMS_METRICS_INTERVAL_SECS must be a number")?;
    }
    if let Some(v) = env("OPENDMS_ALIBABA_QPS") {
        cfg.alibaba_qps = Some(v.parse().context("OPENDMS_ALIBABA_QPS must be a number")?);
    }
    if let Some(v) = env("OPENDMS_BROKER_PORT") {
        cfg.broker_port = v
            .parse()
            .context("OPENDMS_BROKER_PORT must be a port number")?;
    }
    if let Some(v) = env("OPENDMS_AMQP_PORT") {
        cfg.amqp_port = v
            .parse()
            .context("OPENDMS_AMQP_PORT must be a port number")?;
    }
    if let Some(v) = env("OPENDMS_AMQP_MANAGEMENT_PORT") {
        cfg.amqp_management_port = v
            .parse()
            .context("OPENDMS_AMQP_MANAGEMENT_PORT must be a port number")?;
    }
    if let Some(v) = env("OPENDMS_ROCKETMQ_NAMESRV_PORT") {
        cfg.rocketmq_namesrv_port = v
            .parse()
            .context("OPENDMS_ROCKETMQ_NAMESRV_PORT must be a port number")?;
    }
    if let Some(v) = env("OPENDMS_ROCKETMQ_BROKER_PORT") {
        cfg.rocketmq_broker_port = v
            .parse()
            .context("OPENDMS_ROCKETMQ_BROKER_PORT must be a port number")?;
    }
    let b = &mut cfg.bootstrap;
    for (slot, name) in [
        (&mut b.domain, "OPENDMS_DOMAIN"),
        (&mut b.user, "OPENDMS_USER"),
        (&mut b.password, "OPENDMS_PASSWORD"),
        (&mut b.project_id, "OPENDMS_PROJECT_ID"),
        (&mut b.access_key, "OPENDMS_ACCESS_KEY"),
        (&mut b.secret_key, "OPENDMS_SECRET_KEY"),
    ] {
        if let Some(v) = env(name) {
            *slot = Some(v);
        }
    }
    if let Some(v) = args.listen {
        cfg.listen = v;
    }
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(p) = &cfg.bootstrap.project_id {
        if p.len() != 32
            || !p
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            bail!("the project id must be 32 lowercase hex characters, got {p:?}");
        }
    }
    Ok(cfg)
}

/// The bootstrap account with every value filled in: configured values win, then values
/// generated at an earlier start (credentials.json), then new ones.
fn complete_bootstrap(
    data_dir: &Path,
    given: &BootstrapConfig,
) -> anyhow::Result<(BootstrapConfig, Vec<&'static str>)> {
    let path = data_dir.join("credentials.json");
    let saved: BootstrapConfig = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BootstrapConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut generated = Vec::new();
    let mut pick = |given: &Option<String>,
                    saved: &Option<String>,
                    name: &'static str,
                    new: &dyn Fn() -> String| {
        given.clone().or_else(|| saved.clone()).unwrap_or_else(|| {
            generated.push(name);
            new()
        })
    };
    let out = BootstrapConfig {
        domain: Some(pick(&given.domain, &saved.domain, "domain", &|| {
            "opendms".into()
        })),
        user: Some(pick(&given.user, &saved.user, "user", &|| "admin".into())),
        password: Some(pick(&given.password, &saved.password, "password", &|| {
            format!("Od-{}", auth::keys::new_secret_key())
        })),
        project_id: Some(pick(
            &given.project_id,
            &saved.project_id,
            "project_id",
            &auth::keys::new_hex_id,
        )),
        access_key: Some(pick(
            &given.access_key,
            &saved.access_key,
            "access_key",
            &auth::keys::new_access_key,
        )),
        secret_key: Some(pick(
            &given.secret_key,
            &saved.secret_key,
            "secret_key",
            &auth::keys::new_secret_key,
        )),
    };
    if !generated.is_empty() {
        // Only generated values are kept on disk; configured ones stay where the user put them.
        let mut keep = saved.clone();
        for name in &generated {
            match *name {
                "domain" => keep.domain = out.domain.clone(),
                "user" => keep.user = out.user.clone(),
                "password" => keep.password = out.password.clone(),
                "project_id" => keep.project_id = out.project_id.clone(),
                "access_key" => keep.access_key = out.access_key.clone(),
                _ => keep.secret_key = out.secret_key.clone(),
            }
        }
        write_private(&path, &serde_json::to_vec_pretty(&keep)?)?;
    }
    Ok((out, generated))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn bootstrap_identity(
    store: &dyn MetaStore,
    b: &BootstrapConfig,
    region: &str,
) -> anyhow::Result<()> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let domain_name = text(&b.domain);
    let user_name = text(&b.user);
    // Keep the ids of an account created at an earlier start.
    let domain = match store.domain_by_name(&domain_name).await? {
        Some(d) => d,
        None => Domain {
            id: auth::keys::new_hex_id(),
            name: domain_name,
        },
    };
    let user = match store.user_by_name(&domain.id, &user_name).await? {
        Some(u) => u,
        None => User {
            id: auth::keys::new_hex_id(),
            domain_id: domain.id.clone(),
            name: user_name,
            password_hash: auth::password::hash_password(&text(&b.password)),
        },
    };
    let project = Project {
        id: text(&b.project_id),
        domain_id: domain.id.clone(),
        name: region.to_string(),
    };
    let credential = Credential {
        access_key: text(&b.access_key),
        secret_key: text(&b.secret_key),
        user_id: user.id.clone(),
    };
    store
        .bootstrap(&domain, &user, &project, &credential)
        .await?;
    Ok(())
}

async fn token_key(store: &dyn MetaStore) -> anyhow::Result<Vec<u8>> {
    const KEY: &str = "iam_token_signing_key";
    if let Some(hex_key) = store.setting(KEY).await? {
        if let Some(key) = decode_hex(&hex_key) {
            return Ok(key);
        }
    }
    let key = auth::keys::new_signing_key().to_vec();
    store.set_setting(KEY, &encode_hex(&key)).await?;
    Ok(key)
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    // This process is the only writer of its SQLite file, so what every request reads can be
    // kept in memory in front of it.
    let sqlite = SqliteStore::open(&cfg.data_dir.join("metadata.db")).await?;
    let store: Arc<dyn MetaStore> = Arc::new(CachedStore::open(sqlite).await?);
    let (boot, generated) = complete_bootstrap(&cfg.data_dir, &cfg.bootstrap)?;
    bootstrap_identity(store.as_ref(), &boot, &cfg.region).await?;
    let token_key = token_key(store.as_ref()).await?;

    let engines = engine::Engines::embedded();
    let plane = ControlPlane::new(
        store.clone(),
        engines,
        PlaneConfig {
            data_dir: cfg.data_dir.clone(),
            region: cfg.region.clone(),
            broker_ip_pool: cfg.broker_ip_pool,
            broker_ip_pool_size: cfg.broker_ip_pool_size,
            broker_port: cfg.broker_port,
            amqp_port: cfg.amqp_port,
            amqp_management_port: cfg.amqp_management_port,
            rocketmq_namesrv_port: cfg.rocketmq_namesrv_port,
            rocketmq_broker_port: cfg.rocketmq_broker_port,
            advertised_host: cfg.advertised_host.clone(),
            instance_quota: cfg.instance_quota,
            controls: cfg.lifecycle.clone(),
        },
    );
    plane.reconcile_all().await?;
    let state = Arc::new(api_huawei::ApiState {
        plane: plane.clone(),
        store: store.clone(),
        token_key,
        metrics: Arc::new(api_huawei::Metrics::default()),
    });
    let mut throttle = api_alibaba::ThrottleConfig::default();
    if let Some(qps) = cfg.alibaba_qps {
        throttle.default_qps = qps;
        throttle.per_action.clear();
    }
    let metrics = control::metrics::MetricStore::new(
        std::time::Duration::from_secs(cfg.metrics_interval_secs.max(1)),
        std::time::Duration::from_secs(cfg.metrics_retention_hours.max(1) * 3600),
    );
    control::metrics::spawn_sampler(plane.clone(), metrics.clone());
    let ali = api_alibaba::AliState::new(
        plane.clone(),
        store.clone(),
        cfg.alibaba_regions.clone(),
        throttle,
        metrics,
    );
    // Alibaba's RPC API lives on `/`; every other path is the Huawei API.
    let app = axum::Router::new()
        .route("/", axum::routing::any(api_alibaba::handle).with_state(ali))
        .merge(api_huawei::router(state));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        writeln!(out, "region: {}", cfg.region)?;
        writeln!(
            out,
            "project id: {}",
            boot.project_id.as_deref().unwrap_or("")
        )?;
        writeln!(
            out,
            "access key: {}",
            boot.access_key.as_deref().unwrap_or("")
        )?;
        if generated.contains(&"secret_key") {
            writeln!(
                out,
                "secret key: {}",
                boot.secret_key.as_deref().unwrap_or("")
            )?;
        }
        writeln!(
            out,
            "domain: {}  user: {}",
            boot.domain.as_deref().unwrap_or(""),
            boot.user.as_deref().unwrap_or("")
        )?;
        if generated.contains(&"password") {
            writeln!(out, "password: {}", boot.password.as_deref().unwrap_or(""))?;
        }
        let credentials = cfg.data_dir.join("credentials.json");
        if !generated.is_empty() {
            writeln!(
                out,
                "generated credentials are kept in {}",
                credentials.display()
            )?;
        } else if credentials.exists() {
            writeln!(
                out,
                "credentials generated at the first start are in {}",
                credentials.display()
            )?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "control plane started");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            if let Err(e) = crate::wait_for_signal().await {
                tracing::warn!(error = %e, "signal handling failed");
            }
        })
        .await?;
    tracing::info!("shutting down");
    plane.shutdown().await;
    Ok(())
}
