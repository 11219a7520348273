//! Prometheus metrics: requests by operation and status, and instance figures sampled when
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use control::model::InstanceFigures;
use parking_lot::Mutex;

/// (count, seconds) of the requests of one (operation, status).
type RequestTotals = BTreeMap<(&'static str, u16), (u64, f64)>;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<RequestTotals>,
}

impl Metrics {
    pub fn record_request(&self, operation: &'static str, status: u16, took: Duration) {
        let mut m = self.requests.lock();
        let e = m.entry((operation, status)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += took.as_secs_f64();
    }

    /// Text exposition format: request counters, instances by status, and figures per
    /// running instance.
    pub fn render(&self, instances: &[(String, u64)], per_instance: &[InstanceFigures]) -> String {
        let requests = self.requests.lock().clone();
        let request_label =
            |op: &str, status: u16| format!("operation=\"{op}\",status=\"{status}\"");
        let instance_label =
            |f: &InstanceFigures| format!("instance_id=\"{}\",name=\"{}\"", f.id, escape(&f.name));
        let mut out = String::new();
        family(
            &mut out,
            "opendms_http_requests_total",
            "counter",
            "HTTP requests by operation and status.",
            requests
                .iter()
                .map(|((op, st), (n, _))| (request_label(op, *st), n.to_string())),
        );
        family(
            &mut out,
            "opendms_http_request_seconds_total",
            "counter",
            "Time spent answering, by operation and status.",
            requests
                .iter()
                .map(|((op, st), (_, secs))| (request_label(op, *st), secs.to_string())),
        );
        family(
            &mut out,
            "opendms_instances",
            "gauge",
            "Instances by status.",
            instances
                .iter()
                .map(|(st, n)| (format!("status=\"{st}\""), n.to_string())),
        );
        family(
            &mut out,
            "opendms_instance_used_bytes",
            "gauge",
            "Bytes stored by an instance's brokers.",
            per_instance
                .iter()
                .map(|f| (instance_label(f), f.usage.used_bytes.to_string())),
        );
        family(
            &mut out,
            "opendms_instance_bytes_in_total",
            "counter",
            "Record bytes produced to an instance.",
            per_instance
                .iter()
                .map(|f| (instance_label(f), f.usage.bytes_in.to_string())),
        );
        family(
            &mut out,
            "opendms_instance_bytes_out_total",
            "counter",
            "Record bytes fetched from an instance.",
            per_instance
                .iter()
                .map(|f| (instance_label(f), f.usage.bytes_out.to_string())),
        );
        out
    }
}

/// One metric family: its HELP and TYPE lines, then a sample per (labels, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
