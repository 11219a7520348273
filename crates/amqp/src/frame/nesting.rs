//! How deep a frame's field tables nest, checked before `amq-protocol` parses the frame.
//!
//! Tables and arrays may hold tables and arrays, and `amq-protocol` parses them recursively
//! on the connection's stack with no limit. Each level costs 5 bytes of frame (an array of one
//! array: type and length), so one 128 KiB frame can nest ~26,000 levels; 20,000 (a 100 KB
//! queue.declare) overflowed a worker's 2 MiB stack in the release build, which aborts the
//! whole process (`test_amqp.py::test_tables_nested_past_the_limit_...`). RabbitMQ's
//! Erlang parser has no such limit; we refuse tables nested deeper than [`MAX_DEPTH`] with a
//! frame error before parsing. Tables that clients send nest four levels at most
//! (`x-death`: headers, an array of tables, each with arrays of routing keys).

/// The deepest nesting of tables and arrays a frame may carry (the top table is level 1).
pub const MAX_DEPTH: usize = 64;

/// A field before a method's table.
#[derive(Clone, Copy)]
enum Field {
    Octet,
    Short,
    ShortStr,
}

/// Where the one table of a method (arguments, client or server properties) starts within
/// its arguments (after the class and method ids); `None` for methods without a table, or
/// when the fields before it do not fit (the parser refuses those).
fn method_table_start(class_id: u16, method_id: u16, args: &[u8]) -> Option<usize> {
    use Field::{Octet, Short, ShortStr};
    let before: &[Field] = match (class_id, method_id) {
        // connection.start: version-major, version-minor, server-properties.
        (10, 10) => &[Octet, Octet],
        // connection.start-ok: client-properties first.
        (10, 11) => &[],
        // exchange.declare: reserved, exchange, type, bits, arguments.
        (40, 10) => &[Short, ShortStr, ShortStr, Octet],
        // exchange.bind / unbind: reserved, destination, source, routing key, bits, arguments.
        (40, 30) | (40, 40) => &[Short, ShortStr, ShortStr, ShortStr, Octet],
        // queue.declare: reserved, queue, bits, arguments.
        (50, 10) => &[Short, ShortStr, Octet],
        // queue.bind: reserved, queue, exchange, routing key, no-wait, arguments.
        (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet],
        // queue.unbind: reserved, queue, exchange, routing key, arguments (no bits).
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr],
        // basic.consume: reserved, queue, consumer tag, bits, arguments.
        (60, 20) => &[Short, ShortStr, ShortStr, Octet],
        _ => return None,
    };
    let mut at = 0usize;
    for field in before {
        at += match field {
            Field::Octet => 1,
            Field::Short => 2,
            Field::ShortStr => 1 + usize::from(*args.get(at)?),
        };
    }
    (at < args.len()).then_some(at)
}

/// Whether the table of a method frame (its arguments after the class and method ids) nests
/// deeper than [`MAX_DEPTH`].
pub fn method_too_deep(class_id: u16, method_id: u16, args: &[u8]) -> bool {
    method_table_start(class_id, method_id, args)
        .is_some_and(|start| table_too_deep(&args[start..]))
}

/// Whether the `headers` of encoded basic properties (flags first) nest deeper than
/// [`MAX_DEPTH`]. Content type and content encoding, both short strings, come before them.
pub fn properties_too_deep(raw: &[u8]) -> bool {
    let (Some(&hi), Some(&lo)) = (raw.first(), raw.get(1)) else {
        return false;
    };
    let flags = u16::from_be_bytes([hi, lo]);
    let mut at = 2usize;
    for bit in [15, 14] {
        if flags & (1 << bit) != 0 {
            let Some(&len) = raw.get(at) else {
                return false;
            };
            at += 1 + usize::from(len);
        }
    }
    flags & (1 << 13) != 0 && raw.get(at..).is_some_and(table_too_deep)
}

