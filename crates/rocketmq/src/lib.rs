//! The RocketMQ 4.x side of OpenDMS: a name server and brokers that RocketMQ clients use over
//! the remoting protocol, keeping messages in `msglog`.
//!
//! Built in layers, protocol first: [`remoting`] is the wire format every request and
//! response travels in (frames, JSON and binary headers, request and response codes), read
//! leniently because every client generation writes it a little differently.

pub mod remoting;
