//! Any bytes a client sends as a request frame must decode to a request or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kafka::parse_request(bytes::Bytes::copy_from_slice(data));
});
