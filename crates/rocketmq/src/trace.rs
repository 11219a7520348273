//! Message trace records as RocketMQ 4.x clients write them into the trace topic
//! (`TraceDataEncoder`): one message body holds records ended by `\u{2}`, each of fields
//! separated by `\u{1}`, their order fixed by the record's type (`Pub`, `SubBefore`,
//! `SubAfter`, `EndTransaction`). The trace message's keys are the traced message's id and
//! keys, so a trace is found by a key query on the trace topic.

const CONTENT_SPLITOR: char = '\u{1}';
const FIELD_SPLITOR: char = '\u{2}';

/// One trace record, with the fields its type carries (the others empty or zero).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// `Pub`, `SubBefore`, `SubAfter` or `EndTransaction`.
    pub trace_type: String,
    pub timestamp: i64,
    pub region_id: String,
    pub group_name: String,
    pub request_id: String,
    pub topic: String,
    /// The client's unique key of the traced message.
    pub msg_id: String,
    pub offset_msg_id: String,
    pub tags: String,
    pub keys: String,
    pub store_host: String,
    pub body_length: i64,
    pub cost_time: i64,
    /// `MessageType` by name (`Normal_Msg`, `Trans_Msg_Half`, `Trans_msg_Commit`,
    /// `Delay_Msg`, `Order_Msg`).
    pub msg_type: String,
    pub success: bool,
    pub retry_times: i64,
    pub context_code: i64,
    pub transaction_id: String,
    pub transaction_state: String,
    pub from_transaction_check: bool,
}

fn message_type(ordinal: &str) -> String {
    match ordinal.trim() {
        "0" => "Normal_Msg",
        "1" => "Trans_Msg_Half",
        "2" => "Trans_msg_Commit",
        "3" => "Delay_Msg",
        "4" => "Order_Msg",
        other => other,
    }
    .to_string()
}

/// Reads every record of a trace message body; malformed records are skipped.
pub fn decode(body: &str) -> Vec<TraceRecord> {
    body.split(FIELD_SPLITOR)
        .filter(|r| !r.trim().is_empty())
        .filter_map(decode_record)
        .collect()
}

fn decode_record(record: &str) -> Option<TraceRecord> {
    let f: Vec<&str> = record.split(CONTENT_SPLITOR).collect();
    let s = |i: usize| f.get(i).map_or_else(String::new, |v| v.to_string());
    let n = |i: usize| f.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let b = |i: usize| f.get(i).is_some_and(|v| v.trim() == "true");
    let kind = f.first()?.trim();
    let r = match kind {
        "Pub" if f.len() >= 13 => TraceRecord {
            trace_type: kind.into(),
            timestamp: n(1),
            region_id: s(2),
            group_name: s(3),
            topic: s(4),
            msg_id: s(5),
            tags: s(6),
            keys: s(7),
            store_host: s(8),
            body_length: n(9),
            cost_time: n(10),
            msg_type: message_type(&s(11)),
            offset_msg_id: s(12),
            // Clients before 4.4 end the record without `success`: it was sent.
            success: f.len() < 14 || b(13),
            ..TraceRecord::default()
        },
        "SubBefore" if f.len() >= 8 => TraceRecord {
            trace_type: kind.into(),
            timestamp: n(1),
            region_id: s(2),
            group_name: s(3),
            request_id: s(4),
            msg_id: s(5),
            retry_times: n(6),
            keys: s(7),
            success: true,
            ..TraceRecord::default()
        },
        "SubAfter" if f.len() >= 6 => TraceRecord {
            trace_type: kind.into(),
            request_id: s(1),
            msg_id: s(2),
            cost_time: n(3),
            success: b(4),
            keys: s(5),
            context_code: n(6),
            timestamp: n(7),
            group_name: s(8),
            ..TraceRecord::default()
        },
        "EndTransaction" if f.len() >= 13 => TraceRecord {
            trace_type: kind.into(),
            timestamp: n(1),
            region_id: s(2),
            group_name: s(3),
            topic: s(4),
            msg_id: s(5),
            tags: s(6),
            keys: s(7),
            store_host: s(8),
            msg_type: message_type(&s(9)),
            transaction_id: s(10),
            transaction_state: s(11),
            from_transaction_check: b(12),
            success: true,
            ..TraceRecord::default()
        },
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_records_of_each_type_and_skips_malformed_ones() {
        let body = "Pub\u{1}1634822858013\u{1}DefaultRegion\u{1}PG\u{1}aaaaa\u{1}7F00\u{1}TagA\u{1}OrderID188\u{1}192.168.0.1:10101\u{1}11\u{1}47\u{1}0\u{1}C0A8\u{1}true\u{2}\
SubBefore\u{1}1634822858100\u{1}DefaultRegion\u{1}CG\u{1}req-1\u{1}7F00\u{1}0\u{1}OrderID188\u{2}\
SubAfter\u{1}req-1\u{1}7F00\u{1}3\u{1}false\u{1}OrderID188\u{1}1\u{1}1634822858103\u{1}CG\u{2}\
Bogus\u{1}x\u{2}";
        let r = decode(body);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].trace_type, "Pub");
        assert_eq!(r[0].timestamp, 1_634_822_858_013);
        assert_eq!(r[0].group_name, "PG");
        assert_eq!(r[0].msg_type, "Normal_Msg");
        assert_eq!(r[0].offset_msg_id, "C0A8");
        assert_eq!(r[0].body_length, 11);
        assert!(r[0].success);
        assert_eq!(r[1].request_id, "req-1");
        assert_eq!(r[1].group_name, "CG");
        assert_eq!(r[2].trace_type, "SubAfter");
        assert!(!r[2].success);
        assert_eq!(r[2].cost_time, 3);
        assert_eq!(r[2].context_code, 1);
        assert_eq!(r[2].group_name, "CG");
    }
}
