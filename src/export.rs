//! Prometheus exposition: query results → metric families (rendered once per
//! refresh into the classic text format) and the live service metrics.
//!
//! Invariants of the business output: no NaN, no sample timestamps, every
//! family has HELP and TYPE, histogram buckets are cumulative and ordered
//! with `+Inf` last, followed by `_sum` and `_count`.

use std::fmt::Write as _;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::event::Reason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    /// Precomputed quantiles (a `quantile` label, no `_sum`/`_count`): typed
    /// as a summary so that Prometheus tooling reads the label as meant.
    Summary,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "gauge" => Some(Kind::Gauge),
            "counter" => Some(Kind::Counter),
            "histogram" => Some(Kind::Histogram),
            "summary" => Some(Kind::Summary),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// How a query's result columns map to one metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub labels: Vec<String>,
    pub value: String,
    /// On `/metrics`; a family that is not (`-- export: no`) is only read by
    /// the dashboard and `/api/funnel`, e.g. the previous period's values
    /// (docs/metrics.md §5.5).
    pub exported: bool,
}

/// Columns a histogram query must return besides its labels and value.
pub const HISTOGRAM_COLUMNS: [&str; 2] = ["le", "sum"];

/// One sample: its full name (with `_bucket`/`_sum`/`_count` for histograms), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub spec: MetricSpec,
    pub samples: Vec<Sample>,
}

/// Turns query result batches into a family. Rows with a null or NaN value are skipped.
pub fn family(spec: &MetricSpec, batches: &[RecordBatch]) -> Result<Family, String> {
    // (labels, le, value, sum) of every row with a value.
    type Row = (Vec<(String, String)>, Option<String>, f64, f64);
    let mut rows: Vec<Row> = Vec::new();
    for b in batches {
        let text = |name: &str| -> Result<Vec<Option<String>>, String> {
            let c = b.column_by_name(name).ok_or_else(|| format!("result has no column {name:?}"))?;
            let c = cast(c, &DataType::Utf8).map_err(|e| format!("column {name:?}: {e}"))?;
            Ok(c.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect())
        };
        let number = |name: &str| -> Result<Vec<Option<f64>>, String> {
            let c = b.column_by_name(name).ok_or_else(|| format!("result has no column {name:?}"))?;
            let c = cast(c, &DataType::Float64).map_err(|e| format!("column {name:?} is not numeric: {e}"))?;
            Ok(c.as_primitive::<Float64Type>().iter().collect())
        };
        let labels: Vec<Vec<Option<String>>> = spec.labels.iter().map(|l| text(l)).collect::<Result<_, _>>()?;
        let values = number(&spec.value)?;
        let (le, sums) = if spec.kind == Kind::Histogram {
            (text("le")?, number("sum")?)
        } else {
            (vec![None; b.num_rows()], vec![Some(0.0); b.num_rows()])
        };
        for row in 0..b.num_rows() {
            let Some(v) = values[row].filter(|v| !v.is_nan()) else { continue };
            let ls = spec
                .labels
                .iter()
                .zip(&labels)
                .filter_map(|(name, col)| col[row].clone().map(|v| (name.clone(), v)))
                .collect();
            rows.push((ls, le[row].clone(), v, sums[row].unwrap_or(0.0)));
        }
    }
    let mut samples = Vec::with_capacity(rows.len());
    if spec.kind == Kind::Histogram {
        let le_order =
            |le: &Option<String>| le.as_deref().map_or(f64::INFINITY, |s| s.parse().unwrap_or(f64::INFINITY));
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(le_order(&a.1).total_cmp(&le_order(&b.1))));
        for series in rows.chunk_by(|a, b| a.0 == b.0) {
            let last = series.last().expect("non-empty chunk");
            if last.1.as_deref() != Some("+Inf") {
                return Err(format!("histogram series {:?} has no le=\"+Inf\" bucket", last.0));
            }
            for (labels, le, v, _) in series {
                let mut labels = labels.clone();
                labels.push(("le".into(), le.clone().unwrap_or_default()));
                samples.push(Sample { name: format!("{}_bucket", spec.name), labels, value: *v });
            }
            let (labels, _, count, sum) = last;
            samples.push(Sample { name: format!("{}_sum", spec.name), labels: labels.clone(), value: *sum });
            samples.push(Sample { name: format!("{}_count", spec.name), labels: labels.clone(), value: *count });
        }
    } else {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, _, value, _) in rows {
            samples.push(Sample { name: spec.name.clone(), labels, value });
        }
    }
    Ok(Family { spec: spec.clone(), samples })
}

/// Renders families in the Prometheus classic text format.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| f.spec.exported) {
        let help = f.spec.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {}", f.spec.name, help);
        let _ = writeln!(out, "# TYPE {} {}", f.spec.name, f.spec.kind.as_str());
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{v}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(s.value));
        }
    }
    out
}

fn format_value(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Registers a collector in `r` and returns it.
pub fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone())).expect("unique metric name");
    m
}

