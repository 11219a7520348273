//! What can change on a running broker without a restart — the settings seed 001's
//! configuration API exposes: how long messages are kept, the largest message, and whether
//! clients may create topics and subscription groups by using them.

use std::time::Duration;

use super::{Broker, BrokerConfig};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSettings {
    /// `fileReservedTime`.
    pub retention: Duration,
    /// `maxMessageSize`, in bytes.
    pub max_message_size: usize,
    /// `autoCreateTopicEnable`: producers may send to unknown topics (through `TBW102`).
    pub auto_create_topics: bool,
    /// `autoCreateSubscriptionGroup`.
    pub auto_create_groups: bool,
}

impl BrokerSettings {
    pub fn of(config: &BrokerConfig) -> BrokerSettings {
        BrokerSettings {
            retention: config.retention,
            max_message_size: config.max_message_size,
            auto_create_topics: config.auto_create_topics,
            auto_create_groups: config.auto_create_groups,
        }
    }
}

impl Broker {
    pub fn settings(&self) -> BrokerSettings {
        self.settings.read().clone()
    }

    /// Applies new settings at once: retention to every queue, `TBW102` added or removed
    /// (and the name server told), the rest from the next request on.
    pub async fn apply_settings(&self, new: BrokerSettings) {
        let old = std::mem::replace(&mut *self.settings.write(), new.clone());
        if old.retention != new.retention {
            self.store.set_retention(Some(new.retention));
        }
        if old.auto_create_topics != new.auto_create_topics {
            match self.tables.set_auto_create_topics(new.auto_create_topics) {
                Ok(true) => self.tables_changed().await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "switching topic auto-creation failed"),
            }
        }
        tracing::info!(broker = %self.config.broker_name, ?new, "broker settings changed");
    }
}
