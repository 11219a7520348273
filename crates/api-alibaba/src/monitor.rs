//! The six CloudMonitor operations of seed 004 §16 on the figures `control::metrics`
//! samples. Namespace `acs_kafka` (the document does not name one; it is Alibaba's).
//! `Datapoints` is a JSON string, as the operation tables type it.

use std::collections::BTreeMap;
use std::sync::Arc;

use control::metrics::{MetricStore, SeriesKey, METRICS};
use serde_json::{json, Map, Value};

use crate::actions::params::{fields, Fields};
use crate::cms::NAMESPACE;
use crate::envelope::AliError;
use crate::request::Parsed;
use crate::AliState;

/// Epoch milliseconds, or `YYYY-MM-DD hh:mm:ss` (read as UTC).
fn parse_time(key: &str, v: &str) -> Result<i64, AliError> {
    if let Ok(ms) = v.trim().parse::<i64>() {
        return Ok(ms);
    }
    let iso = v.trim().replacen(' ', "T", 1) + "Z";
    auth::alibaba::parse_timestamp(&iso)
        .map(|s| s * 1000)
        .ok_or_else(|| AliError::invalid(key, "epoch milliseconds or YYYY-MM-DD hh:mm:ss"))
}

/// `[{"instanceId":"x"}, …]` or `{"instanceId":"x"}`: alternatives of key/value sets.
fn dimension_filters(p: &Parsed) -> Result<Vec<Vec<(String, String)>>, AliError> {
    let Some(text) = p.get("Dimensions").filter(|d| !d.trim().is_empty()) else {
        return Ok(vec![Vec::new()]);
    };
    let v: Value = serde_json::from_str(text).map_err(|e| AliError::invalid("Dimensions", e))?;
    let objects = match v {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(AliError::invalid(
                "Dimensions",
                "a JSON object or array of objects",
            ))
        }
    };
    objects
        .into_iter()
        .map(|o| match o {
            Value::Object(m) => Ok(m
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()),
            _ => Err(AliError::invalid(
                "Dimensions",
                "a JSON object or array of objects",
            )),
        })
        .collect()
}

fn metric_name(p: &Parsed) -> Result<&str, AliError> {
    let name = p
        .get("MetricName")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| AliError::missing("MetricName"))?;
    if !METRICS.iter().any(|m| m.0 == name) {
        return Err(AliError::invalid(
            "MetricName",
            format!("{name} is not a metric of {NAMESPACE}"),
        ));
    }
    Ok(name)
}

fn check_namespace(p: &Parsed) -> Result<(), AliError> {
    match p.get("Namespace").filter(|n| !n.is_empty()) {
        None => Err(AliError::missing("Namespace")),
        Some(NAMESPACE) => Ok(()),
        Some(other) => Err(AliError::invalid(
            "Namespace",
            format!("{other}: this service answers {NAMESPACE}"),
        )),
    }
}

/// A series and its points, (timestamp ms, value).
type Series = (SeriesKey, Vec<(i64, f64)>);

fn series(
    store: &MetricStore,
    p: &Parsed,
    metric: &str,
    start: i64,
    end: i64,
) -> Result<Vec<Series>, AliError> {
    let mut out: Vec<Series> = Vec::new();
    for filter in dimension_filters(p)? {
        for s in store.query(&p.caller.project_id, metric, &filter, start, end) {
            if !out.iter().any(|(k, _)| *k == s.0) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn datapoint(key: &SeriesKey, timestamp: i64, values: &[f64]) -> Value {
    let sum: f64 = values.iter().sum();
    let mut m = Map::new();
    m.insert("timestamp".into(), json!(timestamp));
    m.insert("instanceId".into(), json!(key.instance_id));
    if let Some(g) = &key.consumer_group {
        m.insert("consumerGroup".into(), json!(g));
    }
    if let Some(t) = &key.topic {
        m.insert("topic".into(), json!(t));
    }
    let round = |v: f64| (v * 1e6).round() / 1e6;
    m.insert(
        "Average".into(),
        json!(round(sum / values.len().max(1) as f64)),
    );
    m.insert(
        "Maximum".into(),
        json!(round(values.iter().copied().fold(f64::MIN, f64::max))),
    );
    m.insert(
        "Minimum".into(),
        json!(round(values.iter().copied().fold(f64::MAX, f64::min))),
    );
    m.insert("Sum".into(), json!(round(sum)));
    m.insert("SampleCount".into(), json!(values.len()));
    Value::Object(m)
}

/// Points grouped into `period`-second buckets (timestamp = bucket start).
fn bucketed(points: &[(i64, f64)], period: i64) -> BTreeMap<i64, Vec<f64>> {
    let width = period.max(1) * 1000;
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in points {
        out.entry(t - t.rem_euclid(width)).or_default().push(*v);
    }
    out
}

fn period(p: &Parsed) -> Result<i64, AliError> {
    match p.get("Period").filter(|v| !v.is_empty()) {
        None => Ok(60),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| AliError::invalid("Period", "a positive number of seconds")),
    }
}

fn range(p: &Parsed) -> Result<(i64, i64), AliError> {
    let end = match p.get("EndTime").filter(|v| !v.is_empty()) {
        Some(v) => parse_time("EndTime", v)?,
        None => control::now_ms(),
    };
    let start = match p.get("StartTime").filter(|v| !v.is_empty()) {
        Some(v) => parse_time("StartTime", v)?,
        None => end - 3_600_000,
    };
    if start >= end {
        return Err(AliError::invalid(
            "StartTime",
            "must be earlier than EndTime",
        ));
    }
    Ok((start, end))
}

fn length(p: &Parsed) -> Result<usize, AliError> {
    match p.get("Length").filter(|v| !v.is_empty()) {
        None => Ok(1000),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| AliError::invalid("Length", "1 to 1000")),
    }
}

fn answer(period: i64, points: Vec<Value>, next: Option<String>) -> Fields {
    let mut m = Map::new();
    m.insert("Period".into(), json!(period.to_string()));
    m.insert("Datapoints".into(), json!(Value::Array(points).to_string()));
    if let Some(n) = next {
        m.insert("NextToken".into(), json!(n));
    }
    m
}

/// The monitoring data of Message Queue for Kafka (`DescribeProjectMeta`).
pub(crate) async fn describe_project_meta(_: Arc<AliState>, p: Parsed) -> Result<Fields, AliError> {
    let page = p
        .get("PageNumber")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1);
    let size = p
        .get("PageSize")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30);
    let resources = if page == 1 {
        vec![json!({
            "Namespace": NAMESPACE,
            "Description": "Message Queue for Apache Kafka",
            "Labels": "[{\"name\":\"product\",\"value\":\"Kafka\"},{\"name\":\"productCategory\",\"value\":\"kafka\"}]",
        })]
    } else {
        Vec::new()
    };
    Ok(fields(json!({
        "Resources": {"Resource": resources},
        "Total": "1",
        "PageNumber": page.to_string(),
        "PageSize": size.to_string(),
    })))
}

