//! RocketMQ messages as a broker stores and serves them.
//!
//! A stored message is the byte layout Apache RocketMQ keeps in its commit log and sends in
//! a pull response (`MessageDecoder.decode` on the client reads it):
//!
//! ```text
//! total size:4 | magic:4 | body crc:4 | queue id:4 | flag:4 | queue offset:8 |
//! physical offset:8 | sys flag:4 | born timestamp:8 | born host:4+4 | store timestamp:8 |
//! store host:4+4 | reconsume times:4 | prepared transaction offset:8 |
//! body length:4 | body | topic length:1 | topic | properties length:2 | properties
//! ```
//!
//! We keep one such message per `msglog` record. The broker's writer fills in the two offsets
//! it expects the log to assign before appending, so a pull sends the stored bytes as read
//! ([`stored_offsets`] confirms them); a record whose offsets differ (one written before the
//! writer filled them in) is copied and [`patch_offsets`] fixes the copy. The physical offset
//! we serve is not a commit-log position (there is no commit log) but [`PhysicalOffset`]:
//! the topic's serial number, the queue id and the queue offset, so an offset message id
//! (store host + physical offset) resolves back to one record.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{BufMut, Bytes};
use compact_str::CompactString;

/// `0xAABBCCDD ^ 1880681586 + 8`, the magic of RocketMQ 4.x stored messages (v1: one-byte
/// topic length).
pub const MAGIC_V1: i32 = 0xdaa3_20a7_u32 as i32;

/// Bits of a message's `sysFlag` (`MessageSysFlag`).
pub mod sys_flag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_PREPARED: i32 = 0x1 << 2;
    pub const TRANSACTION_COMMIT: i32 = 0x2 << 2;
    pub const TRANSACTION_ROLLBACK: i32 = 0x3 << 2;
    pub const TRANSACTION_MASK: i32 = 0x3 << 2;
    pub const BORNHOST_V6: i32 = 0x1 << 4;
    pub const STOREHOST_V6: i32 = 0x1 << 5;
}

/// Message property names (`MessageConst`).
pub mod prop {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    pub const PRODUCER_GROUP: &str = "PGROUP";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CLUSTER: &str = "CLUSTER";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const FIRST_REAL_TOPIC: &str = "FIRST_REAL_TOPIC";
}

const NAME_VALUE_SEPARATOR: char = '\u{1}';
const PROPERTY_SEPARATOR: char = '\u{2}';

/// Why bytes are not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("message is cut short at {0}")]
    Truncated(&'static str),
    #[error("topic is longer than 127 bytes")]
    TopicTooLong,
    #[error("properties are longer than 32767 bytes")]
    PropertiesTooLong,
}

/// Message properties in their wire order (`name\x01value\x02…`). Names and values are
/// `CompactString`s: those of a send (`KEYS`, `TAGS`, `WAIT`, `CLUSTER` and their values)
/// fit inline, so parsing one costs no allocation per property, as a `String` pair did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties(Vec<(CompactString, CompactString)>);

