//! One remoting command (a request or its response) and its two header serializations.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use compact_str::CompactString;

use super::codec::FrameError;

mod ext;
mod json;
mod scan;

pub use ext::ExtFields;

/// Flag bit 0: the command is a response. Bit 1: a request that expects no response.
const RESPONSE_FLAG: i32 = 1;
const ONEWAY_FLAG: i32 = 1 << 1;

/// How a command's header is written; a response is written the way its request was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SerializeType {
    #[default]
    Json,
    /// RocketMQ's own binary layout (`RocketMQSerializable`).
    RocketMq,
}

impl SerializeType {
    pub(crate) fn from_byte(b: u8) -> Option<SerializeType> {
        match b {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

/// The client's language (`LanguageCode`): JSON headers carry its name, binary headers its
/// ordinal. Unknown values are kept as `Other` rather than refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
}

const LANGUAGES: [(LanguageCode, &str); 13] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
];

impl LanguageCode {
    pub fn name(self) -> &'static str {
        LANGUAGES
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("OTHER", |(_, n)| n)
    }

    fn ordinal(self) -> u8 {
        LANGUAGES.iter().position(|(l, _)| *l == self).unwrap_or(7) as u8
    }

    fn from_ordinal(b: u8) -> LanguageCode {
        LANGUAGES
            .get(usize::from(b))
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }

    fn from_name(s: &str) -> LanguageCode {
        LANGUAGES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }
}

/// A boolean header value: `true`/`false` from Java, `1`/`0` from the C++ clients.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        v if v.eq_ignore_ascii_case("true") || v == "1" => Some(true),
        v if v.eq_ignore_ascii_case("false") || v == "0" => Some(false),
        _ => None,
    }
}

/// A custom header field's name or value. Most are short (one-letter SEND_MESSAGE_V2 names,
/// numbers, topics) and kept inline: with a `String` each, the allocator was 8.4% of the
/// broker's CPU per send under bench/rocketmq-run's 64-producer load, 5.2% with these.
pub type HeaderText = CompactString;

/// A request or response of the remoting protocol.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemotingCommand {
    /// A request code, or a response code in a response.
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    /// Pairs a response with its request.
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// The request's or response's custom header, as strings (ordered by key, which is also
    /// the order the ACL signature is computed in).
    pub ext_fields: ExtFields,
    pub serialize_type: SerializeType,
    pub body: Bytes,
    /// The rest of the body after `body`, still in the buffers it was read into (a pull's
    /// stored messages, sliced out of the log's read): encoding copies them once, straight into
    /// the frame.
    pub body_parts: Vec<Bytes>,
}

impl RemotingCommand {
    /// A request with `code`.
    pub fn request(code: i32, opaque: i32) -> RemotingCommand {
        RemotingCommand {
            code,
            opaque,
            ..RemotingCommand::default()
        }
    }

