//! Which broker an instance runs.

use std::fmt;

/// The three brokers the APIs create instances of. Parsed once at the edge (a façade turns the
/// `engine` of a body, a path or a query into this); everything below names engines only by
/// this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    Kafka,
    Rabbitmq,
    Rocketmq,
}

impl EngineKind {
    pub const ALL: [EngineKind; 3] = [
        EngineKind::Kafka,
        EngineKind::Rabbitmq,
        EngineKind::Rocketmq,
    ];

    /// The name the documents use (`"engine": "kafka"`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Kafka => "kafka",
            EngineKind::Rabbitmq => "rabbitmq",
            EngineKind::Rocketmq => "rocketmq",
        }
    }

    /// Reads an engine name, ignoring ASCII case. Seed 001 creates RocketMQ instances with
    /// `"engine": "reliability"` (its product name), so that name is RocketMQ too.
    pub fn parse(name: &str) -> Option<EngineKind> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("reliability") {
            return Some(EngineKind::Rocketmq);
        }
        EngineKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in EngineKind::ALL {
            assert_eq!(EngineKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EngineKind::parse("RabbitMQ"), Some(EngineKind::Rabbitmq));
        assert_eq!(EngineKind::parse("reliability"), Some(EngineKind::Rocketmq));
        assert_eq!(EngineKind::parse("redis"), None);
        assert_eq!(EngineKind::parse(""), None);
    }
}
