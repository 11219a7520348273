//! The `opendms` binary: command line, configuration and wiring.

mod rabbitmq;
mod rocketmq;
mod serve;

/// mimalloc instead of glibc's malloc: the brokers allocate and free small buffers per
/// message on several threads, where glibc's malloc led the RocketMQ send profile (malloc and
/// free ~25% of broker CPU under bench/rocketmq-run's pipelined load; 22.6 -> 17.9 µs per
/// message with mimalloc). Built without transparent huge pages (`no_thp`): with them an idle
/// `opendms rocketmq` held 16 MB instead of 8.6. mimalloc serves large buffers from their own
/// mappings and returns them when freed, which glibc needed its mmap threshold fixed for.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka::config::spread_listeners;
use kafka::{KafkaConfig, KafkaInstance};
use msglog::{FlushPolicy, LogIo, QuotaPolicy};

#[derive(Parser)]
#[command(
    name = "opendms",
    version,
    about = "Self-hosted Distributed Message Service"
)]
struct Cli {
    /// Async worker threads [default: one per core; for `rabbitmq` and `rocketmq` one fewer]
    #[arg(long, global = true, env = "OPENDMS_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// One worker per core, except for the standalone AMQP and RocketMQ brokers, which leave
    /// a core to their writer threads, the kernel's network work and the clients beside them.
    /// Measured on 2 cores (1 worker instead of 2, LTO build): RocketMQ 1 KiB sends with 64
    /// producers 13.9 -> 10.4 µs of broker CPU each (context switches were ~20% of the send
    /// profile), pulls 0.98 -> 0.78 µs per message; AMQP transient 16 B 2.38 -> 2.17 µs.
    /// `serve` and `kafka` keep one per core, as their benchmarks were measured.
    fn worker_threads(&self) -> usize {
        if let Some(n) = self.worker_threads {
            return n.max(1);
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        match self.command {
            Command::Rabbitmq(_) | Command::Rocketmq(_) => cores.saturating_sub(1).max(1),
            Command::Serve(_) | Command::Kafka(_) => cores,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the control-plane APIs and the brokers of every instance they create.
    Serve(serve::ServeArgs),
    /// Run a standalone Kafka-compatible cluster (N brokers in this process).
    Kafka(KafkaArgs),
    /// Run a standalone RabbitMQ-compatible AMQP 0-9-1 broker.
    Rabbitmq(rabbitmq::RabbitmqArgs),
    /// Run a standalone RocketMQ 4.x cluster: a name server and N brokers.
    Rocketmq(rocketmq::RocketmqArgs),
}

#[derive(clap::Args)]
struct KafkaArgs {
    /// Listen address. Given once, broker i listens on the IP plus i at the same port
    /// (127.0.0.1, 127.0.0.2, …); port 0 picks a free port per broker. Repeat it to give
    /// each broker its own address.
    #[arg(long = "listen", default_value = "127.0.0.1:9092")]
    listen: Vec<SocketAddr>,
    /// Number of brokers when a single --listen is given.
    #[arg(long, default_value_t = 3)]
    brokers: usize,
    /// Where partitions, offsets, users and ACLs are kept.
    #[arg(long, default_value = "opendms-data/kafka")]
    data_dir: PathBuf,
    /// Host name or IP advertised to clients instead of the listen IPs.
    #[arg(long)]
    advertised_host: Option<String>,
    /// Create or reset a SASL user, as NAME:PASSWORD. Repeatable.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) on every connection.
    #[arg(long)]
    sasl: bool,
    /// Enforce Kafka ACLs.
    #[arg(long)]
    authorizer: bool,
    /// A user that bypasses ACLs. Repeatable.
    #[arg(long = "super-user")]
    super_users: Vec<String>,
    /// Create unknown topics when clients ask for them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with -1.
    #[arg(long, default_value_t = 3)]
    default_partitions: i32,
    /// Largest request accepted; larger frames close the connection.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_frame_bytes: usize,
    /// Largest record batch accepted unless a topic sets max.message.bytes.
    #[arg(long, default_value_t = 1_048_588)]
    max_message_bytes: i32,
    /// Most partitions the instance may hold over all topics.
    #[arg(long)]
    max_partitions: Option<u32>,
    /// Storage quota of the instance in bytes.
    #[arg(long)]
    quota_bytes: Option<u64>,
    /// What happens at the quota: time_base deletes the oldest data, produce_reject refuses
    /// new records.
    #[arg(long, default_value = "time_base")]
    retention_policy: String,
    /// Default topic retention in hours (-1: forever).
    #[arg(long, default_value_t = 72)]
    retention_hours: i64,
    /// When appended data is forced to disk: acks-all (before answering acks=all
    /// produces), every-append, os, or interval:MS.
    #[arg(long, default_value = "acks-all")]
    flush: String,
    /// How segment data reaches the disk: direct (O_DIRECT appends and reads, no page
    /// cache) or buffered (through the page cache, as Kafka does).
    #[arg(long, default_value = "direct")]
    log_io: String,
    /// Seconds between retention and quota checks.
    #[arg(long, default_value_t = 30)]
    retention_check_secs: u64,
}

fn parse_flush(s: &str) -> anyhow::Result<FlushPolicy> {
    Ok(match s {
        "acks-all" => FlushPolicy::AcksAll,
        "every-append" => FlushPolicy::EveryAppend,
        "os" => FlushPolicy::Os,
        other => match other.strip_prefix("interval:") {
            Some(ms) => FlushPolicy::Interval(Duration::from_millis(
                ms.parse()
                    .context("--flush interval:MS needs a number of milliseconds")?,
            )),
            None => bail!("--flush must be acks-all, every-append, os or interval:MS"),
        },
    })
}

fn kafka_config(args: KafkaArgs) -> anyhow::Result<KafkaConfig> {
    let listeners = match args.listen.as_slice() {
        [one] => spread_listeners(*one, args.brokers.max(1)).map_err(anyhow::Error::msg)?,
        many => many.to_vec(),
    };
    let mut cfg = KafkaConfig::new(args.data_dir, listeners);
    cfg.advertised_host = args.advertised_host;
    cfg.auto_create_topics = args.auto_create_topics;
    cfg.default_partitions = args.default_partitions;
    cfg.max_frame_bytes = args.max_frame_bytes;
    cfg.max_message_bytes = args.max_message_bytes;
    cfg.max_partitions = args.max_partitions;
    cfg.sasl = args.sasl;
    cfg.authorizer = args.authorizer;
    cfg.super_users = args
        .super_users
        .into_iter()
        .map(|u| {
            if u.starts_with("User:") {
                u
            } else {
                format!("User:{u}")
            }
        })
        .collect();
    for u in args.users {
        let Some((name, password)) = u.split_once(':') else {
            bail!("--user takes NAME:PASSWORD");
        };
        cfg.users.push((name.to_string(), password.to_string()));
    }
    cfg.store.quota_bytes = args.quota_bytes;
    cfg.store.quota_policy = match args.retention_policy.as_str() {
        "time_base" => QuotaPolicy::TimeBase,
        "produce_reject" => QuotaPolicy::ProduceReject,
        _ => bail!("--retention-policy must be time_base or produce_reject"),
    };
    cfg.store.flush = parse_flush(&args.flush)?;
    cfg.store.io = match args.log_io.as_str() {
        "direct" => LogIo::Direct,
        "buffered" => LogIo::Buffered,
        _ => bail!("--log-io must be direct or buffered"),
    };
    cfg.log.retention_ms = (args.retention_hours >= 0).then(|| args.retention_hours * 3_600_000);
    cfg.retention_check_interval = Duration::from_secs(args.retention_check_secs.max(1));
    Ok(cfg)
}

async fn run_kafka(args: KafkaArgs) -> anyhow::Result<()> {
    let cfg = kafka_config(args)?;
    let instance = KafkaInstance::start(cfg).await?;
    {
        let mut out = std::io::stdout().lock();
        for b in instance.brokers() {
            writeln!(out, "broker {} listening on {}", b.node_id, b.listen)?;
        }
        writeln!(out, "bootstrap servers: {}", instance.bootstrap_servers())?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    instance.shutdown().await;
    Ok(())
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Kafka(args) => runtime.block_on(run_kafka(args)),
        Command::Rabbitmq(args) => runtime.block_on(rabbitmq::run(args)),
        Command::Rocketmq(args) => runtime.block_on(rocketmq::run(args)),
    }
}