    /// The response to `request` with `code` and `remark`, written the way the request was.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: request.version,
            opaque: request.opaque,
            flag: RESPONSE_FLAG,
            remark,
            ext_fields: ExtFields::new(),
            serialize_type: request.serialize_type,
            body: Bytes::new(),
            body_parts: Vec::new(),
        }
    }

    pub fn is_response(&self) -> bool {
        self.flag & RESPONSE_FLAG != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & ONEWAY_FLAG != 0
    }

    pub fn set_oneway(&mut self) {
        self.flag |= ONEWAY_FLAG;
    }

    /// A custom header field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key).map(HeaderText::as_str)
    }

    /// Sets a custom header field.
    pub fn set_ext(&mut self, key: &str, value: impl Into<HeaderText>) {
        self.ext_fields.insert(key.into(), value.into());
    }

    /// A numeric header field; clients send numbers as strings, some with spaces.
    pub fn ext_i64(&self, key: &str) -> Option<i64> {
        self.ext(key).and_then(|v| v.trim().parse().ok())
    }

    /// A boolean header field: `true`/`false` from Java, `1`/`0` from the C++ clients.
    pub fn ext_bool(&self, key: &str) -> Option<bool> {
        parse_bool(self.ext(key)?)
    }

    // ---- JSON headers -------------------------------------------------------------------

    /// Reads a JSON header. Lenient as the clients need it: `serializeTypeCurrentRPC` may be
    /// missing (C++ and JavaScript clients), numbers may be strings, `extFields` values may be
    /// numbers or booleans, and `remark` may be null. Decoded straight into the command
    /// (`json::Header`): going through a `serde_json::Value` first cost a tenth of the broker's
    /// CPU per send.
    pub(crate) fn from_json_header(header: &[u8]) -> Result<RemotingCommand, FrameError> {
        // A struct also deserializes from a JSON array; a header is only ever an object.
        if header.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(FrameError::Header("header is not a JSON object".into()));
        }
        let h: json::Header = match scan::header(header) {
            Some(h) => h,
            None => serde_json::from_slice(header)
                .map_err(|e| FrameError::Header(format!("header is not JSON: {e}")))?,
        };
        let code = h
            .code
            .ok_or_else(|| FrameError::Header("header has no code".into()))?;
        Ok(RemotingCommand {
            code: to_i32(code, "code")?,
            language: h.language,
            version: to_i32(h.version.unwrap_or(0), "version")?,
            opaque: to_i32(h.opaque.unwrap_or(0), "opaque")?,
            flag: to_i32(h.flag.unwrap_or(0), "flag")?,
            remark: h.remark,
            ext_fields: h.ext_fields,
            serialize_type: SerializeType::Json,
            body: Bytes::new(),
            body_parts: Vec::new(),
        })
    }

    /// Appends the JSON header, its keys in the order fastjson sorts them (as Apache writes
    /// them). Written by hand, byte for byte what `serde_json` writes for the same fields
    /// (`tests::json_headers_are_written_as_serde_json_writes_them`): serde's string
    /// serialization through `io::Write` was 5.8% of the broker's instructions per send
    /// (callgrind, 64-producer load).
    pub(crate) fn write_json_header(&self, out: &mut BytesMut) {
        let mut int = itoa::Buffer::new();
        out.put_slice(b"{\"code\":");
        out.put_slice(int.format(self.code).as_bytes());
        if !self.ext_fields.is_empty() {
            out.put_slice(b",\"extFields\":{");
            for (i, (k, v)) in self.ext_fields.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                put_json_str(out, k);
                out.put_u8(b':');
                put_json_str(out, v);
            }
            out.put_u8(b'}');
        }
        out.put_slice(b",\"flag\":");
        out.put_slice(int.format(self.flag).as_bytes());
        out.put_slice(b",\"language\":");
        put_json_str(out, self.language.name());
        out.put_slice(b",\"opaque\":");
        out.put_slice(int.format(self.opaque).as_bytes());
        if let Some(remark) = &self.remark {
            out.put_slice(b",\"remark\":");
            put_json_str(out, remark);
        }
        out.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        out.put_slice(int.format(self.version).as_bytes());
        out.put_u8(b'}');
    }

    // ---- RocketMQ binary headers ----------------------------------------------------------

    /// code:i16 language:u8 version:i16 opaque:i32 flag:i32 remark:(len:i32 bytes)
    /// extFields:(len:i32 (key-len:i16 key value-len:i32 value)*), big-endian.
    pub(crate) fn from_binary_header(mut h: &[u8]) -> Result<RemotingCommand, FrameError> {
        let short = |what: &str| FrameError::Header(format!("binary header too short for {what}"));
        if h.remaining() < 2 + 1 + 2 + 4 + 4 {
            return Err(short("its fixed fields"));
        }
        let code = i32::from(h.get_i16());
        let language = LanguageCode::from_ordinal(h.get_u8());
        let version = i32::from(h.get_i16());
        let opaque = h.get_i32();
        let flag = h.get_i32();
        let remark = match take_sized(&mut h, "remark")? {
            [] => None,
            b => Some(utf8(b, "remark")?),
        };
        let mut ext = take_sized(&mut h, "extFields")?;
        let mut ext_fields = ExtFields::new();
        while ext.has_remaining() {
            if ext.remaining() < 2 {
                return Err(short("an extFields key"));
            }
            let key_len = usize::from(ext.get_u16());
            if ext.remaining() < key_len {
                return Err(short("an extFields key"));
            }
            let key = utf8(&ext[..key_len], "extFields key")?;
            ext.advance(key_len);
            if ext.remaining() < 4 {
                return Err(short("an extFields value"));
            }
            let value_len = usize::try_from(ext.get_u32()).unwrap_or(usize::MAX);
            if ext.remaining() < value_len {
                return Err(short("an extFields value"));
            }
            let value = utf8(&ext[..value_len], "extFields value")?;
            ext.advance(value_len);
            ext_fields.insert(key.into(), value.into());
        }
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            serialize_type: SerializeType::RocketMq,
            body: Bytes::new(),
            body_parts: Vec::new(),
        })
    }

    /// Appends the binary header.
    pub(crate) fn write_binary_header(&self, out: &mut BytesMut) {
        // Code and version are 16-bit in this layout (RocketMQ's own limit).
        out.put_i16(self.code as i16);
        out.put_u8(self.language.ordinal());
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        match &self.remark {
            Some(r) if !r.is_empty() => {
                out.put_u32(r.len() as u32);
                out.put_slice(r.as_bytes());
            }
            _ => out.put_u32(0),
        }
        // The extFields length, filled in once they are written.
        let at = out.len();
        out.put_u32(0);
        for (k, v) in &self.ext_fields {
            out.put_u16(k.len() as u16);
            out.put_slice(k.as_bytes());
            out.put_u32(v.len() as u32);
            out.put_slice(v.as_bytes());
        }
        let ext_len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&ext_len.to_be_bytes());
    }
}

