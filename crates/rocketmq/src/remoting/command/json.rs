//! The JSON header as clients write it, decoded in one pass with the leniency every client
//! generation needs: numbers as numbers or strings, `language` as a name or an ordinal,
//! `remark` as anything, `extFields` values as strings, numbers, booleans or null.

use std::fmt;

use compact_str::{CompactString, ToCompactString};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{ExtFields, LanguageCode};

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct Header {
    #[serde(default, deserialize_with = "lenient_int")]
    pub code: Option<i64>,
    #[serde(default, deserialize_with = "language")]
    pub language: LanguageCode,
    #[serde(default, deserialize_with = "lenient_int")]
    pub version: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub opaque: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub flag: Option<i64>,
    #[serde(default, deserialize_with = "remark")]
    pub remark: Option<String>,
    #[serde(default, rename = "extFields", deserialize_with = "ext_fields")]
    pub ext_fields: ExtFields,
}

/// An integer written as a number or as a numeric string (spaces allowed); null is absent.
fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or a numeric string")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(V)
}

/// The client's language: a name (JSON clients) or an ordinal; anything else is Java, as
/// an absent one is.
fn language<'de, D: Deserializer<'de>>(d: D) -> Result<LanguageCode, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = LanguageCode;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a language name or ordinal")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(LanguageCode::from_name(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(u8::try_from(v).map_or(LanguageCode::Other, LanguageCode::from_ordinal))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(LanguageCode::Other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(LanguageCode::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(LanguageCode::Java)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(LanguageCode::Java)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(LanguageCode::Java)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(LanguageCode::Java)
        }
    }
    d.deserialize_any(V)
}

/// The remark when it is a string; null or any other value is no remark.
fn remark<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::Text(s) => Some(s.into()),
        _ => None,
    })
}

/// `extFields`: an object (its null values dropped, other values as their text) or null.
fn ext_fields<'de, D: Deserializer<'de>>(d: D) -> Result<ExtFields, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ExtFields;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("extFields as an object")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(ExtFields::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = ExtFields::with_capacity(16);
            while let Some((k, v)) = m.next_entry::<CompactString, Scalar>()? {
                if let Some(text) = v.into_text() {
                    out.insert(k, text);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Any JSON value, kept as the text a header field's value stands for.
enum Scalar {
    Null,
    Text(CompactString),
    /// A number, boolean, object or array, written as JSON.
    Other(CompactString),
}

impl Scalar {
    fn into_text(self) -> Option<CompactString> {
        match self {
            Scalar::Null => None,
            Scalar::Text(s) | Scalar::Other(s) => Some(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.into()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other(v.to_compact_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other(v.to_compact_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Other(v.to_compact_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                // As JSON writes it (`3.0`, `1e+20`), not as Rust displays a float.
                Ok(Scalar::Other(serde_json::Number::from_f64(v).map_or_else(
                    || v.to_compact_string(),
                    |n| n.to_compact_string(),
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Scalar, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Scalar::Other(v.to_compact_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Scalar, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(s))?;
                Ok(Scalar::Other(v.to_compact_string()))
            }
        }
        d.deserialize_any(V)
    }
}
