//! Arbitrary bytes into the RocketMQ remoting decoder (frames, JSON and binary headers), and
//! every decoded body into the message decoders a broker runs on request bodies (batch send
//! bodies, stored messages, properties): each must answer a value or an error, never panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rocketmq::message::{decode_batch, stored_offsets, stored_properties, Properties, StoredMessage};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = rocketmq::remoting::decode(&mut buf, 1 << 20) {
        let _ = decode_batch(&cmd.body);
        let _ = StoredMessage::decode(&cmd.body);
        let _ = stored_properties(&cmd.body);
        let _ = stored_offsets(&cmd.body);
        let _ = Properties::parse(&String::from_utf8_lossy(&cmd.body));
    }
});
