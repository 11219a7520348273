//! Frames: reading commands from a connection's buffer and writing them.

use bytes::{Buf, BufMut, BytesMut};

use super::command::{RemotingCommand, SerializeType};

/// Frames larger than this are refused (Apache RocketMQ's default
/// `com.rocketmq.remoting.frameMaxLength`, 16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// A frame that cannot be read: RocketMQ closes the connection on these, and so do we.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {0} is shorter than its header length field")]
    TooShort(usize),
    #[error("frame length {0} exceeds the maximum of {1}")]
    TooLarge(usize, usize),
    #[error("header length {header} does not fit in a frame of {frame}")]
    HeaderLength { header: usize, frame: usize },
    #[error("unknown header serialization {0}")]
    SerializeType(u8),
    #[error("malformed header: {0}")]
    Header(String),
}

/// The next complete command in `buf`, removed from it; `None` until a whole frame is there.
pub fn decode(buf: &mut BytesMut, max_frame: usize) -> Result<Option<RemotingCommand>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < 4 {
        return Err(FrameError::TooShort(len));
    }
    if len > max_frame {
        return Err(FrameError::TooLarge(len, max_frame));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut frame = buf.split_to(len);
    let meta = frame.get_u32();
    let kind = (meta >> 24) as u8;
    let header_len = (meta & 0x00ff_ffff) as usize;
    if header_len > frame.len() {
        return Err(FrameError::HeaderLength {
            header: header_len,
            frame: len,
        });
    }
    let header = frame.split_to(header_len);
    let mut cmd = match SerializeType::from_byte(kind) {
        Some(SerializeType::Json) => RemotingCommand::from_json_header(&header)?,
        Some(SerializeType::RocketMq) => RemotingCommand::from_binary_header(&header)?,
        None => return Err(FrameError::SerializeType(kind)),
    };
    cmd.body = frame.freeze();
    Ok(Some(cmd))
}

/// Appends `cmd` as one frame, its header serialized as `cmd.serialize_type` says.
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) {
    let parts: usize = cmd.body_parts.iter().map(|p| p.len()).sum();
    encode_head(cmd, parts, out);
    // A pull's messages are copied from the log's read buffers straight into the frame (one
    // copy; the buffers go back to their pool at once, warm for the next read).
    for part in &cmd.body_parts {
        out.put_slice(part);
    }
}

