//! The broker address pool: every broker of every instance listens on its own address of
//! the pool, at the same port, as brokers do in the cloud.
//!
//! An address is free when no instance records it and no other process holds it: another
//! `opendms serve`, a broker started by hand, anything listening on the port. The second
//! check is a bind of the address at allocation time; an address taken between the check and
//! the brokers' start is handled by the reconciler, which allocates again.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use tracing::debug;

use super::ControlPlane;
use crate::error::ControlError;
use crate::model::InstanceDoc;

impl ControlPlane {
    /// Picks `count` free addresses of the pool, or `None` when the pool has too few.
    /// `avoid` are addresses known to be unusable (the reconciler found them taken).
    pub(crate) async fn allocate_listeners(
        &self,
        count: u32,
        avoid: &[SocketAddr],
    ) -> Result<Option<Vec<SocketAddr>>, ControlError> {
        let mut recorded: HashSet<String> = HashSet::new();
        for r in self.store.instances(None).await? {
            let doc = InstanceDoc::of(&r).unwrap_or_default();
            recorded.extend(doc.broker_ips());
        }
        let first = u32::from(self.config.broker_ip_pool);
        let mut out = Vec::new();
        for i in 0..self.config.broker_ip_pool_size {
            if out.len() == count as usize {
                break;
            }
            let Some(n) = first.checked_add(i) else { break };
            let ip = Ipv4Addr::from(n);
            let addr = SocketAddr::new(ip.into(), self.config.broker_port);
            if recorded.contains(&ip.to_string()) || avoid.contains(&addr) {
                continue;
            }
            if bindable(addr).await {
                out.push(addr);
            } else {
                debug!(%addr, "pool address held by another process; skipped");
            }
        }
        Ok((out.len() == count as usize).then_some(out))
    }

    /// Why a create found no addresses.
    pub(crate) fn pool_exhausted(&self) -> String {
        format!(
            "no free broker addresses: the pool of {} addresses from {} is used up by instances or held by other processes",
            self.config.broker_ip_pool_size, self.config.broker_ip_pool
        )
    }
}

/// Whether this process can listen on `addr` now.
async fn bindable(addr: SocketAddr) -> bool {
    tokio::net::TcpListener::bind(addr).await.is_ok()
}