pub(crate) async fn describe_metric_meta_list(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    check_namespace(&p)?;
    let only = p.get("MetricName").filter(|m| !m.is_empty());
    let list: Vec<Value> = METRICS
        .iter()
        .filter(|m| only.is_none_or(|o| o == m.0))
        .map(|(name, description, unit, dims)| {
            json!({
                "MetricName": name,
                "Namespace": NAMESPACE,
                "Description": description,
                "Unit": unit,
                "Dimensions": dims,
                "Periods": "60,300,900",
                "Statistics": "Average,Minimum,Maximum",
                "Labels": format!("[{{\"name\":\"minAlertPeriod\",\"value\":\"{}\"}},{{\"name\":\"productCategory\",\"value\":\"kafka\"}}]", state.metrics.interval.as_secs().max(1)),
            })
        })
        .collect();
    Ok(fields(json!({
        "Resources": {"Resource": list.clone()},
        "TotalCount": list.len().to_string(),
    })))
}

pub(crate) async fn describe_metric_last(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    check_namespace(&p)?;
    let metric = metric_name(&p)?;
    let period = period(&p)?;
    let (start, end) = match (
        p.get("StartTime").filter(|v| !v.is_empty()),
        p.get("EndTime").filter(|v| !v.is_empty()),
    ) {
        (None, None) => (i64::MIN, i64::MAX),
        _ => range(&p)?,
    };
    let points: Vec<Value> = series(&state.metrics, &p, metric, start, end)?
        .iter()
        .filter_map(|(k, pts)| pts.last().map(|(t, v)| datapoint(k, *t, &[*v])))
        .take(length(&p)?)
        .collect();
    Ok(answer(period, points, None))
}

/// `DescribeMetricList` (paged with `NextToken`) and `DescribeMetricData` (one page).
pub(crate) async fn describe_metric_list(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    check_namespace(&p)?;
    let metric = metric_name(&p)?;
    let period = period(&p)?;
    let (start, end) = range(&p)?;
    let mut points: Vec<Value> = Vec::new();
    for (k, pts) in series(&state.metrics, &p, metric, start, end)? {
        for (t, values) in bucketed(&pts, period) {
            points.push(datapoint(&k, t, &values));
        }
    }
    let len = length(&p)?;
    if p.action == "DescribeMetricData" {
        points.truncate(len);
        return Ok(answer(period, points, None));
    }
    let from = p
        .get("NextToken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let next = (from + len < points.len()).then(|| (from + len).to_string());
    let page: Vec<Value> = points.into_iter().skip(from).take(len).collect();
    Ok(answer(period, page, next))
}

pub(crate) async fn describe_metric_top(
    state: Arc<AliState>,
    p: Parsed,
) -> Result<Fields, AliError> {
    check_namespace(&p)?;
    let metric = metric_name(&p)?;
    let period = period(&p)?;
    let (start, end) = range(&p)?;
    let order_by = p
        .get("Orderby")
        .filter(|o| !o.is_empty())
        .unwrap_or("Average");
    if !matches!(
        order_by,
        "Average" | "Maximum" | "Minimum" | "Sum" | "SampleCount"
    ) {
        return Err(AliError::invalid(
            "Orderby",
            "Average, Maximum, Minimum, Sum or SampleCount",
        ));
    }
    // Seed 004 §16.6: OrderDesc False sorts descending, True ascending. Top ranges are
    // [start, end), unlike List and Data.
    let ascending = p
        .get("OrderDesc")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut points: Vec<Value> = series(&state.metrics, &p, metric, start - 1, end - 1)?
        .iter()
        .map(|(k, pts)| {
            let values: Vec<f64> = pts.iter().map(|(_, v)| *v).collect();
            let last = pts.last().map(|(t, _)| *t).unwrap_or(start);
            datapoint(k, last, &values)
        })
        .collect();
    points.sort_by(|a, b| {
        let (x, y) = (
            a[order_by].as_f64().unwrap_or(0.0),
            b[order_by].as_f64().unwrap_or(0.0),
        );
        let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
        if ascending {
            o
        } else {
            o.reverse()
        }
    });
    points.truncate(length(&p)?);
    Ok(answer(period, points, None))
}
