//! Settings of one Kafka instance. Defaults follow Apache Kafka's broker defaults where the
//! product has no reason to differ.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use msglog::{FlushPolicy, LogConfig, LogIo, QuotaPolicy, StoreConfig};

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// One listen address per broker; broker `i` has node id `i`.
    pub listeners: Vec<SocketAddr>,
    /// Host advertised to clients instead of each listener's IP (for NAT or containers).
    pub advertised_host: Option<String>,
    /// Where the instance keeps its partitions and metadata.
    pub data_dir: PathBuf,
    /// Create a topic when a client asks Metadata for an unknown one (Kafka's
    /// `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (Kafka's `num.partitions`; Huawei uses 3).
    pub default_partitions: i32,
    /// Largest request frame accepted; bigger frames close the connection
    /// (Kafka's `socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Largest record batch a topic accepts unless its `max.message.bytes` says otherwise.
    pub max_message_bytes: i32,
    /// Upper bound of partitions over all topics (the instance specification's limit).
    pub max_partitions: Option<u32>,
    /// Require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) on every connection.
    pub sasl: bool,
    /// Enforce ACLs on every request.
    pub authorizer: bool,
    /// Principals (`User:name`) that bypass ACLs.
    pub super_users: Vec<String>,
    /// Users to create (or whose password to reset) at start.
    pub users: Vec<(String, String)>,
    /// Client networks allowed to connect; `None` lets everyone in.
    pub allowed_ips: Option<Vec<String>>,
    /// Storage quota, quota policy and flush policy of the whole instance.
    pub store: StoreConfig,
    /// Log settings of topics that do not override them.
    pub log: LogConfig,
    /// How often retention and quota are enforced.
    pub retention_check_interval: Duration,
}

impl KafkaConfig {
    /// A single-host configuration with `brokers` brokers on consecutive loopback-style IPs.
    pub fn new(data_dir: PathBuf, listeners: Vec<SocketAddr>) -> Self {
        KafkaConfig {
            listeners,
            advertised_host: None,
            data_dir,
            auto_create_topics: true,
            default_partitions: 3,
            max_frame_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            max_partitions: None,
            sasl: false,
            authorizer: false,
            super_users: Vec::new(),
            users: Vec::new(),
            allowed_ips: None,
            store: StoreConfig {
                quota_bytes: None,
                quota_policy: QuotaPolicy::TimeBase,
                flush: FlushPolicy::AcksAll,
                io: LogIo::Direct,
            },
            log: LogConfig::default(),
            retention_check_interval: Duration::from_secs(30),
        }
    }
}

/// Expands one listen address into `count` addresses: broker `i` gets the IP `ip + i` with the
/// same port, so that on one host every broker of an instance can keep the standard port.
pub fn spread_listeners(first: SocketAddr, count: usize) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let ip = match first.ip() {
            std::net::IpAddr::V4(v4) => {
                let n = u32::from(v4)
                    .checked_add(i as u32)
                    .ok_or_else(|| format!("no room for {count} addresses after {first}"))?;
                std::net::IpAddr::V4(n.into())
            }
            std::net::IpAddr::V6(v6) if count == 1 => std::net::IpAddr::V6(v6),
            std::net::IpAddr::V6(_) => {
                return Err("give one --listen per broker for IPv6 addresses".to_string())
            }
        };
        out.push(SocketAddr::new(ip, first.port()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_over_consecutive_ips() {
        let addrs = spread_listeners("127.0.0.1:9092".parse().unwrap(), 3).unwrap();
        let want: Vec<SocketAddr> = ["127.0.0.1:9092", "127.0.0.2:9092", "127.0.0.3:9092"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(addrs, want);
        assert!(spread_listeners("255.255.255.255:1".parse().unwrap(), 2).is_err());
    }
}
