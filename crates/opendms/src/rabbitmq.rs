//! `opendms rabbitmq`: one standalone AMQP 0-9-1 broker.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use amqp::{AmqpConfig, AmqpServer};
use amqp_management::{ManagementConfig, ManagementServer};
use anyhow::Context;
use msglog::LogIo;

#[derive(clap::Args)]
pub struct RabbitmqArgs {
    /// AMQP listen address.
    #[arg(long, default_value = "127.0.0.1:5672")]
    listen: SocketAddr,
    /// Listen address of the management HTTP API (RabbitMQ's `/api`).
    #[arg(long, default_value = "127.0.0.1:15672")]
    management_listen: SocketAddr,
    /// Where definitions and persistent messages are kept.
    #[arg(long, default_value = "opendms-data/rabbitmq")]
    data_dir: PathBuf,
    /// Heartbeat the broker proposes, in seconds (0: none).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Largest frame the broker accepts, in bytes.
    #[arg(long, default_value_t = 131_072)]
    frame_max: u32,
    /// Storage quota of persistent messages, in bytes.
    #[arg(long)]
    quota_bytes: Option<u64>,
    /// How queue logs reach the disk: direct (O_DIRECT) or buffered.
    #[arg(long, default_value = "direct")]
    log_io: String,
    /// Memory queued messages may take before publishers are blocked ("low on memory");
    /// default 40% of the machine's memory, as RabbitMQ's high watermark.
    #[arg(long)]
    memory_limit_bytes: Option<u64>,
    /// Plug-ins to switch on, comma-separated (rabbitmq_delayed_message_exchange,
    /// rabbitmq_consistent_hash_exchange); "none" for none.
    #[arg(
        long,
        default_value = "rabbitmq_delayed_message_exchange,rabbitmq_consistent_hash_exchange"
    )]
    plugins: String,
}

pub async fn run(args: RabbitmqArgs) -> anyhow::Result<()> {
    let mut config = AmqpConfig::new(args.listen, args.data_dir);
    config.heartbeat = args.heartbeat;
    config.frame_max = args.frame_max.max(amqp::frame::FRAME_MIN_SIZE);
    config.quota_bytes = args.quota_bytes;
    if args.memory_limit_bytes.is_some() {
        config.memory_limit_bytes = args.memory_limit_bytes;
    }
    config.plugins = Vec::new();
    for plugin in args
        .plugins
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "none")
    {
        if !amqp::exchange::PLUGINS.contains(&plugin) {
            anyhow::bail!(
                "unknown plug-in {plugin}: known ones are {}",
                amqp::exchange::PLUGINS.join(", ")
            );
        }
        config.plugins.push(plugin.to_string());
    }
    config.log_io = match args.log_io.as_str() {
        "direct" => LogIo::Direct,
        "buffered" => LogIo::Buffered,
        _ => anyhow::bail!("--log-io must be direct or buffered"),
    };
    let server = AmqpServer::start(config)
        .await
        .with_context(|| format!("cannot start the amqp broker on {}", args.listen))?;
    let mut management_config = ManagementConfig::new(args.management_listen);
    management_config.amqp_listener = Some(server.local_addr());
    let management = match ManagementServer::start(server.broker().clone(), management_config).await
    {
        Ok(m) => m,
        Err(e) => {
            server.stop().await;
            return Err(e).with_context(|| {
                format!(
                    "cannot start the management api on {}",
                    args.management_listen
                )
            });
        }
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "amqp listening on {}", server.local_addr())?;
        writeln!(out, "management listening on {}", management.local_addr())?;
        writeln!(out, "ready")?;
        out.flush()?;
    }
    crate::wait_for_signal().await?;
    tracing::info!("shutting down");
    management.stop().await;
    server.stop().await;
    Ok(())
}
