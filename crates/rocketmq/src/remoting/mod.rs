//! The remoting protocol of RocketMQ 4.x: one frame per command, each with a header (JSON or
//! RocketMQ's binary serialization) and an optional body.
//!
//! ```text
//! frame   = length:u32 | header-meta:u32 | header | body        (big-endian)
//! length  = 4 + header length + body length
//! meta    = serialize type (high byte: 0 JSON, 1 ROCKETMQ) | header length (low 3 bytes)
//! ```

mod codec;
pub mod codes;
mod command;

pub use codec::{decode, encode, FrameError, DEFAULT_MAX_FRAME};
pub use command::{
    parse_bool, ExtFields, HeaderText, LanguageCode, RemotingCommand, SerializeType,
};