/// Appends `cmd`'s frame up to its `body_parts` (`parts_len` bytes, which follow). The header
/// is written in place, the two lengths before it filled in after.
fn encode_head(cmd: &RemotingCommand, parts_len: usize, out: &mut BytesMut) {
    let body_len = cmd.body.len() + parts_len;
    out.reserve(8 + 256 + body_len);
    let start = out.len();
    out.put_u64(0);
    match cmd.serialize_type {
        SerializeType::Json => cmd.write_json_header(out),
        SerializeType::RocketMq => cmd.write_binary_header(out),
    }
    let header_len = out.len() - start - 8;
    let total = (4 + header_len + body_len) as u32;
    let kind_and_len =
        (u32::from(cmd.serialize_type.byte()) << 24) | (header_len as u32 & 0x00ff_ffff);
    out[start..start + 4].copy_from_slice(&total.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&kind_and_len.to_be_bytes());
    out.put_slice(&cmd.body);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::remoting::{codes, LanguageCode};

    fn frame(kind: u8, header: &[u8], body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32((4 + header.len() + body.len()) as u32);
        b.put_u32((u32::from(kind) << 24) | header.len() as u32);
        b.put_slice(header);
        b.put_slice(body);
        b
    }

    #[test]
    fn a_java_json_request_round_trips() {
        let header = br#"{"code":10,"extFields":{"topic":"t","queueId":"1"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":395}"#;
        let mut buf = frame(0, header, b"hello");
        let cmd = decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(
            (cmd.code, cmd.opaque, cmd.version),
            (codes::SEND_MESSAGE, 7, 395)
        );
        assert_eq!(cmd.ext("topic"), Some("t"));
        assert_eq!(cmd.ext_i64("queueId"), Some(1));
        assert_eq!(cmd.body, Bytes::from_static(b"hello"));
        assert!(!cmd.is_response() && !cmd.is_oneway());

        let mut out = BytesMut::new();
        encode(&cmd, &mut out);
        assert_eq!(decode(&mut out, DEFAULT_MAX_FRAME).unwrap().unwrap(), cmd);
    }

    #[test]
    fn a_body_in_parts_is_framed_as_one_body() {
        let mut resp = RemotingCommand::request(codes::PULL_MESSAGE, 9);
        resp.body = Bytes::from_static(b"ab");
        resp.body_parts = vec![Bytes::from_static(b"cde"), Bytes::from_static(b"f")];
        let (mut whole, mut head) = (BytesMut::new(), BytesMut::new());
        encode(&resp, &mut whole);
        encode_head(&resp, 4, &mut head);
        assert_eq!(&whole[..head.len()], &head[..]);
        assert_eq!(&whole[head.len()..], b"cdef");
        let back = decode(&mut whole, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(back.body, Bytes::from_static(b"abcdef"));
        assert!(whole.is_empty());
    }

    #[test]
    fn the_cpp_clients_headers_are_accepted() {
        // No serializeTypeCurrentRPC, numbers as strings, values as numbers and 0/1 booleans.
        let header = br#"{"code":"34","language":"CPP","version":"0","opaque":"3","flag":2,"remark":null,"extFields":{"batch":0,"unitMode":"1","AccessKey":"ak"}}"#;
        let mut buf = frame(0, header, b"");
        let cmd = decode(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(
            (cmd.code, cmd.language, cmd.opaque),
            (codes::HEART_BEAT, LanguageCode::Cpp, 3)
        );
        assert!(cmd.is_oneway());
        assert_eq!(cmd.ext_bool("batch"), Some(false));
        assert_eq!(cmd.ext_bool("unitMode"), Some(true));
        assert_eq!(cmd.remark, None);
    }

    #[test]
    fn json_header_values_of_every_kind_are_read_as_before() {
        let header = br#" {"code":10,"language":9,"remark":{"x":1},"serializeTypeCurrentRPC":"JSON","extFields":{"n":-3,"f":3.0,"big":1e20,"t":true,"gone":null,"o":{"a":[1,"b"]},"s":"a\"b"}}"#;
        let cmd = RemotingCommand::from_json_header(header).unwrap();
        assert_eq!(
            (cmd.code, cmd.language, cmd.remark),
            (10, LanguageCode::Go, None)
        );
        let ext: Vec<(&str, &str)> = cmd
            .ext_fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ext,
            [
                ("big", "1e+20"),
                ("f", "3.0"),
                ("n", "-3"),
                ("o", r#"{"a":[1,"b"]}"#),
                ("s", "a\"b"),
                ("t", "true"),
            ]
        );
        assert_eq!(
            RemotingCommand::from_json_header(br#"{"code":1,"language":"nope","extFields":null}"#)
                .map(|c| (c.language, c.ext_fields.len())),
            Ok((LanguageCode::Other, 0))
        );
        for bad in [
            &br#"[10,"JAVA"]"#[..],
            br#"{"language":"JAVA"}"#,
            br#"{"code":"ten"}"#,
            br#"{"code":1.5}"#,
            br#"{"code":10,"opaque":4294967296}"#,
            br#"{"code":10,"extFields":["a"]}"#,
            br#"{"code":10,"extFields":{"a":1}"#,
        ] {
            assert!(
                matches!(
                    RemotingCommand::from_json_header(bad),
                    Err(FrameError::Header(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn binary_headers_round_trip_and_responses_follow_their_request() {
        let mut req = RemotingCommand::request(codes::GET_ROUTEINFO_BY_TOPIC, 42);
        req.serialize_type = SerializeType::RocketMq;
        req.language = LanguageCode::Go;
        req.set_ext("topic", "orders");
        req.body = Bytes::from_static(b"{}");
        let mut out = BytesMut::new();
        encode(&req, &mut out);
        let back = decode(&mut out, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(back, req);

        let resp = RemotingCommand::response_to(
            &back,
            codes::TOPIC_NOT_EXIST,
            Some("No topic route info in name server for the topic: orders".into()),
        );
        assert!(resp.is_response());
        assert_eq!(
            (resp.opaque, resp.serialize_type),
            (42, SerializeType::RocketMq)
        );
        let mut out = BytesMut::new();
        encode(&resp, &mut out);
        let back = decode(&mut out, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(back.remark.as_deref(), resp.remark.as_deref());
    }

    #[test]
    fn partial_frames_wait_and_bad_frames_are_refused() {
        let whole = frame(0, br#"{"code":0}"#, b"abc");
        let mut part = BytesMut::from(&whole[..whole.len() - 1]);
        assert_eq!(decode(&mut part, DEFAULT_MAX_FRAME), Ok(None));
        assert_eq!(part.len(), whole.len() - 1);

        let mut b = BytesMut::from(&[0u8, 0, 0, 2, 0, 0][..]);
        assert_eq!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::TooShort(2))
        );
        let mut b = BytesMut::from(&[0x7f, 0, 0, 0][..]);
        assert!(matches!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge(..))
        ));
        let mut b = frame(0, b"{", b"");
        assert!(matches!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::Header(_))
        ));
        let mut b = frame(2, b"{}", b"");
        assert_eq!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::SerializeType(2))
        );
        // A header length beyond the frame.
        let mut b = BytesMut::new();
        b.put_u32(8);
        b.put_u32(100);
        b.put_u32(0);
        assert!(matches!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::HeaderLength { .. })
        ));
        // A binary header whose extFields length runs past its end.
        let mut h = Vec::new();
        h.put_i16(10);
        h.put_u8(0);
        h.put_i16(0);
        h.put_i32(1);
        h.put_i32(0);
        h.put_u32(0);
        h.put_u32(1000);
        let mut b = frame(1, &h, b"");
        assert!(matches!(
            decode(&mut b, DEFAULT_MAX_FRAME),
            Err(FrameError::Header(_))
        ));
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        // A cheap stand-in for the fuzz target: every prefix and mutation of a valid frame.
        let mut req = RemotingCommand::request(codes::SEND_MESSAGE_V2, 9);
        req.serialize_type = SerializeType::RocketMq;
        req.set_ext("a", "b");
        req.remark = Some("r".into());
        let mut valid = BytesMut::new();
        encode(&req, &mut valid);
        for i in 0..valid.len() {
            for b in [0u8, 1, 0x7f, 0xff] {
                let mut m = valid.clone();
                m[i] = b;
                let _ = decode(&mut m, DEFAULT_MAX_FRAME);
                let mut p = BytesMut::from(&valid[..i]);
                let _ = decode(&mut p, DEFAULT_MAX_FRAME);
            }
        }
    }
}
