//! Arbitrary bytes into the AMQP frame decoder every connection uses: it must answer a frame,
//! "need more bytes" or an AMQP exception, and never panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    // Decode frames until the input runs out or an error ends the connection.
    while let Ok(Some(_)) = amqp::frame::decode(&mut buf, 131_072) {}
});