/// The service metrics of docs/metrics.md §6, updated live by ingestion and the
/// refresh loop; rendered at scrape time.
pub struct ServiceMetrics {
    pub registry: Registry,
    pub events_ingested: IntCounter,
    pub events_rejected: IntCounterVec,
    pub events_duplicate: IntCounter,
    pub last_event_timestamp: Gauge,
    pub last_ingest_timestamp: Gauge,
    pub refresh_duration: Histogram,
    pub refreshes: IntCounter,
    pub query_duration: GaugeVec,
    pub query_errors: IntCounterVec,
    pub store_rows: IntGauge,
    pub store_bytes: IntGauge,
    pub store_deals: IntGauge,
    pub ready: IntGauge,
}

impl ServiceMetrics {
    pub fn new() -> ServiceMetrics {
        let r = Registry::new();
        let counter = |n: &str, h: &str| register(&r, IntCounter::new(n, h).expect("valid"));
        let int_gauge = |n: &str, h: &str| register(&r, IntGauge::new(n, h).expect("valid"));
        let gauge = |n: &str, h: &str| register(&r, Gauge::new(n, h).expect("valid"));
        let m = ServiceMetrics {
            events_ingested: counter("funnelwatch_events_ingested_total", "Events accepted into the store."),
            events_rejected: register(
                &r,
                IntCounterVec::new(
                    Opts::new("funnelwatch_events_rejected_total", "Messages rejected, by reason."),
                    &["reason"],
                )
                .expect("valid"),
            ),
            events_duplicate: counter(
                "funnelwatch_events_duplicates_total",
                "Events ignored because their event_id was already held.",
            ),
            last_event_timestamp: gauge(
                "funnelwatch_last_event_timestamp_seconds",
                "Largest occurred_at of the events held.",
            ),
            last_ingest_timestamp: gauge(
                "funnelwatch_last_ingest_timestamp_seconds",
                "Wall-clock time at which an event was last accepted.",
            ),
            refresh_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("funnelwatch_refresh_duration_seconds", "Duration of one full refresh.")
                        .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                )
                .expect("valid"),
            ),
            refreshes: counter("funnelwatch_refreshes_total", "Refreshes completed."),
            query_duration: register(
                &r,
                GaugeVec::new(
                    Opts::new("funnelwatch_query_duration_seconds", "Duration of each query in the last refresh."),
                    &["query"],
                )
                .expect("valid"),
            ),
            query_errors: register(
                &r,
                IntCounterVec::new(Opts::new("funnelwatch_query_errors_total", "Failed query runs."), &["query"])
                    .expect("valid"),
            ),
            store_rows: int_gauge("funnelwatch_store_rows", "Events held in the store."),
            store_bytes: int_gauge("funnelwatch_store_bytes", "Approximate memory held by the store."),
            store_deals: int_gauge("funnelwatch_store_deals", "Distinct deals held in the store."),
            ready: int_gauge("funnelwatch_ready", "1 once the first refresh over caught-up sources is published."),
            registry: r,
        };
        for reason in Reason::ALL {
            m.events_rejected.with_label_values(&[reason.as_str()]);
        }
        let build = register(
            &m.registry,
            IntGaugeVec::new(Opts::new("funnelwatch_build_info", "Build information; always 1."), &["version"])
                .expect("valid"),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// The service metrics in the text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        ServiceMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn spec(kind: Kind, labels: &[&str]) -> MetricSpec {
        MetricSpec {
            name: "m".into(),
            help: "h".into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            value: "value".into(),
            exported: true,
        }
    }

    #[test]
    fn gauges_skip_nan_and_null_and_escape_labels() {
        let b = RecordBatch::try_from_iter(vec![
            ("k", Arc::new(StringArray::from(vec![Some("a\"b"), Some("c"), Some("d"), None])) as _),
            ("value", Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN), None, Some(2.0)])) as _),
        ])
        .unwrap();
        let f = family(&spec(Kind::Gauge, &["k"]), &[b]).unwrap();
        assert_eq!(render(&[f]), "# HELP m h\n# TYPE m gauge\nm 2\nm{k=\"a\\\"b\"} 0.5\n");
    }

    #[test]
    fn histograms_are_ordered_with_sum_and_count() {
        let b = RecordBatch::try_from_iter(vec![
            ("k", Arc::new(StringArray::from(vec!["x", "x", "x"])) as _),
            ("le", Arc::new(StringArray::from(vec!["+Inf", "86400", "3600"])) as _),
            ("value", Arc::new(Int64Array::from(vec![3, 2, 1])) as _),
            ("sum", Arc::new(Float64Array::from(vec![10.5, 10.5, 10.5])) as _),
        ])
        .unwrap();
        let f = family(&spec(Kind::Histogram, &["k"]), &[b]).unwrap();
        let text = render(&[f]);
        assert_eq!(
            text,
            "# HELP m h\n# TYPE m histogram\nm_bucket{k=\"x\",le=\"3600\"} 1\nm_bucket{k=\"x\",le=\"86400\"} 2\n\
             m_bucket{k=\"x\",le=\"+Inf\"} 3\nm_sum{k=\"x\"} 10.5\nm_count{k=\"x\"} 3\n"
        );
    }

    #[test]
    fn service_metrics_render() {
        let m = ServiceMetrics::new();
        m.events_ingested.inc();
        let text = m.render();
        assert!(text.contains("funnelwatch_events_ingested_total 1"));
        assert!(text.contains("funnelwatch_events_rejected_total{reason=\"too_old\"} 0"));
        assert!(text.contains("funnelwatch_build_info{version="));
    }
}
