//! `opendms rocketmq`: a standalone RocketMQ 4.x cluster, one name server and N brokers.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rocketmq::{BrokerConfig, FlushMode, RocketmqCluster, RocketmqConfig};

#[derive(clap::Args)]
pub struct RocketmqArgs {
    /// Name server listen address (what clients set as `namesrvAddr`).
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: SocketAddr,
    /// First broker's listen address; broker i listens on its port + 10·i (port 0: a free
    /// port for each).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker_listen: SocketAddr,
    /// Number of brokers (broker-a, broker-b, …).
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// Host or IP the name server advertises for the brokers instead of their listen IP.
    #[arg(long)]
    advertised_host: Option<IpAddr>,
    /// Cluster name the brokers register under.
    #[arg(long, default_value = "DefaultCluster")]
    cluster: String,
    /// Where each broker keeps its topics, groups, offsets and messages.
    #[arg(long, default_value = "opendms-data/rocketmq")]
    data_dir: PathBuf,
    /// sync: a send is on disk before it is acknowledged; async: flushed every 500 ms.
    #[arg(long, default_value = "async")]
    flush: String,
    /// Let producers create topics by sending to them (through TBW102), as Apache's
    /// autoCreateTopicEnable.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// Storage quota of each broker, in bytes; sends are refused beyond it.
    #[arg(long)]
    quota_bytes: Option<u64>,
    /// How often undecided transactional messages are checked back with their producer,
    /// in milliseconds (Apache's transactionCheckInterval).
    #[arg(long, default_value_t = 60_000)]
    transaction_check_interval_ms: u64,
    /// Age at which an undecided transactional message is checked, in milliseconds
    /// (Apache's transactionTimeOut).
    #[arg(long, default_value_t = 6_000)]
    transaction_timeout_ms: u64,
    /// Switch plain ACL on with the accounts of this file: Apache's plain_acl.yml in its JSON
    /// form (globalWhiteRemoteAddresses, accounts with accessKey, secretKey,
    /// whiteRemoteAddress, admin, defaultTopicPerm, defaultGroupPerm, topicPerms, groupPerms).
    #[arg(long)]
    acl_file: Option<PathBuf>,
    /// SQL92 property filters (Apache's enablePropertyFilter).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    enable_property_filter: bool,
}

pub async fn run(args: RocketmqArgs) -> anyhow::Result<()> {
    let flush = match args.flush.as_str() {
        "sync" => FlushMode::Sync,
        "async" => FlushMode::Async,
        _ => anyhow::bail!("--flush must be sync or async"),
    };
    if args.brokers == 0 || args.brokers > 26 {
        anyhow::bail!("--brokers must be between 1 and 26");
    }
    let acl = match &args.acl_file {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read the acl file {}", path.display()))?;
            let config: rocketmq::acl::AclConfig = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not plain_acl in JSON form", path.display()))?;
            for account in &config.accounts {
                rocketmq::acl::check_account(account).map_err(anyhow::Error::msg)?;
            }
            Some(config)
        }
        None => None,
    };
    let mut brokers = Vec::new();
    for i in 0..args.brokers {
        let name = format!("broker-{}", char::from(b'a' + i as u8));
        let mut listen = args.broker_listen;
        if listen.port() != 0 {
            let port = u16::try_from(usize::from(listen.port()) + 10 * i)
                .context("broker ports run past 65535")?;
            listen.set_port(port);
        }
        let mut bc = BrokerConfig::new(&name, listen, args.data_dir.join(&name));
        if let Some(host) = args.advertised_host {
            bc.advertised = SocketAddr::new(host, listen.port());
        }
        bc.cluster.clone_from(&args.cluster);
        bc.flush = flush;
        bc.auto_create_topics = args.auto_create_topics;
        bc.quota_bytes = args.quota_bytes;
        bc.transaction_check_interval = Duration::from_millis(args.transaction_check_interval_ms);
        bc.transaction_timeout = Duration::from_millis(args.transaction_timeout_ms);
        bc.acl.clone_from(&acl);
        bc.enable_property_filter = args.enable_property_filter;
        brokers.push(bc);
    }
    let cluster = RocketmqCluster::start(RocketmqConfig {
        namesrv_listen: args.listen,
        brokers,
    })
    .await
    .context("cannot start the rocketmq cluster")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "name server listening on {}", cluster.namesrv_addr())?;
        for (b, addr) in cluster.brokers().zip(cluster.broker_addrs()) {
            writeln!(out, "broker {} listening on {addr}", b.name())?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    crate::wait_for_signal().await?;
    tracing::info!("shutting down");
    cluster.stop().await;
    Ok(())
}
