//! Per-user, per-action request rates (seed 004 §4: 3 queries per second per operation and
//! user; CreateTopic 1). A token bucket per (user, action), refilled continuously.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Clone, Debug)]
pub struct ThrottleConfig {
    /// Queries per second of an action without its own rate; 0 turns throttling off.
    pub default_qps: f64,
    /// Rates of particular actions.
    pub per_action: HashMap<String, f64>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            default_qps: 3.0,
            per_action: HashMap::from([("CreateTopic".to_string(), 1.0)]),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Throttle {
    config: ThrottleConfig,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token, or answers how long until one is free.
    pub fn admit(&self, user: &str, action: &str) -> Result<(), Duration> {
        let qps = self
            .config
            .per_action
            .get(action)
            .copied()
            .unwrap_or(self.config.default_qps);
        if qps <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let b = buckets
            .entry((user.to_string(), action.to_string()))
            .or_insert(Bucket {
                tokens: qps.max(1.0),
                at: now,
            });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * qps).min(qps.max(1.0));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / qps))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_beyond_the_rate_are_refused() {
        let t = Throttle::new(ThrottleConfig::default());
        let admitted = (0..10)
            .filter(|_| t.admit("u", "GetTopicList").is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert!(t.admit("u", "CreateTopic").is_ok());
        assert!(t.admit("u", "CreateTopic").is_err());
        assert!(t.admit("other", "GetTopicList").is_ok(), "per user");
        let off = Throttle::new(ThrottleConfig {
            default_qps: 0.0,
            per_action: HashMap::new(),
        });
        assert!((0..100).all(|_| off.admit("u", "x").is_ok()));
    }
}
