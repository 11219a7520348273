//! A command's custom header fields (`extFields`).

use std::cmp::Ordering;

#[cfg(test)]
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::HeaderText;

/// A command's custom header fields, ordered by name (byte order, as Java's `TreeMap` orders
/// them for the ACL signature and fastjson writes them), each name once.
///
/// A sorted vector rather than a `BTreeMap`: a request has about a dozen fields
/// (SEND_MESSAGE_V2 thirteen one-letter names), Java sends them already in order, so decoding
/// appends, and a lookup compares the first byte inline before calling `memcmp`. The map's
/// inserts and lookups, each comparison a `memcmp` call, were 7% of the broker's CPU samples
/// per send under bench/rocketmq-run's 64-producer load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtFields {
    fields: Vec<(HeaderText, HeaderText)>,
}

/// Name order: the first byte, compared inline, settles almost every comparison.
fn cmp_name(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.as_bytes().cmp(b.as_bytes()),
    }
}

impl ExtFields {
    pub fn new() -> ExtFields {
        ExtFields::default()
    }

    /// Room for `n` fields: a decoded request's fields arrive one by one, and growing the
    /// vector 4 -> 8 -> 16 cost ~1,000 instructions per send (callgrind).
    pub fn with_capacity(n: usize) -> ExtFields {
        ExtFields {
            fields: Vec::with_capacity(n),
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.fields.binary_search_by(|(k, _)| cmp_name(k, name))
    }

    pub fn get(&self, name: &str) -> Option<&HeaderText> {
        self.position(name).ok().map(|i| &self.fields[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; the value it had, if any.
    pub fn insert(&mut self, name: HeaderText, value: HeaderText) -> Option<HeaderText> {
        // Names arriving in order (Java's headers) are appended without a search.
        if self
            .fields
            .last()
            .is_none_or(|(last, _)| cmp_name(last, &name) == Ordering::Less)
        {
            self.fields.push((name, value));
            return None;
        }
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.fields[i].1, value)),
            Err(i) => {
                self.fields.insert(i, (name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<HeaderText> {
        let i = self.position(name).ok()?;
        Some(self.fields.remove(i).1)
    }

    /// The fields in name order.
    pub fn iter(&self) -> Iter<'_> {
        self.fields.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// The fields of an [`ExtFields`] in name order.
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (HeaderText, HeaderText)>,
    fn(&'a (HeaderText, HeaderText)) -> (&'a HeaderText, &'a HeaderText),
>;

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a HeaderText, &'a HeaderText);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(HeaderText, HeaderText)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (HeaderText, HeaderText)>>(iter: I) -> ExtFields {
        let mut out = ExtFields::new();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

impl<const N: usize> From<[(HeaderText, HeaderText); N]> for ExtFields {
    fn from(fields: [(HeaderText, HeaderText); N]) -> ExtFields {
        fields.into_iter().collect()
    }
}

/// As a JSON object: the tests compare the hand-written JSON header with serde_json's.
#[cfg(test)]
impl Serialize for ExtFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            m.serialize_entry(k.as_str(), v.as_str())?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Whatever order names arrive in, and however often, the fields are what a `BTreeMap`
    /// (the type this replaced) holds: the last value of each name, in byte order.
    #[test]
    fn fields_keep_name_order_and_the_last_value_like_a_btree_map() {
        let names = [
            "b", "a", "", "ab", "ba", "aa", "a", "é", "Z", "b", "topic", "t",
        ];
        for rotate in 0..names.len() {
            let mut ours = ExtFields::new();
            let mut map = BTreeMap::new();
            for (i, name) in names
                .iter()
                .cycle()
                .skip(rotate)
                .take(names.len() * 2)
                .enumerate()
            {
                let value = HeaderText::from(i.to_string());
                assert_eq!(
                    ours.insert((*name).into(), value.clone()),
                    map.insert(HeaderText::from(*name), value)
                );
            }
            let ours_list: Vec<_> = ours.iter().collect();
            let map_list: Vec<_> = map.iter().collect();
            assert_eq!(ours_list, map_list);
            for name in names.iter().chain(&["x", "b2"]) {
                assert_eq!(ours.get(name), map.get(*name), "{name}");
                assert_eq!(ours.contains_key(name), map.contains_key(*name));
            }
            assert_eq!(ours.remove("a"), map.remove("a"));
            assert_eq!(ours.len(), map.len());
        }
    }

    #[test]
    fn fields_serialize_as_a_json_object_in_name_order() {
        let f = ExtFields::from([("topic".into(), "t\"1".into()), ("a".into(), "x".into())]);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"a":"x","topic":"t\"1"}"#
        );
        assert!(ExtFields::new().is_empty());
    }
}