/// A JSON string as `serde_json` writes it: `"` and `\\` escaped, control characters as
/// `\b \f \n \r \t` or `\u00xx`, everything else (non-ASCII too) as it is.
fn put_json_str(out: &mut BytesMut, s: &str) {
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape; this check has no early exit, so it compiles to a few
    // vector instructions per 32 bytes instead of a branch per byte.
    if !bytes.iter().fold(false, |esc, &b| {
        esc | (b < 0x20) | (b == b'"') | (b == b'\\')
    }) {
        out.put_slice(bytes);
        out.put_u8(b'"');
        return;
    }
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => b"",
            _ => continue,
        };
        out.put_slice(&bytes[from..i]);
        from = i + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put_slice(b"\\u00");
            out.put_u8(HEX[usize::from(b >> 4)]);
            out.put_u8(HEX[usize::from(b & 0xf)]);
        } else {
            out.put_slice(escape);
        }
    }
    out.put_slice(&bytes[from..]);
    out.put_u8(b'"');
}

fn to_i32(v: i64, key: &str) -> Result<i32, FrameError> {
    i32::try_from(v).map_err(|_| FrameError::Header(format!("{key} out of range: {v}")))
}

/// A length-prefixed (i32) field of a binary header.
fn take_sized<'a>(h: &mut &'a [u8], what: &str) -> Result<&'a [u8], FrameError> {
    if h.remaining() < 4 {
        return Err(FrameError::Header(format!(
            "binary header too short for the {what} length"
        )));
    }
    let len = usize::try_from(h.get_u32()).unwrap_or(usize::MAX);
    if h.remaining() < len {
        return Err(FrameError::Header(format!(
            "{what} length {len} is longer than the header"
        )));
    }
    let (field, rest) = h.split_at(len);
    *h = rest;
    Ok(field)
}

fn utf8(b: &[u8], what: &str) -> Result<String, FrameError> {
    String::from_utf8(b.to_vec()).map_err(|_| FrameError::Header(format!("{what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serde_json` writes for a command's header fields (the writer before the hand one).
    fn serde_header(cmd: &RemotingCommand) -> Vec<u8> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct JsonHeader<'a> {
            code: i32,
            #[serde(skip_serializing_if = "ExtFields::is_empty")]
            ext_fields: &'a ExtFields,
            flag: i32,
            language: &'a str,
            opaque: i32,
            #[serde(skip_serializing_if = "Option::is_none")]
            remark: Option<&'a str>,
            #[serde(rename = "serializeTypeCurrentRPC")]
            serialize_type_current_rpc: &'static str,
            version: i32,
        }
        serde_json::to_vec(&JsonHeader {
            code: cmd.code,
            ext_fields: &cmd.ext_fields,
            flag: cmd.flag,
            language: cmd.language.name(),
            opaque: cmd.opaque,
            remark: cmd.remark.as_deref(),
            serialize_type_current_rpc: "JSON",
            version: cmd.version,
        })
        .unwrap()
    }

    #[test]
    fn json_headers_are_written_as_serde_json_writes_them() {
        let awkward: String = (0u8..0x80).map(char::from).chain("é€😀".chars()).collect();
        let mut cmds = Vec::new();
        for (code, remark) in [
            (0, None),
            (-1, Some(String::new())),
            (i32::MAX, Some(awkward.clone())),
            (
                i32::MIN,
                Some("topic[t] not exist, apply first please!".to_string()),
            ),
        ] {
            let mut c = RemotingCommand::request(code, -7);
            c.remark = remark;
            c.flag = 3;
            c.version = 395;
            c.language = LanguageCode::Cpp;
            cmds.push(c.clone());
            c.set_ext("msgId", "7F00000100002A9F0000000000000000");
            c.set_ext("queueOffset", "12");
            c.set_ext("MSG_REGION", "DefaultRegion");
            c.set_ext(&awkward, awkward.as_str());
            c.set_ext("", "");
            cmds.push(c);
        }
        for c in cmds {
            let mut ours = BytesMut::new();
            c.write_json_header(&mut ours);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde_header(&c))
            );
        }
    }
}
