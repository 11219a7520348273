//! Which client addresses may connect: a list of IPv4/IPv6 networks (`10.0.0.0/8`,
//! `192.168.1.7`). Checked when a connection is accepted, before any byte is read.

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
}

impl AllowList {
    /// Parses `a.b.c.d/n`, `a.b.c.d`, and the IPv6 forms.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let mut networks = Vec::new();
        for e in entries {
            let e = e.as_ref().trim();
            let (ip, prefix) = match e.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (e, None),
            };
            let addr: IpAddr = ip
                .parse()
                .map_err(|_| format!("{e:?} is not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{e:?} has a bad prefix length"))?,
            };
            networks.push(Network { addr, prefix });
        }
        Ok(AllowList { networks })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.networks.iter().any(|n| match (n.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if n.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - n.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if n.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - n.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_hosts() {
        let l = AllowList::parse(&["10.0.0.0/8", "192.168.1.7", "::1"]).unwrap();
        assert!(l.allows("10.2.3.4".parse().unwrap()));
        assert!(!l.allows("11.0.0.1".parse().unwrap()));
        assert!(l.allows("192.168.1.7".parse().unwrap()));
        assert!(!l.allows("192.168.1.8".parse().unwrap()));
        assert!(l.allows("::1".parse().unwrap()));
        assert!(AllowList::parse(&["0.0.0.0/0"])
            .unwrap()
            .allows("1.2.3.4".parse().unwrap()));
        assert!(!AllowList::default().allows("1.2.3.4".parse().unwrap()));
        assert!(AllowList::parse(&["10.0.0.0/33"]).is_err());
        assert!(AllowList::parse(&["nope"]).is_err());
    }
}
