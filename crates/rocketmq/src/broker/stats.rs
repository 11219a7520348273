//! What a broker counts: messages and bytes put and got, in total, per topic and per
//! consumer group, and the rates `mqadmin brokerStatus` and `consumerProgress` show
//! (`putTps`, `getTransferedTps` over 10 s, 60 s and 600 s; a group's `consumeTps`).
//! Counters are atomics on the hot paths; rates come from one sample per second taken by
//! the broker's background task.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Seconds of samples kept: the longest rate Apache prints is over 600 s.
const WINDOW: usize = 601;

#[derive(Default)]
struct Totals {
    msgs_in: AtomicU64,
    bytes_in: AtomicU64,
    msgs_out: AtomicU64,
    bytes_out: AtomicU64,
}

/// Counts of one topic or group: (messages in, bytes in, messages out, bytes out).
pub type Counts = (u64, u64, u64, u64);

/// The counters at one second: (messages in, messages out, messages out per group).
type Sample = (u64, u64, HashMap<String, u64>);

#[derive(Default)]
pub struct BrokerStats {
    totals: Totals,
    by_topic: Mutex<HashMap<String, Counts>>,
    /// Messages consumed per group.
    by_group: Mutex<HashMap<String, u64>>,
    /// One sample per second.
    samples: Mutex<VecDeque<Sample>>,
    /// (day number since the epoch, messages in and out when it began).
    day_start: Mutex<(i64, u64, u64)>,
}

impl BrokerStats {
    /// Messages written to a topic.
    pub fn put(&self, topic: &str, msgs: u64, bytes: u64) {
        self.totals.msgs_in.fetch_add(msgs, Ordering::Relaxed);
        self.totals.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        bump(&mut self.by_topic.lock(), topic, |c| {
            c.0 += msgs;
            c.1 += bytes;
        });
    }

    /// Messages a group pulled from a topic.
    pub fn got(&self, group: &str, topic: &str, msgs: u64, bytes: u64) {
        self.totals.msgs_out.fetch_add(msgs, Ordering::Relaxed);
        self.totals.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        bump(&mut self.by_topic.lock(), topic, |c| {
            c.2 += msgs;
            c.3 += bytes;
        });
        bump(&mut self.by_group.lock(), group, |n| *n += msgs);
    }

    /// (messages in, bytes in, messages out, bytes out) since the broker started.
    pub fn totals(&self) -> Counts {
        (
            self.totals.msgs_in.load(Ordering::Relaxed),
            self.totals.bytes_in.load(Ordering::Relaxed),
            self.totals.msgs_out.load(Ordering::Relaxed),
            self.totals.bytes_out.load(Ordering::Relaxed),
        )
    }

    pub fn by_topic(&self) -> HashMap<String, Counts> {
        self.by_topic.lock().clone()
    }

    /// Takes the second's sample; called once a second.
    pub fn sample(&self, now_ms: i64) {
        let (msgs_in, _, msgs_out, _) = self.totals();
        let groups = self.by_group.lock().clone();
        let mut s = self.samples.lock();
        s.push_back((msgs_in, msgs_out, groups));
        while s.len() > WINDOW {
            s.pop_front();
        }
        let day = now_ms.div_euclid(86_400_000);
        let mut d = self.day_start.lock();
        if d.0 != day {
            *d = (day, msgs_in, msgs_out);
        }
    }

    /// Messages per second over the last `secs` seconds (fewer if the broker is younger):
    /// (in, out).
    pub fn tps(&self, secs: usize) -> (f64, f64) {
        let s = self.samples.lock();
        let Some((first, last, span)) = window(&s, secs) else {
            return (0.0, 0.0);
        };
        (
            last.0.saturating_sub(first.0) as f64 / span,
            last.1.saturating_sub(first.1) as f64 / span,
        )
    }

    /// A group's messages consumed per second over the last minute.
    pub fn group_tps(&self, group: &str) -> f64 {
        let s = self.samples.lock();
        let Some((first, last, span)) = window(&s, 60) else {
            return 0.0;
        };
        let n = |m: &HashMap<String, u64>| m.get(group).copied().unwrap_or(0);
        n(&last.2).saturating_sub(n(&first.2)) as f64 / span
    }

    /// Messages put and got since the start of the day (UTC), or of the broker.
    pub fn today(&self) -> (u64, u64) {
        let (msgs_in, _, msgs_out, _) = self.totals();
        let d = self.day_start.lock();
        (msgs_in - d.1.min(msgs_in), msgs_out - d.2.min(msgs_out))
    }

    /// `putTps` / `getTransferedTps` as Apache prints them: three rates, 10 s, 60 s, 600 s.
    pub fn tps_line(&self, out: bool) -> String {
        let pick = |secs| {
            let (i, o) = self.tps(secs);
            if out {
                o
            } else {
                i
            }
        };
        format!("{:.1} {:.1} {:.1}", pick(10), pick(60), pick(600))
    }
}

/// Changes a topic's or group's counts, adding them on first use (no allocation on the hot
/// path once the name is there).
fn bump<C: Default>(t: &mut HashMap<String, C>, name: &str, f: impl FnOnce(&mut C)) {
    match t.get_mut(name) {
        Some(c) => f(c),
        None => {
            let mut c = C::default();
            f(&mut c);
            t.insert(name.to_string(), c);
        }
    }
}

/// The samples `secs` seconds apart (fewer when there are not that many) and the seconds
/// between them (at least 1); `None` without samples.
fn window(s: &VecDeque<Sample>, secs: usize) -> Option<(&Sample, &Sample, f64)> {
    let last = s.back()?;
    let back = secs.min(s.len() - 1);
    let first = s.get(s.len() - 1 - back)?;
    Some((first, last, back.max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates_follow_what_was_put_and_got() {
        let s = BrokerStats::default();
        assert_eq!(s.tps(10), (0.0, 0.0));
        s.sample(0);
        s.put("t", 10, 1000);
        s.got("g", "t", 4, 400);
        s.sample(1000);
        s.put("t", 10, 1000);
        s.sample(2000);
        assert_eq!(s.totals(), (20, 2000, 4, 400));
        assert_eq!(s.by_topic()["t"], (20, 2000, 4, 400));
        let (i, o) = s.tps(10);
        assert!((i - 10.0).abs() < 1e-9, "{i}");
        assert!((o - 2.0).abs() < 1e-9, "{o}");
        assert!((s.group_tps("g") - 2.0).abs() < 1e-9);
        assert_eq!(s.group_tps("other"), 0.0);
        assert_eq!(s.today(), (20, 4));
        // A new day starts counting from there.
        s.sample(86_400_000);
        s.put("t", 1, 10);
        assert_eq!(s.today(), (1, 0));
        assert_eq!(s.tps_line(false), "6.7 6.7 6.7");
    }
}
