//! AMQP 0-9-1 framing: splitting the byte stream into frames and writing frames. The method
//! and property codecs are `amq-protocol`'s; the framing around them is ours, so that bodies
//! stay zero-copy `Bytes`, sizes are checked against the negotiated `frame_max` before anything
//! is buffered, and every malformation is the exception RabbitMQ raises for it.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};
use amq_protocol::protocol::{gen_class, parse_class, AMQPClass, BasicProperties};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::AmqpError;

pub mod nesting;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Type, channel and size.
const HEAD: usize = 7;
/// The smallest frame_max a peer may ask for (spec: 4096).
pub const FRAME_MIN_SIZE: u32 = 4096;
/// `AMQP\0\0\x09\x01`.
pub const PROTOCOL_HEADER: [u8; 8] = [b'A', b'M', b'Q', b'P', 0, 0, 9, 1];
/// The basic class, the only one with content.
pub const BASIC_CLASS: u16 = 60;

/// One frame read from a client.
#[derive(Debug)]
pub enum Frame {
    Method {
        channel: u16,
        method: Box<AMQPClass>,
        class_id: u16,
        method_id: u16,
    },
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: Box<BasicProperties>,
        /// The encoded properties as the client sent them (re-sent as they are when nothing
        /// changes them).
        raw_properties: Bytes,
    },
    Body {
        channel: u16,
        data: Bytes,
    },
    Heartbeat {
        channel: u16,
    },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => *channel,
        }
    }
}

/// The methods AMQP 0-9-1 (with RabbitMQ's extensions) defines, by class and method id.
fn known_method(class_id: u16, method_id: u16) -> bool {
    matches!(
        (class_id, method_id),
        (
            10,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71
        ) | (20, 10 | 11 | 20 | 21 | 40 | 41)
            | (30, 10 | 11)
            | (40, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 51)
            | (50, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51)
            | (
                60,
                10 | 11
                    | 20
                    | 21
                    | 30
                    | 31
                    | 40
                    | 50
                    | 60
                    | 70
                    | 71
                    | 72
                    | 80
                    | 90
                    | 100
                    | 110
                    | 111
                    | 120
            )
            | (85, 10 | 11)
            | (90, 10 | 11 | 20 | 21 | 30 | 31)
    )
}

/// Takes the next frame off `buf`, or `None` if it is not complete yet. Frames larger than
/// `frame_max` (header and end octet included) are refused before they are buffered.
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    if buf.len() < HEAD {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    let total = u64::from(size) + HEAD as u64 + 1;
    if total > u64::from(frame_max) {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
            frame_max.saturating_sub(HEAD as u32 + 1)
        )));
    }
    // `total` is at most frame_max, a u32.
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{}}}",
            erlang_binary(&buf[HEAD..total - 1]),
            buf[total - 1]
        )));
    }
    let mut frame = buf.split_to(total);
    frame.advance(HEAD);
    frame.truncate(total - HEAD - 1);
    let payload = frame.freeze();
    match kind {
        FRAME_METHOD => decode_method(channel, &payload).map(Some),
        FRAME_HEADER => decode_header(channel, payload).map(Some),
        FRAME_BODY => Ok(Some(Frame::Body {
            channel,
            data: payload,
        })),
        FRAME_HEARTBEAT => Ok(Some(Frame::Heartbeat { channel })),
        other => Err(AmqpError::frame_error(format!(
            "type {other}, all octets = {}: unknown_frame",
            erlang_binary(&payload)
        ))),
    }
}

