//! Prometheus metrics: requests by operation and status, and instance figures sampled when
//! scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

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

    /// Text exposition format; `instances` is (status, count), `per_instance` is
    /// (instance id, name, used bytes, bytes in, bytes out).
    pub fn render(
        &self,
        instances: &[(String, u64)],
        per_instance: &[(String, String, u64, u64, u64)],
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP opendms_http_requests_total HTTP requests by operation and status."
        );
        let _ = writeln!(out, "# TYPE opendms_http_requests_total counter");
        let requests = self.requests.lock().clone();
        for ((op, status), (n, _)) in &requests {
            let _ = writeln!(
                out,
                "opendms_http_requests_total{{operation=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP opendms_http_request_seconds_total Time spent answering, by operation and status.");
        let _ = writeln!(out, "# TYPE opendms_http_request_seconds_total counter");
        for ((op, status), (_, secs)) in &requests {
            let _ = writeln!(out, "opendms_http_request_seconds_total{{operation=\"{op}\",status=\"{status}\"}} {secs}");
        }
        let _ = writeln!(out, "# HELP opendms_instances Instances by status.");
        let _ = writeln!(out, "# TYPE opendms_instances gauge");
        for (status, n) in instances {
            let _ = writeln!(out, "opendms_instances{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP opendms_instance_used_bytes Bytes stored by an instance's brokers."
        );
        let _ = writeln!(out, "# TYPE opendms_instance_used_bytes gauge");
        for (id, name, used, _, _) in per_instance {
            let _ = writeln!(
                out,
                "opendms_instance_used_bytes{{instance_id=\"{id}\",name=\"{}\"}} {used}",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP opendms_instance_bytes_in_total Record bytes produced to an instance."
        );
        let _ = writeln!(out, "# TYPE opendms_instance_bytes_in_total counter");
        for (id, name, _, bytes_in, _) in per_instance {
            let _ = writeln!(
                out,
                "opendms_instance_bytes_in_total{{instance_id=\"{id}\",name=\"{}\"}} {bytes_in}",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP opendms_instance_bytes_out_total Record bytes fetched from an instance."
        );
        let _ = writeln!(out, "# TYPE opendms_instance_bytes_out_total counter");
        for (id, name, _, _, bytes_out) in per_instance {
            let _ = writeln!(
                out,
                "opendms_instance_bytes_out_total{{instance_id=\"{id}\",name=\"{}\"}} {bytes_out}",
                escape(name)
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
