//! A fast path for the JSON header as every client writes it in the common case: one object
//! of strings, plain integers and null, `extFields` an object of the same. Anything else
//! (floats, strings for numbers, nested values, surrogate escapes, duplicate fields, trailing
//! bytes) answers `None` and the serde decoder in `json.rs` reads the header; what
//! this accepts, it decodes exactly as that decoder does (`tests` check both on the same
//! input). Why: serde's general path (every `extFields` value through `deserialize_any`) was
//! 19% of the broker's worker thread per send under bench/rocketmq-run's 64-producer load.

use std::borrow::Cow;

use compact_str::{CompactString, ToCompactString};

use super::json::Header;
use super::{ExtFields, LanguageCode};

/// One value of the shapes the fast path reads.
enum Value<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string; escapes are decoded (a surrogate escape gives up: serde pairs them).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        match rest.get(len)? {
            b'"' => {
                self.at = start + len + 1;
                self.text.get(start..start + len).map(Cow::Borrowed)
            }
            b'\\' => {
                // Room for the rest of the header: decoding only shortens it, and a properties
                // string (an escape every few bytes) grew its buffer three or four times.
                let mut out = String::with_capacity(rest.len());
                out.push_str(self.text.get(start..start + len)?);
                self.at = start + len;
                self.escaped_rest(&mut out)?;
                Some(Cow::Owned(out))
            }
            _ => None,
        }
    }

    /// Decodes from an escape on to the closing quote.
    fn escaped_rest(&mut self, out: &mut String) -> Option<()> {
        loop {
            let rest = self.text.get(self.at..)?;
            let len = rest
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
            out.push_str(rest.get(..len)?);
            self.at += len;
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    let code = *self.text.as_bytes().get(self.at + 1)?;
                    self.at += 2;
                    out.push(match code {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.text.as_bytes().get(self.at..self.at + 4)?;
                            let code = hex.iter().try_fold(0u32, |n, &b| {
                                Some(n << 4 | char::from(b).to_digit(16)?)
                            })?;
                            self.at += 4;
                            char::from_u32(code)?
                        }
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// An integer as JSON writes one (no leading zeros, no fraction or exponent).
    fn int(&mut self) -> Option<i64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        let digits_at = start + usize::from(negative);
        let digits = bytes
            .get(digits_at..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let first = *bytes.get(digits_at)?;
        if digits == 0 || (first == b'0' && (digits > 1 || negative)) {
            return None;
        }
        let end = digits_at + digits;
        if matches!(bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at = end;
        self.text.get(start..end)?.parse().ok()
    }

    fn value(&mut self) -> Option<Value<'a>> {
        self.skip_space();
        match self.peek()? {
            b'"' => self.string().map(Value::Text),
            b'n' => {
                let rest = self.text.get(self.at..)?;
                rest.starts_with("null").then(|| {
                    self.at += 4;
                    Value::Null
                })
            }
            b'-' | b'0'..=b'9' => self.int().map(Value::Int),
            _ => None,
        }
    }

    /// Calls `each` for every member of an object; `false` from it gives up.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            self.eat(b':')?;
            each(self, &key)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The header, if it has the common shape; `None` sends it to the serde decoder.
pub(super) fn header(bytes: &[u8]) -> Option<Header> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner { text, at: 0 };
    let mut h = Header::default();
    // Which known fields were seen: serde refuses a duplicate, so the fast path leaves it to
    // serde.
    let mut seen = 0u8;
    let mut once = |bit: u8| {
        let first = seen & bit == 0;
        seen |= bit;
        first.then_some(())
    };
    let int = |v: Value| match v {
        Value::Null => Some(None),
        Value::Int(i) => Some(Some(i)),
        Value::Text(_) => None,
    };
    s.object(|s, key| {
        match key {
            "code" => {
                once(1)?;
                h.code = int(s.value()?)?;
            }
            "version" => {
                once(2)?;
                h.version = int(s.value()?)?;
            }
            "opaque" => {
                once(4)?;
                h.opaque = int(s.value()?)?;
            }
            "flag" => {
                once(8)?;
                h.flag = int(s.value()?)?;
            }
            "language" => {
                once(16)?;
                h.language = match s.value()? {
                    Value::Text(name) => LanguageCode::from_name(&name),
                    Value::Null => LanguageCode::Java,
                    Value::Int(i) => u8::try_from(i)
                        .ok()
                        .filter(|_| i >= 0)
                        .map_or(LanguageCode::Other, LanguageCode::from_ordinal),
                };
            }
            "remark" => {
                once(32)?;
                h.remark = match s.value()? {
                    Value::Text(r) => Some(r.into_owned()),
                    Value::Null => None,
                    Value::Int(_) => None,
                };
            }
            "extFields" => {
                once(64)?;
                h.ext_fields = ext_fields(s)?;
            }
            // Other fields (`serializeTypeCurrentRPC`) are ignored, as serde ignores them.
            _ => {
                s.value()?;
            }
        }
        Some(())
    })?;
    s.skip_space();
    (s.at == text.len()).then_some(h)
}

fn ext_fields(s: &mut Scanner<'_>) -> Option<ExtFields> {
    let mut out = ExtFields::with_capacity(16);
    s.skip_space();
    if s.peek()? == b'n' {
        return matches!(s.value()?, Value::Null).then_some(out);
    }
    s.object(|s, key| {
        let text: Option<CompactString> = match s.value()? {
            Value::Text(t) => Some(CompactString::from(t)),
            Value::Int(i) => Some(i.to_compact_string()),
            Value::Null => None,
        };
        if let Some(text) = text {
            out.insert(key.into(), text);
        }
        Some(())
    })?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(bytes: &[u8]) -> Option<Header> {
        serde_json::from_slice(bytes).ok()
    }

    /// What the fast path accepts, serde decodes to the same header.
    fn agrees(bytes: &[u8]) {
        if let Some(fast) = header(bytes) {
            assert_eq!(
                Some(fast),
                serde(bytes),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    const JAVA_SEND: &str = r#"{"code":310,"extFields":{"a":"ProducerGroup","b":"load","c":"TBW102","d":"4","e":"3","f":"0","g":"1733540000000","h":"0","i":"UNIQ_KEY\u0001AC11\u0002WAIT\u0001true","j":"0","k":"false","m":"false"},"flag":0,"language":"JAVA","opaque":123,"serializeTypeCurrentRPC":"JSON","version":395}"#;
    const PULL: &str = r#"{"code":11,"extFields":{"consumerGroup":"g","topic":"load","queueId":"3","queueOffset":"64","maxMsgNums":"32","sysFlag":"6","commitOffset":"0","suspendTimeoutMillis":"0","subscription":"*","subVersion":"0","expressionType":"TAG"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":395}"#;

    #[test]
    fn common_headers_take_the_fast_path_and_match_serde() {
        let plain = r#"{"code":11,"extFields":{"a":"x","n":5,"z":null},"flag":0,"language":"GO","opaque":-7,"remark":null,"version":0}"#;
        let spaced = " {\n \"code\" : 10 , \"extFields\" : null , \"language\" : 3 , \"remark\" : \"r\" }\r\n";
        let escaped = r#"{"code":1,"extFields":{"k\u0041":"a\"b\\c\/d\b\f\n\r\t\u00e9\u0001"}}"#;
        for h in [
            JAVA_SEND,
            PULL,
            plain,
            spaced,
            escaped,
            r#"{"code":1}"#,
            "{}",
        ] {
            let fast = header(h.as_bytes()).unwrap_or_else(|| panic!("not fast: {h}"));
            assert_eq!(Some(fast), serde(h.as_bytes()), "{h}");
        }
        let h = header(plain.as_bytes()).unwrap();
        assert_eq!(
            (h.code, h.opaque, h.language),
            (Some(11), Some(-7), LanguageCode::Go)
        );
        assert_eq!(h.ext_fields.get("n").map(CompactString::as_str), Some("5"));
        assert!(!h.ext_fields.contains_key("z"));
        let h = header(escaped.as_bytes()).unwrap();
        assert_eq!(
            h.ext_fields.get("kA").map(CompactString::as_str),
            Some("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1}")
        );
        let java = header(JAVA_SEND.as_bytes()).unwrap();
        assert_eq!(
            java.ext_fields.get("i").map(CompactString::as_str),
            Some("UNIQ_KEY\u{1}AC11\u{2}WAIT\u{1}true")
        );
    }

    #[test]
    fn anything_unusual_goes_to_serde() {
        for h in [
            r#"{"code":1,"remark":"\ud83d\ude00"}"#,
            r#"{"code":1,"remark":"\x"}"#,
            r#"{"code":1,"remark":"\u00g1"}"#,
            r#"{"code":"34"}"#,
            r#"{"code":1.0}"#,
            r#"{"code":1e3}"#,
            r#"{"code":01}"#,
            r#"{"code":-0}"#,
            r#"{"code":1,"code":2}"#,
            r#"{"code":1,"extFields":{"t":true}}"#,
            r#"{"code":1,"extFields":{"o":{"a":1}}}"#,
            r#"{"code":1,"other":[1]}"#,
            r#"{"code":1} x"#,
            r#"{"code":1,}"#,
            r#"{"code":99999999999999999999}"#,
            "{\"code\":1,\"remark\":\"a\tb\"}",
            "[1]",
            "",
        ] {
            assert!(header(h.as_bytes()).is_none(), "{h}");
        }
        assert!(header(b"{\"code\":1,\"remark\":\"\xff\"}").is_none());
    }

    #[test]
    fn mutated_headers_never_decode_differently_from_serde() {
        // Every one- and two-byte change of real headers: whatever the fast path accepts,
        // serde decodes the same way.
        let alphabet = b"{}[]:,\"\\ 0-19e.nulltrx\x01\xff";
        for base in [
            PULL,
            r#"{"code":11,"extFields":{"a":"x","n":5},"language":"GO","opaque":-7,"remark":null}"#,
        ] {
            let base = base.as_bytes();
            for i in 0..base.len() {
                for &b in alphabet {
                    let mut m = base.to_vec();
                    m[i] = b;
                    agrees(&m);
                    let mut cut = base.to_vec();
                    cut.truncate(i);
                    agrees(&cut);
                    let mut extra = base.to_vec();
                    extra.insert(i, b);
                    agrees(&extra);
                    if let Some(j) = (i * 7 + usize::from(b)).checked_rem(base.len()) {
                        let mut two = m.clone();
                        two[j] = alphabet[(i + j) % alphabet.len()];
                        agrees(&two);
                    }
                }
            }
        }
    }
}