fn decode_method(channel: u16, payload: &[u8]) -> Result<Frame, AmqpError> {
    if payload.len() < 4 {
        return Err(AmqpError::frame_error(
            "method frame shorter than its class and method ids",
        ));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    if !known_method(class_id, method_id) {
        return Err(AmqpError::command_invalid(format!(
            "unknown method {class_id}.{method_id}"
        )));
    }
    // basic.qos: amq-protocol drops prefetch-size, which RabbitMQ refuses unless 0.
    if (class_id, method_id) == (BASIC_CLASS, 10) && payload.len() >= 8 {
        let prefetch_size = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if prefetch_size != 0 {
            return Err(
                AmqpError::not_implemented(format!("prefetch_size!=0 ({prefetch_size})"))
                    .on(class_id, method_id),
            );
        }
    }
    if nesting::method_too_deep(class_id, method_id, &payload[4..]) {
        return Err(AmqpError::frame_error(format!(
            "field table nested deeper than {} levels",
            nesting::MAX_DEPTH
        ))
        .on(class_id, method_id));
    }
    match parse_class(payload) {
        Ok((&[], method)) => Ok(Frame::Method {
            channel,
            method: Box::new(method),
            class_id,
            method_id,
        }),
        _ => Err(
            AmqpError::frame_error(format!("cannot decode {}", erlang_binary(&payload[4..])))
                .on(class_id, method_id),
        ),
    }
}

fn decode_header(channel: u16, payload: Bytes) -> Result<Frame, AmqpError> {
    // class id, weight, body size, then the property flags and values.
    if payload.len() < 14 {
        return Err(AmqpError::frame_error(
            "content header shorter than its fixed fields",
        ));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes([
        payload[4],
        payload[5],
        payload[6],
        payload[7],
        payload[8],
        payload[9],
        payload[10],
        payload[11],
    ]);
    let raw = payload.slice(12..);
    if nesting::properties_too_deep(&raw) {
        return Err(AmqpError::frame_error(format!(
            "headers nested deeper than {} levels",
            nesting::MAX_DEPTH
        )));
    }
    match parse_properties(&raw[..]) {
        Ok((&[], properties)) => Ok(Frame::Header {
            channel,
            class_id,
            body_size,
            properties: Box::new(properties),
            raw_properties: raw,
        }),
        _ => Err(AmqpError::frame_error(
            "content header properties do not decode",
        )),
    }
}

/// Bytes as Erlang prints a binary (`<<"abc">>` when printable, `<<0,20>>` otherwise), as
/// RabbitMQ quotes frames in its errors. Long ones are cut (reply texts are short strings).
pub fn erlang_binary(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(48)];
    let printable = !shown.is_empty() && shown.iter().all(|b| (0x20..0x7f).contains(b));
    let body = if printable {
        let mut text = String::from('"');
        for b in shown {
            if *b == b'"' || *b == b'\\' {
                text.push('\\');
            }
            text.push(char::from(*b));
        }
        text.push('"');
        text
    } else {
        shown
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let more = if shown.len() < bytes.len() {
        ",..."
    } else {
        ""
    };
    format!("<<{body}{more}>>")
}

/// Runs an `amq-protocol` generator into a vector.
fn generate<F>(f: F) -> Result<Vec<u8>, AmqpError>
where
    F: Fn(WriteContext<Vec<u8>>) -> Result<WriteContext<Vec<u8>>, amq_protocol::frame::GenError>,
{
    f(WriteContext::from(Vec::new()))
        .map(|ctx| ctx.into_inner().0)
        .map_err(|e| AmqpError::internal(format!("cannot encode a frame: {e:?}")))
}

fn put_frame(out: &mut BytesMut, kind: u8, channel: u16, payload: &[u8]) {
    out.reserve(payload.len() + HEAD + 1);
    out.put_u8(kind);
    out.put_u16(channel);
    // Payloads are built by us and kept under frame_max, a u32.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

/// Writes a method frame.
pub fn encode_method(
    out: &mut BytesMut,
    channel: u16,
    method: &AMQPClass,
) -> Result<(), AmqpError> {
    let payload = generate(|ctx| gen_class(method)(ctx))?;
    put_frame(out, FRAME_METHOD, channel, &payload);
    Ok(())
}

/// The bytes of a short string: at most 255.
fn shortstr(s: &str) -> &[u8] {
    &s.as_bytes()[..s.len().min(255)]
}

/// Writes basic.deliver (every consumer's hot path) straight into `out`: the bytes
/// `encode_method` writes for the same method, without building it first.
pub fn encode_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let (tag, ex, rk) = (
        shortstr(consumer_tag),
        shortstr(exchange),
        shortstr(routing_key),
    );
    let payload = 4 + 1 + tag.len() + 8 + 1 + 1 + ex.len() + 1 + rk.len();
    out.reserve(HEAD + payload + 1);
    out.put_u8(FRAME_METHOD);
    out.put_u16(channel);
    // At most 4 + 3 * 256 + 9 bytes.
    out.put_u32(u32::try_from(payload).unwrap_or(u32::MAX));
    out.put_u16(BASIC_CLASS);
    out.put_u16(60);
    for (i, s) in [tag, ex, rk].into_iter().enumerate() {
        // Lengths are at most 255 (cut above).
        out.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
        out.put_slice(s);
        if i == 0 {
            out.put_u64(delivery_tag);
            out.put_u8(u8::from(redelivered));
        }
    }
    out.put_u8(FRAME_END);
}

/// Encodes properties (for a content header).
pub fn encode_properties(properties: &BasicProperties) -> Result<Bytes, AmqpError> {
    generate(|ctx| gen_properties(properties)(ctx)).map(Bytes::from)
}

/// Writes a content header (from encoded properties) and the body, split into frames that
/// fit `frame_max`.
pub fn encode_content(
    out: &mut BytesMut,
    channel: u16,
    raw_properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let header_len = 12 + raw_properties.len();
    out.reserve(HEAD + 1 + header_len + body.len() + (HEAD + 1) * (1 + body.len() / 4096));
    out.put_u8(FRAME_HEADER);
    out.put_u16(channel);
    out.put_u32(u32::try_from(header_len).unwrap_or(u32::MAX));
    out.put_u16(BASIC_CLASS);
    out.put_u16(0);
    out.put_u64(body.len() as u64);
    out.put_slice(raw_properties);
    out.put_u8(FRAME_END);
    let chunk = (frame_max as usize).saturating_sub(HEAD + 1).max(1);
    for piece in body.chunks(chunk) {
        put_frame(out, FRAME_BODY, channel, piece);
    }
}

pub fn encode_heartbeat(out: &mut BytesMut) {
    put_frame(out, FRAME_HEARTBEAT, 0, &[]);
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::{basic, channel};

    use super::*;

    fn roundtrip_method(method: AMQPClass) -> Frame {
        let mut out = BytesMut::new();
        encode_method(&mut out, 3, &method).unwrap();
        decode(&mut out, 131_072).unwrap().unwrap()
    }

    #[test]
    fn methods_round_trip() {
        let f = roundtrip_method(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )));
        match f {
            Frame::Method {
                channel,
                class_id,
                method_id,
                ..
            } => assert_eq!((channel, class_id, method_id), (3, 20, 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_is_split_to_frame_max_and_reads_back() {
        let props = BasicProperties::default().with_delivery_mode(2);
        let raw = encode_properties(&props).unwrap();
        let body = vec![7u8; 10_000];
        let mut out = BytesMut::new();
        encode_content(&mut out, 1, &raw, &body, 4096);
        let mut got = Vec::new();
        let mut header = None;
        while let Some(f) = decode(&mut out, 4096).unwrap() {
            match f {
                Frame::Header {
                    body_size,
                    properties,
                    ..
                } => header = Some((body_size, *properties)),
                Frame::Body { data, .. } => {
                    assert!(data.len() <= 4096 - 8);
                    got.extend_from_slice(&data);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(header, Some((10_000, props)));
        assert_eq!(got, body);
    }

    #[test]
    fn partial_frames_wait_and_bad_ones_are_refused_with_their_code() {
        let mut out = BytesMut::new();
        encode_method(
            &mut out,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 10,
                global: false,
            })),
        )
        .unwrap();
        let whole = out.clone();
        let mut part = BytesMut::from(&whole[..whole.len() - 1]);
        assert!(decode(&mut part, 4096).unwrap().is_none());

        let mut bad_end = whole.clone();
        let n = bad_end.len();
        bad_end[n - 1] = 0;
        assert_eq!(decode(&mut bad_end, 4096).unwrap_err().code.code(), 501);

        let mut huge = BytesMut::from(&[1u8, 0, 1, 0x10, 0, 0, 0][..]);
        assert_eq!(decode(&mut huge, 131_072).unwrap_err().code.code(), 501);

        let mut unknown = BytesMut::new();
        put_frame(&mut unknown, FRAME_METHOD, 1, &[0, 99, 0, 1]);
        assert_eq!(decode(&mut unknown, 4096).unwrap_err().code.code(), 503);

        let mut short_args = BytesMut::new();
        put_frame(&mut short_args, FRAME_METHOD, 1, &[0, 60, 0, 10, 0]);
        assert_eq!(
            decode(&mut short_args, 4096).unwrap_err().text,
            "FRAME_ERROR - cannot decode <<0>>"
        );
        assert_eq!(erlang_binary(b"abc"), "<<\"abc\">>");
        assert_eq!(erlang_binary(&[0, 20]), "<<0,20>>");

        let mut kind = BytesMut::new();
        put_frame(&mut kind, 7, 1, &[]);
        assert_eq!(decode(&mut kind, 4096).unwrap_err().code.code(), 501);
    }

    #[test]
    fn hand_written_deliver_matches_the_codec() {
        let method = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "ctag-1".into(),
            delivery_tag: 77,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "a.b".into(),
        }));
        let mut want = BytesMut::new();
        encode_method(&mut want, 3, &method).unwrap();
        let mut got = BytesMut::new();
        encode_deliver(&mut got, 3, "ctag-1", 77, true, "ex", "a.b");
        assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (seed % 64) as usize;
            let mut buf = BytesMut::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.put_u8((seed & 0xff) as u8);
            }
            if buf.len() > 4 {
                buf[3] = 0;
                buf[4] = 0;
            }
            let _ = decode(&mut buf, 4096);
        }
    }
}
