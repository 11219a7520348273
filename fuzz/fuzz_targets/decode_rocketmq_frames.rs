//! Arbitrary bytes into the RocketMQ remoting decoder (frames, JSON and binary headers): it
//! must answer a command, "need more bytes" or a frame error, and never panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = rocketmq::remoting::decode(&mut buf, 1 << 20) {}
});