/// Whether the field table at the start of `bytes` holds tables or arrays nested deeper than
/// [`MAX_DEPTH`]. Walks the encoding with a stack of where each open table or array ends, so
/// the check itself never recurses. Anything malformed answers false: the parser refuses it.
pub fn table_too_deep(bytes: &[u8]) -> bool {
    /// An open table (entries have names) or array (values only), and where it ends.
    struct Open {
        end: usize,
        named: bool,
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let Some(len) = u32_at(0) else {
        return false;
    };
    let mut stack = vec![Open {
        end: 4usize.saturating_add(len),
        named: true,
    }];
    let mut at = 4usize;
    while let Some(open) = stack.last() {
        if at >= open.end {
            at = open.end;
            stack.pop();
            continue;
        }
        if open.named {
            let Some(&key_len) = bytes.get(at) else {
                return false;
            };
            at += 1 + usize::from(key_len);
        }
        let Some(&kind) = bytes.get(at) else {
            return false;
        };
        at += 1;
        // The types `amq-protocol` reads (RabbitMQ's letters: `s` is a short int).
        let size = match kind {
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'V' => 0,
            b'S' | b'x' => match u32_at(at) {
                Some(n) => n.saturating_add(4),
                None => return false,
            },
            b'F' | b'A' => {
                let Some(n) = u32_at(at) else {
                    return false;
                };
                at += 4;
                let end = at.saturating_add(n);
                if end > open.end || end > bytes.len() {
                    return false;
                }
                stack.push(Open {
                    end,
                    named: kind == b'F',
                });
                if stack.len() > MAX_DEPTH {
                    return true;
                }
                continue;
            }
            _ => return false,
        };
        at = at.saturating_add(size);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};

    /// A value inside `levels` arrays or tables.
    fn nested_value(levels: usize, arrays: bool) -> AMQPValue {
        let mut value = AMQPValue::LongString("leaf".into());
        for _ in 0..levels {
            value = if arrays {
                AMQPValue::FieldArray(FieldArray::from(vec![value]))
            } else {
                let mut t = FieldTable::default();
                t.insert("k".into(), value);
                AMQPValue::FieldTable(t)
            };
        }
        value
    }

    /// A table `depth` levels deep (the table itself is level 1).
    fn nested(depth: usize, arrays: bool) -> FieldTable {
        let mut top = FieldTable::default();
        top.insert("x-deep".into(), nested_value(depth - 1, arrays));
        top
    }

    fn encode(table: &FieldTable) -> Vec<u8> {
        let ctx = amq_protocol::types::generation::gen_field_table(table)(
            amq_protocol::frame::WriteContext::from(Vec::new()),
        )
        .expect("a table encodes");
        ctx.into_inner().0
    }

    #[test]
    fn tables_up_to_the_limit_pass_and_deeper_ones_do_not() {
        for arrays in [false, true] {
            assert!(!table_too_deep(&encode(&nested(MAX_DEPTH, arrays))));
            assert!(table_too_deep(&encode(&nested(MAX_DEPTH + 1, arrays))));
        }
    }

    #[test]
    fn every_value_type_is_stepped_over() {
        let mut inner = FieldTable::default();
        inner.insert("t".into(), AMQPValue::Boolean(true));
        inner.insert("b".into(), AMQPValue::ShortShortInt(-1));
        inner.insert("B".into(), AMQPValue::ShortShortUInt(1));
        inner.insert("s".into(), AMQPValue::ShortInt(-2));
        inner.insert("u".into(), AMQPValue::ShortUInt(2));
        inner.insert("I".into(), AMQPValue::LongInt(-3));
        inner.insert("i".into(), AMQPValue::LongUInt(3));
        inner.insert("l".into(), AMQPValue::LongLongInt(-4));
        inner.insert("f".into(), AMQPValue::Float(1.5));
        inner.insert("d".into(), AMQPValue::Double(2.5));
        inner.insert(
            "D".into(),
            AMQPValue::DecimalValue(amq_protocol::types::DecimalValue { scale: 2, value: 7 }),
        );
        inner.insert("S".into(), AMQPValue::LongString("text".into()));
        inner.insert("x".into(), AMQPValue::ByteArray(vec![1, 2, 3].into()));
        inner.insert("T".into(), AMQPValue::Timestamp(9));
        inner.insert("V".into(), AMQPValue::Void);
        // The deep part comes after every other type: a miscounted size would lose it.
        inner.insert("z".into(), nested_value(MAX_DEPTH - 1, false));
        let mut top = FieldTable::default();
        top.insert("all".into(), AMQPValue::FieldTable(inner));
        assert!(table_too_deep(&encode(&top)));
    }

    #[test]
    fn malformed_tables_are_left_to_the_parser() {
        let mut bytes = encode(&nested(3, false));
        bytes.truncate(bytes.len() - 2);
        assert!(!table_too_deep(&bytes));
        assert!(!table_too_deep(&[0, 0, 0, 9, 1, b'k', b'?']));
        assert!(!table_too_deep(&[]));
        // An inner table claiming more than its parent holds.
        assert!(!table_too_deep(&[0, 0, 0, 7, 1, b'k', b'F', 0, 0, 0, 200]));
    }

    #[test]
    fn method_tables_are_found_after_their_fields() {
        let args = encode(&nested(MAX_DEPTH + 1, true));
        // queue.declare: reserved, queue "q", bits, arguments.
        let mut declare = vec![0, 0, 1, b'q', 0];
        declare.extend_from_slice(&args);
        assert!(method_too_deep(50, 10, &declare));
        // basic.consume: reserved, queue "q", tag "", bits, arguments.
        let mut consume = vec![0, 0, 1, b'q', 0, 0];
        consume.extend_from_slice(&args);
        assert!(method_too_deep(60, 20, &consume));
        // basic.publish has no table.
        assert!(!method_too_deep(60, 40, &consume));
        let shallow = encode(&nested(3, true));
        let mut fine = vec![0, 0, 1, b'q', 0];
        fine.extend_from_slice(&shallow);
        assert!(!method_too_deep(50, 10, &fine));
    }

    #[test]
    fn property_headers_are_found_after_content_type_and_encoding() {
        let headers = encode(&nested(MAX_DEPTH + 1, false));
        let mut raw = vec![0b1110_0000, 0, 4];
        raw.extend_from_slice(b"text");
        raw.push(2);
        raw.extend_from_slice(b"gz");
        raw.extend_from_slice(&headers);
        assert!(properties_too_deep(&raw));
        let mut no_headers = raw.clone();
        no_headers[0] = 0b1100_0000;
        assert!(!properties_too_deep(&no_headers));
    }

    /// What the limit protects: `amq-protocol` parsing a table nested this deep, on a thread
    /// with a tokio worker's 2 MiB stack. (Deeper tables overflowed it: see the module text.)
    #[test]
    fn the_parser_handles_the_deepest_table_allowed_on_a_worker_stack() {
        let bytes = encode(&nested(MAX_DEPTH, true));
        let parsed = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                amq_protocol::types::parsing::parse_field_table(&bytes[..])
                    .is_ok_and(|(rest, _)| rest.is_empty())
            })
            .expect("thread starts")
            .join()
            .expect("the parser returns");
        assert!(parsed);
    }
}