impl Properties {
    /// Reads the properties string as `MessageDecoder.string2messageProperties` does: pairs
    /// without a separator are ignored.
    pub fn parse(s: &str) -> Properties {
        let mut out =
            Vec::with_capacity(s.bytes().filter(|&b| b == PROPERTY_SEPARATOR as u8).count() + 1);
        for pair in s.split(PROPERTY_SEPARATOR) {
            if let Some((k, v)) = pair.split_once(NAME_VALUE_SEPARATOR) {
                out.push((CompactString::from(k), CompactString::from(v)));
            }
        }
        Properties(out)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: impl Into<CompactString>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.into(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many bytes [`Properties::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
    }

    /// The wire form (`MessageDecoder.messageProperties2String`) appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            out.extend_from_slice(k.as_bytes());
            out.push(NAME_VALUE_SEPARATOR as u8);
            out.extend_from_slice(v.as_bytes());
            out.push(PROPERTY_SEPARATOR as u8);
        }
    }

    /// The message's tags (`TAGS`).
    pub fn tags(&self) -> Option<&str> {
        self.get(prop::TAGS)
    }

    /// The message's keys (`KEYS`, space separated).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.get(prop::KEYS)
            .unwrap_or_default()
            .split(' ')
            .filter(|k| !k.is_empty())
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
            .into_iter()
            .map(|(k, v)| (k.into_string(), v.into_string()))
            .collect()
    }
}

/// A message as the broker stores it (everything but the two offsets).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub properties: Properties,
}

/// Where the queue offset and physical offset sit in a stored message.
const QUEUE_OFFSET_AT: usize = 20;
const PHYSICAL_OFFSET_AT: usize = 28;

fn put_host(out: &mut Vec<u8>, host: SocketAddr) {
    match host.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
    out.put_i32(i32::from(host.port()));
}

fn host_flags(born: SocketAddr, store: SocketAddr) -> i32 {
    let mut f = 0;
    if born.is_ipv6() {
        f |= sys_flag::BORNHOST_V6;
    }
    if store.is_ipv6() {
        f |= sys_flag::STOREHOST_V6;
    }
    f
}

/// `UtilAll.crc32`: CRC-32 (IEEE) of the body, as a positive int.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7fff_ffff) as i32
}

/// `String.hashCode()` of a tag, the tag code brokers filter on.
pub fn tag_code(tag: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in tag.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    i64::from(h)
}

impl StoredMessage {
    /// The stored layout, offsets zero (the writer fills them in).
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let topic = self.topic.as_bytes();
        let topic_len = u8::try_from(topic.len())
            .ok()
            .filter(|l| *l <= 127)
            .ok_or(MessageError::TopicTooLong)?;
        let props_bytes = self.properties.encoded_len();
        let props_len = i16::try_from(props_bytes).map_err(|_| MessageError::PropertiesTooLong)?;
        let host_len = |h: SocketAddr| if h.is_ipv6() { 20 } else { 8 };
        let size = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(self.born_host)
            + 8
            + host_len(self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + 1
            + topic.len()
            + 2
            + props_bytes;
        let mut out = Vec::with_capacity(size);
        out.put_i32(i32::try_from(size).unwrap_or(i32::MAX));
        out.put_i32(MAGIC_V1);
        out.put_i32(body_crc(&self.body));
        out.put_i32(self.queue_id);
        out.put_i32(self.flag);
        out.put_i64(0);
        out.put_i64(0);
        let sys_flag = (self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6))
            | host_flags(self.born_host, self.store_host);
        out.put_i32(sys_flag);
        out.put_i64(self.born_timestamp);
        put_host(&mut out, self.born_host);
        out.put_i64(self.store_timestamp);
        put_host(&mut out, self.store_host);
        out.put_i32(self.reconsume_times);
        out.put_i64(self.prepared_transaction_offset);
        out.put_i32(i32::try_from(self.body.len()).unwrap_or(i32::MAX));
        out.put_slice(&self.body);
        out.put_u8(topic_len);
        out.put_slice(topic);
        out.put_i16(props_len);
        self.properties.encode_into(&mut out);
        Ok(out)
    }

    /// Reads a stored message (offsets included, returned beside it).
    pub fn decode(buf: &[u8]) -> Result<(StoredMessage, i64, i64), MessageError> {
        let mut r = Reader { buf, at: 0 };
        r.i32("total size")?;
        r.i32("magic")?;
        r.i32("body crc")?;
        let queue_id = r.i32("queue id")?;
        let flag = r.i32("flag")?;
        let queue_offset = r.i64("queue offset")?;
        let physical_offset = r.i64("physical offset")?;
        let sys_flag = r.i32("sys flag")?;
        let born_timestamp = r.i64("born timestamp")?;
        let born_host = r.host(sys_flag & sys_flag::BORNHOST_V6 != 0)?;
        let store_timestamp = r.i64("store timestamp")?;
        let store_host = r.host(sys_flag & sys_flag::STOREHOST_V6 != 0)?;
        let reconsume_times = r.i32("reconsume times")?;
        let prepared_transaction_offset = r.i64("prepared transaction offset")?;
        let body_len = usize::try_from(r.i32("body length")?).unwrap_or(0);
        let body = Bytes::copy_from_slice(r.take(body_len, "body")?);
        let topic_len = usize::from(r.take(1, "topic length")?[0]);
        let topic = String::from_utf8_lossy(r.take(topic_len, "topic")?).into_owned();
        let props_len = usize::try_from(r.i16("properties length")?).unwrap_or(0);
        let properties =
            Properties::parse(&String::from_utf8_lossy(r.take(props_len, "properties")?));
        Ok((
            StoredMessage {
                topic,
                queue_id,
                flag,
                sys_flag,
                born_timestamp,
                born_host,
                store_timestamp,
                store_host,
                reconsume_times,
                prepared_transaction_offset,
                body,
                properties,
            },
            queue_offset,
            physical_offset,
        ))
    }
}

/// Fills in the offsets of a stored message being served.
pub fn patch_offsets(message: &mut [u8], queue_offset: i64, physical_offset: i64) {
    if let Some(slot) = message.get_mut(QUEUE_OFFSET_AT..QUEUE_OFFSET_AT + 8) {
        slot.copy_from_slice(&queue_offset.to_be_bytes());
    }
    if let Some(slot) = message.get_mut(PHYSICAL_OFFSET_AT..PHYSICAL_OFFSET_AT + 8) {
        slot.copy_from_slice(&physical_offset.to_be_bytes());
    }
}

/// The queue offset and physical offset a stored message carries.
pub fn stored_offsets(message: &[u8]) -> Option<(i64, i64)> {
    let at = |i: usize| {
        message
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
    };
    Some((at(QUEUE_OFFSET_AT)?, at(PHYSICAL_OFFSET_AT)?))
}

/// The properties of a stored message, read without decoding the rest.
pub fn stored_properties(message: &[u8]) -> Option<Properties> {
    let sys_flag = i32::from_be_bytes(message.get(36..40)?.try_into().ok()?);
    let born = if sys_flag & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let store = if sys_flag & sys_flag::STOREHOST_V6 != 0 {
        20
    } else {
        8
    };
    let body_len_at = 40 + 8 + born + 8 + store + 4 + 8;
    let body_len = i32::from_be_bytes(message.get(body_len_at..body_len_at + 4)?.try_into().ok()?);
    let topic_len_at = body_len_at + 4 + usize::try_from(body_len).ok()?;
    let topic_len = usize::from(*message.get(topic_len_at)?);
    let props_len_at = topic_len_at + 1 + topic_len;
    let props_len = i16::from_be_bytes(
        message
            .get(props_len_at..props_len_at + 2)?
            .try_into()
            .ok()?,
    );
    let props =
        message.get(props_len_at + 2..props_len_at + 2 + usize::try_from(props_len).ok()?)?;
    Some(Properties::parse(&String::from_utf8_lossy(props)))
}

/// The store timestamp of a stored message.
pub fn stored_timestamp(message: &[u8]) -> Option<i64> {
    let sys_flag = i32::from_be_bytes(message.get(36..40)?.try_into().ok()?);
    let born = if sys_flag & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let at = 40 + 8 + born;
    Some(i64::from_be_bytes(
        message.get(at..at + 8)?.try_into().ok()?,
    ))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MessageError> {
        let s = self
            .buf
            .get(self.at..self.at.saturating_add(n))
            .ok_or(MessageError::Truncated(what))?;
        self.at += n;
        Ok(s)
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, MessageError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, MessageError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, MessageError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, MessageError> {
        let ip: IpAddr = if v6 {
            let b = self.take(16, "host")?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::from(a)
        } else {
            let b = self.take(4, "host")?;
            IpAddr::from(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        let port = self.i32("host port")?;
        Ok(SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)))
    }
}

/// One message of a batch send body (`MessageDecoder.encodeMessages`: total size, magic,
/// body crc, flag, body, properties).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchedMessage {
    pub flag: i32,
    pub body: Bytes,
    pub properties: Properties,
}

/// Splits a batch send body into its messages.
pub fn decode_batch(body: &[u8]) -> Result<Vec<BatchedMessage>, MessageError> {
    let mut out = Vec::new();
    let mut r = Reader { buf: body, at: 0 };
    while r.at < body.len() {
        r.i32("total size")?;
        r.i32("magic")?;
        r.i32("body crc")?;
        let flag = r.i32("flag")?;
        let body_len = usize::try_from(r.i32("body length")?).unwrap_or(0);
        let body = Bytes::copy_from_slice(r.take(body_len, "body")?);
        let props_len = usize::try_from(r.i16("properties length")?).unwrap_or(0);
        let properties =
            Properties::parse(&String::from_utf8_lossy(r.take(props_len, "properties")?));
        out.push(BatchedMessage {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

/// The physical offset we put in message ids: which topic (by the serial number the broker
/// gave it), which queue, which queue offset. 20 + 11 + 32 bits, positive as a Java long:
/// up to ~1M topics per broker, 2048 queues per topic, 4G messages per queue before ids
/// repeat (a queue offset past that wraps in the id only; lookups then check the offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysicalOffset {
    pub topic_serial: u32,
    pub queue_id: u32,
    pub queue_offset: u32,
}

impl PhysicalOffset {
    pub const MAX_TOPIC_SERIAL: u32 = (1 << 20) - 1;
    pub const MAX_QUEUE_ID: u32 = (1 << 11) - 1;

    pub fn new(topic_serial: u32, queue_id: i32, queue_offset: i64) -> PhysicalOffset {
        PhysicalOffset {
            topic_serial: topic_serial & Self::MAX_TOPIC_SERIAL,
            queue_id: u32::try_from(queue_id).unwrap_or(0) & Self::MAX_QUEUE_ID,
            queue_offset: (queue_offset & 0xffff_ffff) as u32,
        }
    }

    pub fn encode(self) -> i64 {
        (i64::from(self.topic_serial) << 43)
            | (i64::from(self.queue_id) << 32)
            | i64::from(self.queue_offset)
    }

    pub fn decode(v: i64) -> PhysicalOffset {
        PhysicalOffset {
            topic_serial: ((v >> 43) as u32) & Self::MAX_TOPIC_SERIAL,
            queue_id: ((v >> 32) as u32) & Self::MAX_QUEUE_ID,
            queue_offset: (v & 0xffff_ffff) as u32,
        }
    }
}

/// An offset message id: store host (IPv4 4 bytes or IPv6 16, then a 4-byte port) and the
/// 8-byte physical offset, upper-case hex (`MessageDecoder.createMessageId`).
pub fn offset_message_id(store_host: SocketAddr, physical_offset: i64) -> String {
    let mut b = Vec::with_capacity(28);
    put_host(&mut b, store_host);
    b.put_i64(physical_offset);
    // Written by hand: `format!` per byte was 5% of the broker's CPU per send under
    // bench/rocketmq-run's 64-producer load.
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    s
}

/// Reads an offset message id back into its store host and physical offset.
pub fn parse_offset_message_id(id: &str) -> Option<(SocketAddr, i64)> {
    if !(id.len() == 32 || id.len() == 56) || !id.is_ascii() {
        return None;
    }
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let mut r = Reader { buf: &bytes, at: 0 };
    let host = r.host(bytes.len() == 28).ok()?;
    let offset = r.i64("offset").ok()?;
    Some((host, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredMessage {
        let mut properties = Properties::default();
        properties.set(prop::TAGS, "TagA");
        properties.set(prop::KEYS, "k1 k2");
        StoredMessage {
            topic: "orders".into(),
            queue_id: 3,
            flag: 0,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "127.0.0.1:50000".parse().unwrap(),
            store_timestamp: 1_700_000_000_005,
            store_host: "127.0.1.1:10911".parse().unwrap(),
            reconsume_times: 2,
            prepared_transaction_offset: 0,
            body: Bytes::from_static(b"hello"),
            properties,
        }
    }

    #[test]
    fn a_stored_message_reads_back_with_its_patched_offsets() {
        let m = sample();
        let mut bytes = m.encode().unwrap();
        assert_eq!(
            i32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(stored_offsets(&bytes), Some((0, 0)));
        patch_offsets(&mut bytes, 42, 7);
        assert_eq!(stored_offsets(&bytes), Some((42, 7)));
        let (back, qo, po) = StoredMessage::decode(&bytes).unwrap();
        assert_eq!((back, qo, po), (m.clone(), 42, 7));
        assert_eq!(stored_properties(&bytes).unwrap(), m.properties);
        assert_eq!(stored_timestamp(&bytes), Some(m.store_timestamp));
        assert_eq!(m.properties.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    }

    #[test]
    fn properties_read_and_write_the_wire_form_in_order() {
        let long = "k".repeat(40);
        let wire = format!("KEYS\u{1}a b\u{2}UNIQ_KEY\u{1}0A0B\u{2}{long}\u{1}{long}\u{2}bare\u{2}\u{1}empty-name\u{2}é\u{1}ü\u{2}");
        let mut p = Properties::parse(&wire);
        // The pair without a separator is dropped; the one with an empty name is kept.
        assert_eq!(p.get("KEYS"), Some("a b"));
        assert_eq!(p.get(&long), Some(long.as_str()));
        assert_eq!(p.get(""), Some("empty-name"));
        assert_eq!(p.get("bare"), None);
        let encode = |p: &Properties| {
            let mut bytes = Vec::new();
            p.encode_into(&mut bytes);
            assert_eq!(bytes.len(), p.encoded_len());
            String::from_utf8(bytes).unwrap()
        };
        let kept = wire.replace("bare\u{2}", "");
        assert_eq!(encode(&p), kept);
        p.set("KEYS", "c");
        p.set("CLUSTER", String::from("DefaultCluster"));
        assert_eq!(p.remove("UNIQ_KEY").as_deref(), Some("0A0B"));
        let changed = encode(&p);
        assert!(changed.starts_with("KEYS\u{1}c\u{2}"));
        assert!(changed.ends_with("CLUSTER\u{1}DefaultCluster\u{2}"));
        assert!(!changed.contains("UNIQ_KEY"));
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(StoredMessage::decode(&bytes[..n]).is_err());
            let _ = stored_properties(&bytes[..n]);
            assert_eq!(stored_offsets(&bytes[..n]).is_some(), n >= 36);
        }
        assert!(decode_batch(&[0, 0, 0]).is_err());
    }

    #[test]
    fn tag_codes_are_java_string_hash_codes() {
        assert_eq!(tag_code("TagA"), 2_598_919);
        assert_eq!(tag_code(""), 0);
        assert_eq!(body_crc(b"hello"), 0x3610_a686);
    }

    #[test]
    fn offset_ids_round_trip_through_the_physical_offset() {
        let po = PhysicalOffset::new(17, 3, 123_456);
        assert_eq!(PhysicalOffset::decode(po.encode()), po);
        assert!(
            PhysicalOffset::new(PhysicalOffset::MAX_TOPIC_SERIAL, 2047, u32::MAX.into()).encode()
                > 0
        );
        let host: SocketAddr = "127.0.1.1:10911".parse().unwrap();
        let id = offset_message_id(host, po.encode());
        assert_eq!(id.len(), 32);
        assert!(id.starts_with("7F00010100002A9F"));
        assert_eq!(parse_offset_message_id(&id), Some((host, po.encode())));
        assert_eq!(parse_offset_message_id("zz"), None);
    }

    #[test]
    fn batch_bodies_split_into_messages() {
        let mut body = Vec::new();
        for text in ["a", "bc"] {
            let props = format!("{}\u{1}x\u{2}", prop::TAGS);
            let size = 4 + 4 + 4 + 4 + 4 + text.len() + 2 + props.len();
            body.put_i32(size as i32);
            body.put_i32(0);
            body.put_i32(0);
            body.put_i32(0);
            body.put_i32(text.len() as i32);
            body.put_slice(text.as_bytes());
            body.put_i16(props.len() as i16);
            body.put_slice(props.as_bytes());
        }
        let msgs = decode_batch(&body).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(&msgs[1].body[..], b"bc");
        assert_eq!(msgs[1].properties.tags(), Some("x"));
    }
}
