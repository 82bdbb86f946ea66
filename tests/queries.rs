//! Fixture tests for every built-in query (docs/metrics.md §5), through the real
//! path: JSON lines → `Ingest::push` → store → `App::refresh` → snapshot.
//!
//! Every expected number is a literal derived by hand from docs/metrics.md; the
//! derivation is written next to it. Nothing here re-implements the metrics.
//!
//! Notation in the comments: times are "day.hours" after `BASE`
//! (2026-01-01T00:00:00Z), e.g. `9d5h`; `R(x)` is when the deal first reached
//! stage x, `C` = R(first stage); window `W` is `(T − W, T]`.

use std::path::PathBuf;
use std::sync::Arc;

use funnelwatch::app::App;
use funnelwatch::config::Config;
use funnelwatch::engine::{Engine, Snapshot, load_queries};
use funnelwatch::event::Reason;
use funnelwatch::source::generator::Generator;
use funnelwatch::source::{Pushed, now_ms};
use funnelwatch::store::PartitionKey;
use serde_json::{Value, json};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
/// Day 0 of the fixtures: 2026-01-01T00:00:00Z, in the past (never `future_timestamp`).
const BASE: i64 = 1_767_225_600_000;

/// `BASE + days + hours`.
fn at(days: i64, hours: i64) -> i64 {
    BASE + days * D + hours * H
}

/// One event as a JSON line; `fields` (an object) adds or overrides fields.
fn line(id: &str, deal: &str, kind: &str, t: i64, fields: Value) -> String {
    let mut obj = json!({ "event_id": id, "deal_id": deal, "type": kind, "occurred_at": t });
    if let Value::Object(extra) = fields {
        obj.as_object_mut().expect("object").extend(extra);
    }
    obj.to_string()
}

/// An event of pipeline `p`.
fn pl(id: &str, deal: &str, kind: &str, t: i64, fields: Value) -> String {
    let mut fields = fields;
    if fields.is_null() {
        fields = json!({});
    }
    fields.as_object_mut().expect("object").insert("pipeline".into(), json!("p"));
    line(id, deal, kind, t, fields)
}

/// Pipeline `p`: a (sla 1d) → b (sla 2d) → c (won) → d (post-sale), USD.
const CONFIG_P: &str = r#"
clock = "event"
windows = ["1d", "7d", "30d"]
retention = "30d"

[[pipelines]]
id = "p"
currency = "USD"
stages = [
  { id = "a", label = "A", sla = "1d" },
  { id = "b", label = "B", sla = "2d" },
  { id = "c", label = "C", won = true },
  { id = "d", label = "D" },
]
"#;

/// Pushes each `(partition, lines)` in turn into one fresh app, refreshes once
/// and returns the published snapshot and what every push did.
async fn run(config: &Config, pushes: &[(i32, Vec<String>)]) -> (Arc<Snapshot>, Vec<Pushed>) {
    let app = App::new(config.clone());
    let ingest = app.ingest();
    let pushed = pushes
        .iter()
        .map(|(part, lines)| ingest.push(&PartitionKey::new("t", *part), lines.iter().map(|l| l.as_bytes())))
        .collect();
    let engine = Engine::new(config).expect("the queries load");
    ingest.caught_up();
    app.refresh(&engine).await;
    let snap = app.state().snapshot();
    assert_eq!(snap.version, 1, "the refresh was published");
    for (file, result) in &snap.queries {
        assert!(result.is_ok(), "{file}: {result:?}");
    }
    // docs/metrics.md §5: a ratio or quantile over an empty population has no series, never NaN.
    assert!(!snap.text.to_lowercase().contains("nan"), "NaN in the output:\n{}", snap.text);
    for f in &snap.families {
        for s in &f.samples {
            assert!(s.value.is_finite(), "{} {:?} = {}", s.name, s.labels, s.value);
        }
    }
    (snap, pushed)
}

fn config(toml: &str) -> Config {
    Config::from_toml(toml).expect("valid test config")
}

/// Read access to a snapshot's samples by exact label set.
struct M(Arc<Snapshot>);

impl M {
    /// The value of the sample `name` whose labels are exactly `labels` (any order).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want = labels.to_vec();
        want.sort();
        let found: Vec<f64> = self
            .0
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .filter(|s| {
                let mut have: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                have.sort();
                have == want
            })
            .map(|s| s.value)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} appears {} times", found.len());
        found.first().copied()
    }

    /// Like `get`, but the series must exist.
    #[track_caller]
    fn v(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no series {name} {labels:?}\n{}", self.0.text))
    }

    #[track_caller]
    fn absent(&self, name: &str, labels: &[(&str, &str)]) {
        assert_eq!(self.get(name, labels), None, "{name} {labels:?} should have no series");
    }

    /// Samples named `name` that carry all of `subset`: (labels not in `subset`, value), sorted.
    fn series(&self, name: &str, subset: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
        let mut out: Vec<_> = self
            .0
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .filter(|s| subset.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| {
                let rest: Vec<(String, String)> =
                    s.labels.iter().filter(|(k, _)| !subset.iter().any(|(sk, _)| sk == k)).cloned().collect();
                (rest, s.value)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Exact for counts and sums of whole seconds; 1e-12 relative slack for ratios like 3/7.
#[track_caller]
fn eq(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "got {actual}, expected {expected} (hand-computed)"
    );
}

fn labels_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// ---------------------------------------------------------------------------
// Scenario A: pipeline p, T = 10d. Windows: 1d = (9d, 10d], 7d = (3d, 10d],
// 30d = (-20d, 10d]; retention 30d, so events at or before -20d are gone.
// ---------------------------------------------------------------------------

/// T of scenario A: the largest accepted occurred_at (d6 and dx at 10d).
const T_A: i64 = BASE + 10 * D;

/// Per deal (sorted by occurred_at, then event_id bytes):
/// - d7: created a @-20d = T − 30d; arrives first (no T yet: accepted), then evicted at the
///   refresh (a refresh uses (T − 30d, T]); else it would be open at a and stuck.
/// - d1: created a @0d, won @9d (skips b). R: a 0d, b 9d, c 9d. Won.
/// - d2: created a @8d (200), b @8d1h, back to a @8d2h, updated 250 @9d, call @9d5h.
///   R: a 8d, b 8d1h. Open at a since 8d2h (the back move never un-reaches b).
/// - d3: created b @5d (100), lost @6d "price", reopened b @7d, won @9d12h (the won event
///   arrives before the reopen). R: a 5d (skipped: passed when b was entered), b 5d, c 9d12h. Won.
/// - d4: created a @9d3h (EUR, 50), b @9d4h, lost @9d5h with reason null. Lost, "unspecified".
/// - d5: created a @1d (EUR), b @2d (amount 10), email @2d, call @9d+19.2h (amount 30).
///   R: a 1d, b 2d. Open at b since 2d, EUR, amount 30 (last event carrying it).
/// - d6: "z-created" a @10d and "a-won" @10d: same ms, "a-won" < "z-created" byte-wise, so
///   won first, then created at a. R: a, b, c all 10d. Open at a since 10d.
/// - d8: created a @-15d, b @-14d, lost @-13d "timing". Lost.
/// - dx: updated (999) @9d, meeting @10d. No stage: never open, never in the funnel.
///
/// Partition 1 then brings two duplicates of "d1-c" (an exact resend, and a
/// different event reusing the id: first wins, so deal d9 never exists) and
/// "old" @-20d, which is at T − 30d: too_old.
fn scenario_a() -> Vec<(i32, Vec<String>)> {
    let e = json!({});
    let part0 = vec![
        pl("d7-c", "d7", "deal_created", at(-20, 0), json!({"stage": "a"})),
        pl("d1-c", "d1", "deal_created", at(0, 0), json!({"stage": "a"})),
        pl("d1-w", "d1", "deal_won", at(9, 0), e.clone()),
        pl("d2-c", "d2", "deal_created", at(8, 0), json!({"stage": "a", "amount": 200})),
        pl("d2-b", "d2", "stage_changed", at(8, 1), json!({"stage": "b"})),
        pl("d2-a", "d2", "stage_changed", at(8, 2), json!({"stage": "a"})),
        pl("d2-u", "d2", "deal_updated", at(9, 0), json!({"amount": 250})),
        pl("d2-call", "d2", "activity", at(9, 5), json!({"activity": "call"})),
        pl("d3-c", "d3", "deal_created", at(5, 0), json!({"stage": "b", "amount": 100})),
        pl("d3-l", "d3", "deal_lost", at(6, 0), json!({"lost_reason": "price"})),
        pl("d3-w", "d3", "deal_won", at(9, 12), json!({"stage": "c"})),
        pl("d3-r", "d3", "deal_reopened", at(7, 0), json!({"stage": "b"})),
        pl("d4-c", "d4", "deal_created", at(9, 3), json!({"stage": "a", "amount": 50, "currency": "EUR"})),
        pl("d4-b", "d4", "stage_changed", at(9, 4), json!({"stage": "b"})),
        pl("d4-l", "d4", "deal_lost", at(9, 5), json!({"lost_reason": null})),
        pl("d5-c", "d5", "deal_created", at(1, 0), json!({"stage": "a", "currency": "EUR"})),
        pl("d5-b", "d5", "stage_changed", at(2, 0), json!({"stage": "b", "amount": 10})),
        pl("d5-email", "d5", "activity", at(2, 0), json!({"activity": "email"})),
        pl("d5-call", "d5", "activity", at(9, 0) + 69_120_000, json!({"activity": "call", "amount": 30})),
        pl("z-created", "d6", "deal_created", T_A, json!({"stage": "a"})),
        pl("a-won", "d6", "deal_won", T_A, e.clone()),
        pl("d8-c", "d8", "deal_created", at(-15, 0), json!({"stage": "a"})),
        pl("d8-b", "d8", "stage_changed", at(-14, 0), json!({"stage": "b"})),
        pl("d8-l", "d8", "deal_lost", at(-13, 0), json!({"lost_reason": "timing"})),
        pl("dx-u", "dx", "deal_updated", at(9, 0), json!({"amount": 999})),
        pl("dx-m", "dx", "activity", T_A, json!({"activity": "meeting"})),
    ];
    let part1 = vec![
        pl("d1-c", "d1", "deal_created", at(0, 0), json!({"stage": "a"})),
        pl("d1-c", "d9", "deal_created", at(9, 0), json!({"stage": "b"})),
        pl("old", "d10", "deal_created", at(-20, 0), json!({"stage": "a"})),
    ];
    vec![(0, part0), (1, part1)]
}

async fn run_a() -> (M, Vec<Pushed>) {
    let (snap, pushed) = run(&config(CONFIG_P), &scenario_a()).await;
    (M(snap), pushed)
}

#[tokio::test]
async fn a_ingest_summary_and_evaluation_time() {
    let (m, pushed) = run_a().await;
    // 26 distinct events on partition 0, all accepted (d7 too: there was no T yet).
    assert_eq!((pushed[0].accepted, pushed[0].duplicates, pushed[0].rejected.len()), (26, 0, 0));
    // Partition 1: the two reuses of "d1-c" are duplicates (dedup spans partitions);
    // "old" @-20d ≤ T − 30d = -20d: too_old (the bound is inclusive).
    assert_eq!((pushed[1].accepted, pushed[1].duplicates), (0, 2));
    assert_eq!(pushed[1].rejected.len(), 1);
    assert_eq!(pushed[1].rejected[0].0, 2);
    assert_eq!(pushed[1].rejected[0].1.reason, Reason::TooOld);
    // T = the largest accepted occurred_at = 10d = 2026-01-11T00:00:00Z.
    assert_eq!(m.0.t_ms, T_A);
    assert_eq!(m.v("crm_funnel_evaluation_timestamp_seconds", &[]), 1_768_089_600.0);
}

#[tokio::test]
async fn a_stage_entries_and_period_conversion() {
    let (m, _) = run_a().await;
    // R per deal: d1 [a 0d, b 9d, c 9d], d2 [8d, 8d1h], d3 [5d, 5d, 9d12h], d4 [9d3h, 9d4h],
    // d5 [1d, 2d], d6 [10d, 10d, 10d], d8 [-15d, -14d]; nobody reached d.
    // 1d (9d, 10d]: a: d4, d6; b: d4, d6 (d1's 9d is not > 9d); c: d3, d6.
    // 7d (3d, 10d]: a: d2, d3, d4, d6; b: d1, d2, d3, d4, d6; c: d1, d3, d6.
    // 30d (-20d, 10d]: a, b: all 7 deals (d7 evicted, d9 never existed); c: d1, d3, d6.
    for (w, counts) in [("1d", [2.0, 2.0, 2.0, 0.0]), ("7d", [4.0, 5.0, 3.0, 0.0]), ("30d", [7.0, 7.0, 3.0, 0.0])] {
        for (s, c) in ["a", "b", "c", "d"].into_iter().zip(counts) {
            eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", s), ("window", w)]), c);
        }
    }
    // Zeros included: 4 stages × 3 windows.
    assert_eq!(m.series("crm_funnel_stage_entries", &[]).len(), 12);

    let r = |from, to, w| {
        m.v(
            "crm_funnel_period_conversion_ratio",
            &[("pipeline", "p"), ("from_stage", from), ("to_stage", to), ("window", w)],
        )
    };
    eq(r("a", "b", "1d"), 1.0); // 2/2
    eq(r("b", "c", "1d"), 1.0); // 2/2
    eq(r("c", "d", "1d"), 0.0); // 0/2: the denominator is not 0, so the series exists
    eq(r("a", "b", "7d"), 1.25); // 5/4: may exceed 1
    eq(r("b", "c", "7d"), 0.6); // 3/5
    eq(r("a", "b", "30d"), 1.0); // 7/7
    eq(r("b", "c", "30d"), 3.0 / 7.0); // 3/7
    // 3 transitions × 3 windows, every denominator > 0.
    assert_eq!(m.series("crm_funnel_period_conversion_ratio", &[]).len(), 9);
}

#[tokio::test]
async fn a_cohort_deals_and_conversion() {
    let (m, _) = run_a().await;
    // C: d1 0d, d2 8d, d3 5d, d4 9d3h, d5 1d, d6 10d, d8 -15d.
    // 1d cohort: d4, d6 → a 2, b 2, c 1 (d6), d 0.
    // 7d cohort: d2, d3, d4, d6 → a 4, b 4, c 2 (d3, d6), d 0.
    // 30d cohort: all 7 → a 7, b 7, c 3, d 0.
    for (w, counts) in [("1d", [2.0, 2.0, 1.0, 0.0]), ("7d", [4.0, 4.0, 2.0, 0.0]), ("30d", [7.0, 7.0, 3.0, 0.0])] {
        for (s, c) in ["a", "b", "c", "d"].into_iter().zip(counts) {
            eq(m.v("crm_funnel_cohort_deals", &[("pipeline", "p"), ("funnel_stage", s), ("window", w)]), c);
        }
    }
    assert_eq!(m.series("crm_funnel_cohort_deals", &[]).len(), 12);
    let r = |from, to, w| {
        m.v(
            "crm_funnel_cohort_conversion_ratio",
            &[("pipeline", "p"), ("from_stage", from), ("to_stage", to), ("window", w)],
        )
    };
    eq(r("a", "b", "1d"), 1.0); // 2/2
    eq(r("b", "c", "1d"), 0.5); // 1/2
    eq(r("c", "d", "1d"), 0.0); // 0/1
    eq(r("b", "c", "7d"), 0.5); // 2/4
    eq(r("c", "d", "7d"), 0.0); // 0/2
    eq(r("b", "c", "30d"), 3.0 / 7.0); // 3/7
    assert_eq!(m.series("crm_funnel_cohort_conversion_ratio", &[]).len(), 9);
}

#[tokio::test]
async fn a_transition_duration_histogram_and_quantiles() {
    let (m, _) = run_a().await;
    let h = |suffix: &str, from, to, w, le: Option<&str>| {
        let mut l = vec![("pipeline", "p"), ("from_stage", from), ("to_stage", to), ("window", w)];
        if let Some(le) = le {
            l.push(("le", le));
        }
        m.v(&format!("crm_funnel_transition_duration_seconds{suffix}"), &l)
    };
    let q = |from, to, w, q| {
        m.get(
            "crm_funnel_transition_duration_quantile_seconds",
            &[("pipeline", "p"), ("from_stage", from), ("to_stage", to), ("window", w), ("quantile", q)],
        )
    };
    // a → b, R(b) − R(a) in seconds: d1 9d = 777600, d2 1h = 3600, d3 0, d4 3600,
    // d5 1d = 86400, d6 0, d8 86400; counted in W when R(b) ∈ W.
    // 1d: d4, d6 → [0, 3600].
    eq(h("_count", "a", "b", "1d", None), 2.0);
    eq(h("_sum", "a", "b", "1d", None), 3600.0);
    eq(h("_bucket", "a", "b", "1d", Some("3600")), 2.0); // le is inclusive
    eq(q("a", "b", "1d", "0.5").unwrap(), 0.0); // rank ⌈0.5·2⌉ = 1
    eq(q("a", "b", "1d", "0.9").unwrap(), 3600.0); // rank ⌈1.8⌉ = 2
    // 7d: d1, d2, d3, d4, d6 → sorted [0, 0, 3600, 3600, 777600], sum 784800.
    eq(h("_count", "a", "b", "7d", None), 5.0);
    eq(h("_sum", "a", "b", "7d", None), 784800.0);
    eq(h("_bucket", "a", "b", "7d", Some("14400")), 4.0);
    eq(h("_bucket", "a", "b", "7d", Some("604800")), 4.0);
    eq(h("_bucket", "a", "b", "7d", Some("1209600")), 5.0);
    eq(h("_bucket", "a", "b", "7d", Some("+Inf")), 5.0);
    eq(q("a", "b", "7d", "0.5").unwrap(), 3600.0); // rank ⌈2.5⌉ = 3
    eq(q("a", "b", "7d", "0.9").unwrap(), 777600.0); // rank ⌈4.5⌉ = 5
    // 30d: all 7 → [0, 0, 3600, 3600, 86400, 86400, 777600], sum 957600.
    eq(h("_sum", "a", "b", "30d", None), 957600.0);
    eq(h("_bucket", "a", "b", "30d", Some("43200")), 4.0);
    eq(h("_bucket", "a", "b", "30d", Some("86400")), 6.0);
    eq(q("a", "b", "30d", "0.5").unwrap(), 3600.0); // rank ⌈3.5⌉ = 4
    eq(q("a", "b", "30d", "0.9").unwrap(), 777600.0); // rank ⌈6.3⌉ = 7

    // b → c, R(c) − R(b): d1 0 (both 9d), d3 9d12h − 5d = 388800, d6 0.
    // 1d: d3, d6 → [0, 388800]; 7d: d1, d3, d6 → [0, 0, 388800].
    eq(h("_count", "b", "c", "1d", None), 2.0);
    eq(h("_sum", "b", "c", "1d", None), 388800.0);
    eq(h("_count", "b", "c", "7d", None), 3.0);
    eq(h("_bucket", "b", "c", "7d", Some("259200")), 2.0);
    eq(h("_bucket", "b", "c", "7d", Some("604800")), 3.0);
    eq(q("b", "c", "7d", "0.5").unwrap(), 0.0); // rank 2 of 3
    eq(q("b", "c", "7d", "0.9").unwrap(), 388800.0); // rank ⌈2.7⌉ = 3

    // c → d (post-sale): nobody reached d. The histogram exists with zeros, the quantiles do not.
    eq(h("_count", "c", "d", "7d", None), 0.0);
    eq(h("_sum", "c", "d", "7d", None), 0.0);
    eq(h("_bucket", "c", "d", "7d", Some("+Inf")), 0.0);
    assert_eq!(q("c", "d", "7d", "0.5"), None);
    assert_eq!(q("c", "d", "7d", "0.9"), None);
    // No transition out of the last stage.
    assert!(m.series("crm_funnel_transition_duration_seconds_count", &[("from_stage", "d")]).is_empty());
    // Every transition × window exists: 3 × 3 series of 13 buckets, _sum, _count.
    assert_eq!(m.series("crm_funnel_transition_duration_seconds_bucket", &[]).len(), 9 * 13);
    assert_eq!(m.series("crm_funnel_transition_duration_seconds_count", &[]).len(), 9);
    // The 13 buckets of one series, in order, cumulative: 7d a→b.
    let mut by_le: Vec<(String, f64)> = m
        .series("crm_funnel_transition_duration_seconds_bucket", &[("from_stage", "a"), ("window", "7d")])
        .into_iter()
        .map(|(l, v)| (l.into_iter().find(|(k, _)| k == "le").expect("le").1, v))
        .collect();
    let le_num = |s: &str| if s == "+Inf" { f64::INFINITY } else { s.parse::<f64>().expect("le") };
    by_le.sort_by(|a, b| le_num(&a.0).total_cmp(&le_num(&b.0)));
    let values: Vec<f64> = by_le.iter().map(|(_, v)| *v).collect();
    // [0, 0, 3600, 3600, 777600] against 3600, 14400, 43200, 86400, 172800, 259200, 604800,
    // 1209600, 2592000, 5184000, 7776000, 15552000, +Inf.
    assert_eq!(values, [4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]);
}

#[tokio::test]
async fn a_time_to_close() {
    let (m, _) = run_a().await;
    let h = |suffix: &str, w, le: Option<&str>| {
        let mut l = vec![("pipeline", "p"), ("window", w)];
        if let Some(le) = le {
            l.push(("le", le));
        }
        m.v(&format!("crm_funnel_time_to_close_seconds{suffix}"), &l)
    };
    let q =
        |w, q| m.v("crm_funnel_time_to_close_quantile_seconds", &[("pipeline", "p"), ("window", w), ("quantile", q)]);
    // R(c) − C: d1 9d − 0d = 777600, d3 9d12h − 5d = 388800, d6 0.
    // 1d: d3, d6 → [0, 388800].
    eq(h("_count", "1d", None), 2.0);
    eq(h("_sum", "1d", None), 388800.0);
    eq(h("_bucket", "1d", Some("3600")), 1.0);
    eq(h("_bucket", "1d", Some("259200")), 1.0);
    eq(h("_bucket", "1d", Some("604800")), 2.0);
    eq(q("1d", "0.5"), 0.0); // rank 1
    eq(q("1d", "0.9"), 388800.0); // rank 2
    // 7d and 30d: d1, d3, d6 → [0, 388800, 777600], sum 1166400.
    eq(h("_count", "7d", None), 3.0);
    eq(h("_sum", "7d", None), 1166400.0);
    eq(h("_bucket", "7d", Some("604800")), 2.0);
    eq(h("_bucket", "7d", Some("1209600")), 3.0);
    eq(h("_bucket", "7d", Some("+Inf")), 3.0);
    eq(q("7d", "0.5"), 388800.0); // rank ⌈1.5⌉ = 2
    eq(q("7d", "0.9"), 777600.0); // rank ⌈2.7⌉ = 3
    eq(h("_sum", "30d", None), 1166400.0);
    // One histogram per window.
    assert_eq!(m.series("crm_funnel_time_to_close_seconds_bucket", &[]).len(), 3 * 13);
}

#[tokio::test]
async fn a_won_lost_win_rate_and_lost_reasons() {
    let (m, _) = run_a().await;
    // won = R(c) ∈ W: 1d d3 (9d12h), d6 (10d); 7d, 30d also d1 (9d).
    // lost = final state lost and lost_at ∈ W: d4 (9d5h), d8 (-13d). d3 was lost but
    // reopened and won: not lost. d7 (evicted) and d9 (a duplicate) do not exist.
    for (w, won, lost, rate) in [("1d", 2.0, 1.0, 2.0 / 3.0), ("7d", 3.0, 1.0, 0.75), ("30d", 3.0, 2.0, 0.6)] {
        let l = [("pipeline", "p"), ("window", w)];
        eq(m.v("crm_funnel_won_deals", &l), won);
        eq(m.v("crm_funnel_lost_deals", &l), lost);
        eq(m.v("crm_funnel_win_rate_ratio", &l), rate); // won / (won + lost)
    }
    // Lost reasons: d4 has lost_reason null → "unspecified"; d8 "timing" only in 30d;
    // d3's "price" is not counted (its final state is won).
    let reasons = |w| m.series("crm_funnel_lost_reason_deals", &[("pipeline", "p"), ("window", w)]);
    assert_eq!(reasons("1d"), [(labels_of(&[("reason", "unspecified")]), 1.0)]);
    assert_eq!(reasons("7d"), [(labels_of(&[("reason", "unspecified")]), 1.0)]);
    assert_eq!(
        reasons("30d"),
        [(labels_of(&[("reason", "timing")]), 1.0), (labels_of(&[("reason", "unspecified")]), 1.0)]
    );
}

#[tokio::test]
async fn a_activities() {
    let (m, _) = run_a().await;
    // Activity events: d2 call @9d5h, d5 email @2d, d5 call @9d19.2h, dx meeting @10d.
    let kinds = |w| m.series("crm_funnel_activities", &[("pipeline", "p"), ("window", w)]);
    let call2_meeting1 = vec![(labels_of(&[("activity", "call")]), 2.0), (labels_of(&[("activity", "meeting")]), 1.0)];
    assert_eq!(kinds("1d"), call2_meeting1);
    assert_eq!(kinds("7d"), call2_meeting1); // the email at 2d is not in (3d, 10d]
    assert_eq!(
        kinds("30d"),
        [
            (labels_of(&[("activity", "call")]), 2.0),
            (labels_of(&[("activity", "email")]), 1.0),
            (labels_of(&[("activity", "meeting")]), 1.0)
        ]
    );
}

#[tokio::test]
async fn a_open_deals_open_amount_and_stuck() {
    let (m, _) = run_a().await;
    // Open at T: d2 at a (moved back), d6 at a (tie-break: created after won), d5 at b.
    // d1, d3 won; d4, d8 lost; dx has no stage; d7 was evicted (else it would be open at a).
    let open: Vec<_> = m.series("crm_funnel_open_deals", &[("pipeline", "p")]);
    assert_eq!(
        open,
        [
            (labels_of(&[("funnel_stage", "a")]), 2.0),
            (labels_of(&[("funnel_stage", "b")]), 1.0),
            (labels_of(&[("funnel_stage", "c")]), 0.0),
            (labels_of(&[("funnel_stage", "d")]), 0.0)
        ]
    );
    // Stuck: a (sla 1d): d2 in a since 8d2h, age 1d22h > 1d → stuck; d6 age 0. → 1.
    // b (sla 2d): d5 in b since 2d, age 8d → 1. c and d have no sla: no series.
    eq(m.v("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "a")]), 1.0);
    eq(m.v("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 1.0);
    m.absent("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "c")]);
    assert_eq!(m.series("crm_funnel_stuck_deals", &[]).len(), 2);
    // Amounts: a/USD: d2 250 (the update) + d6 without amount (adds 0) = 250.
    // b/EUR: d5 30 (from its last amount-carrying event, an activity), EUR from its creation.
    assert_eq!(
        m.series("crm_funnel_open_amount", &[("pipeline", "p")]),
        [
            (labels_of(&[("funnel_stage", "a"), ("currency", "USD")]), 250.0),
            (labels_of(&[("funnel_stage", "b"), ("currency", "EUR")]), 30.0)
        ]
    );
}

// ---------------------------------------------------------------------------
// The default (demo) pipeline: skipped stages, a backward move, a post-sale
// creation, a deal older than a window, a deal with only activities, empty windows.
// ---------------------------------------------------------------------------

const CONFIG_DEFAULT: &str = r#"
clock = "event"
windows = ["1d", "7d", "30d"]
"#;

// ---------------------------------------------------------------------------
// Scenario S: spend and feedback (docs/metrics.md §5.2, §5.3), pipeline p,
// T = 10d. Windows: 1d = (9d, 10d], 7d = (3d, 10d], 30d = (-20d, 10d].
// ---------------------------------------------------------------------------

/// A spend event of pipeline `p` (no deal_id: a spend event has none).
fn spend(id: &str, t: i64, amount: f64, fields: Value) -> String {
    let mut v: Value = serde_json::from_str(&pl(id, "", "spend", t, fields)).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("deal_id");
    obj.insert("amount".into(), json!(amount));
    v.to_string()
}

/// A feedback event of deal `deal` in pipeline `p`.
fn answer(id: &str, deal: &str, t: i64, survey: &str, score: Value) -> String {
    pl(id, deal, "feedback", t, json!({ "survey": survey, "score": score }))
}

/// Deals: d1 created a @8d, won @9d (C 8d, R(c) 9d: not in 1d, whose
/// interval is open at 9d); d2 created a @2d, lost @9d12h; d3 created a
/// @9d6h; d9 has only a feedback event (no stage: never in the funnel).
/// Spend (USD is the pipeline's currency): s1 100 source ads @9d1h; s2 50.5
/// EUR @9d2h; s3 200 without source @5d; s5 40 @8d carrying a deal_id
/// (not read); s6 10 @10d (= T); s7 30 @-25d arrives first (no T yet:
/// accepted), then is evicted (a refresh uses (T − 30d, T]).
/// Feedback: csat d1 4 @9d2h, d1 3 @9d3h, d2 1 @4d; nps d1 9 @9d4h, d2 6
/// @5d, d2 7 @9d5h, d2 8 @9d6h, d9 10 @9d7h.
/// Partition 1 brings: s1 again (duplicate), a spend reusing the deal
/// event id "d1-c" (duplicate: dedup spans types), s8 @-25d (too_old now),
/// a csat score 4.0 and a survey "ces" (invalid_field), and a spend
/// without amount (missing_field).
fn scenario_s() -> Vec<(i32, Vec<String>)> {
    let part0 = vec![
        spend("s7", at(-25, 0), 30.0, json!({})),
        pl("d1-c", "d1", "deal_created", at(8, 0), json!({"stage": "a"})),
        pl("d1-w", "d1", "deal_won", at(9, 0), json!({})),
        pl("d2-c", "d2", "deal_created", at(2, 0), json!({"stage": "a"})),
        pl("d2-l", "d2", "deal_lost", at(9, 12), json!({})),
        pl("d3-c", "d3", "deal_created", at(9, 6), json!({"stage": "a"})),
        spend("s1", at(9, 1), 100.0, json!({"source": "ads"})),
        spend("s2", at(9, 2), 50.5, json!({"currency": "EUR"})),
        spend("s3", at(5, 0), 200.0, json!({})),
        spend("s5", at(8, 0), 40.0, json!({"deal_id": 5})),
        spend("s6", at(10, 0), 10.0, json!({})),
        answer("f1", "d1", at(9, 2), "csat", json!(4)),
        answer("f2", "d1", at(9, 3), "csat", json!(3)),
        answer("f3", "d2", at(4, 0), "csat", json!(1)),
        answer("f4", "d1", at(9, 4), "nps", json!(9)),
        answer("f5", "d2", at(5, 0), "nps", json!(6)),
        answer("f6", "d2", at(9, 5), "nps", json!(7)),
        answer("f7", "d2", at(9, 6), "nps", json!(8)),
        answer("f8", "d9", at(9, 7), "nps", json!(10)),
    ];
    let part1 = vec![
        spend("s1", at(9, 1), 100.0, json!({"source": "ads"})),
        spend("d1-c", at(9, 1), 1.0, json!({})),
        spend("s8", at(-25, 0), 30.0, json!({})),
        answer("f9", "d1", at(9, 8), "csat", json!(4.0)),
        answer("f10", "d1", at(9, 8), "ces", json!(4)),
        pl("s9", "", "spend", at(9, 8), json!({})).replace(r#""deal_id":"","#, ""),
    ];
    vec![(0, part0), (1, part1)]
}

#[tokio::test]
async fn s_spend_and_feedback_are_ingested_deduplicated_and_rejected() {
    let (snap, pushed) = run(&config(CONFIG_P), &scenario_s()).await;
    assert_eq!((pushed[0].accepted, pushed[0].duplicates, pushed[0].rejected.len()), (19, 0, 0));
    assert_eq!((pushed[1].accepted, pushed[1].duplicates), (0, 2));
    let reasons: Vec<(usize, Reason)> = pushed[1].rejected.iter().map(|(i, r)| (*i, r.reason)).collect();
    assert_eq!(
        reasons,
        [(2, Reason::TooOld), (3, Reason::InvalidField), (4, Reason::InvalidField), (5, Reason::MissingField)]
    );
    assert_eq!(snap.t_ms, at(10, 0), "T is the largest accepted occurred_at, a spend event's");
}

#[tokio::test]
async fn s_acquisition_spend_cost_per_lead_and_customer_acquisition_cost() {
    let (snap, _) = run(&config(CONFIG_P), &scenario_s()).await;
    let m = M(snap);
    let l = |w: &'static str, c: &'static str| [("pipeline", "p"), ("window", w), ("currency", c)];
    // USD: 1d s1 + s6 = 110; 7d s1 + s3 + s5 + s6 = 350; 30d the same (s7 is evicted).
    // EUR: s2 50.5 in every window.
    assert_eq!(
        m.series("crm_funnel_acquisition_spend", &[("pipeline", "p")]),
        [
            (labels_of(&[("window", "1d"), ("currency", "EUR")]), 50.5),
            (labels_of(&[("window", "1d"), ("currency", "USD")]), 110.0),
            (labels_of(&[("window", "30d"), ("currency", "EUR")]), 50.5),
            (labels_of(&[("window", "30d"), ("currency", "USD")]), 350.0),
            (labels_of(&[("window", "7d"), ("currency", "EUR")]), 50.5),
            (labels_of(&[("window", "7d"), ("currency", "USD")]), 350.0),
        ]
    );
    // New deals N (C in W): 1d d3 = 1; 7d d1, d3 = 2; 30d d1, d2, d3 = 3 (d9 has no stage).
    eq(m.v("crm_funnel_cost_per_lead", &l("1d", "USD")), 110.0);
    eq(m.v("crm_funnel_cost_per_lead", &l("7d", "USD")), 175.0);
    eq(m.v("crm_funnel_cost_per_lead", &l("30d", "USD")), 350.0 / 3.0);
    eq(m.v("crm_funnel_cost_per_lead", &l("7d", "EUR")), 25.25);
    eq(m.v("crm_funnel_cost_per_lead", &l("30d", "EUR")), 50.5 / 3.0);
    // Won (R(c) in W): 1d none (d1's 9d is not in (9d, 10d]): no CAC series; 7d and 30d d1.
    m.absent("crm_funnel_customer_acquisition_cost", &l("1d", "USD"));
    m.absent("crm_funnel_customer_acquisition_cost", &l("1d", "EUR"));
    eq(m.v("crm_funnel_customer_acquisition_cost", &l("7d", "USD")), 350.0);
    eq(m.v("crm_funnel_customer_acquisition_cost", &l("30d", "EUR")), 50.5);
    assert_eq!(m.series("crm_funnel_customer_acquisition_cost", &[]).len(), 4);
}

#[tokio::test]
async fn s_feedback_histogram_csat_and_nps() {
    let (snap, _) = run(&config(CONFIG_P), &scenario_s()).await;
    let m = M(snap);
    let h = |w: &'static str, survey: &'static str| {
        let name = "crm_funnel_feedback_score_bucket";
        let buckets = m.series(name, &[("pipeline", "p"), ("window", w), ("survey", survey)]);
        let mut by_le: Vec<(String, f64)> = buckets.into_iter().map(|(rest, v)| (rest[0].1.clone(), v)).collect();
        by_le.sort_by_key(|(le, _)| le.parse::<u32>().unwrap_or(u32::MAX));
        by_le.into_iter().map(|(_, v)| v).collect::<Vec<f64>>()
    };
    // csat 1d: scores 4, 3 (le 0 … 10, +Inf, cumulative).
    assert_eq!(h("1d", "csat"), [0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
    let lw = |w: &'static str, survey: &'static str| [("pipeline", "p"), ("window", w), ("survey", survey)];
    eq(m.v("crm_funnel_feedback_score_sum", &lw("1d", "csat")), 7.0);
    eq(m.v("crm_funnel_feedback_score_count", &lw("1d", "csat")), 2.0);
    // nps 7d: 6, 7, 8, 9, 10 (d9's answer counts: every response does).
    assert_eq!(h("7d", "nps"), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0]);
    eq(m.v("crm_funnel_feedback_score_sum", &lw("7d", "nps")), 40.0);
    // Both surveys exist in every window, zeros included: 3 windows × 2 surveys × 12 buckets.
    assert_eq!(m.series("crm_funnel_feedback_score_bucket", &[]).len(), 72);
    // CSAT: satisfied (4–5) / responses. 1d: 4 yes, 3 no → 1/2; 7d and 30d add d2's 1 → 1/3.
    let w = |w: &'static str| [("pipeline", "p"), ("window", w)];
    eq(m.v("crm_funnel_csat_ratio", &w("1d")), 0.5);
    eq(m.v("crm_funnel_csat_ratio", &w("7d")), 1.0 / 3.0);
    // NPS: 100 · (promoters 9–10 − detractors 0–6) / responses.
    // 1d: 9, 7, 8, 10 → (2 − 0)/4 → 50; 7d: 6, 7, 8, 9, 10 → (2 − 1)/5 → 20.
    eq(m.v("crm_funnel_net_promoter_score", &w("1d")), 50.0);
    eq(m.v("crm_funnel_net_promoter_score", &w("7d")), 20.0);
    eq(m.v("crm_funnel_net_promoter_score", &w("30d")), 20.0);
}

#[tokio::test]
async fn no_feedback_means_no_satisfaction_ratios_but_zero_histograms() {
    let lines = vec![pl("c", "d", "deal_created", at(0, 0), json!({"stage": "a"}))];
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    assert!(m.series("crm_funnel_csat_ratio", &[]).is_empty());
    assert!(m.series("crm_funnel_net_promoter_score", &[]).is_empty());
    assert!(m.series("crm_funnel_acquisition_spend", &[]).is_empty());
    let counts = m.series("crm_funnel_feedback_score_count", &[]);
    assert_eq!(counts.len(), 6);
    assert!(counts.iter().all(|(_, v)| *v == 0.0));
}

// ---------------------------------------------------------------------------
// Scenario G: segments (docs/metrics.md §5.4), pipeline p, T = 10d, one
// window 7d = (3d, 10d]; breakdowns by source (top 2) and team (fixed).
// ---------------------------------------------------------------------------

const CONFIG_G: &str = r#"
clock = "event"
windows = ["7d"]
retention = "30d"
breakdowns = ["source", "team"]
breakdown_limit = 2

[breakdown_segments]
team = ["east", "west"]

[[pipelines]]
id = "p"
currency = "USD"
stages = [
  { id = "a", label = "A", sla = "1d" },
  { id = "b", label = "B", sla = "2d" },
  { id = "c", label = "C", won = true },
  { id = "d", label = "D" },
]
"#;

/// Deals (source and team at T):
/// - g1 created a @4d (web, east), won @6d (skips b): time to close 2d;
/// - g2 created a @5d (web, west), updated to source ads @7d (it moves to
///   ads), lost @8d;
/// - g3 created a @5d (ads, north: not a fixed team, so other);
/// - g4 created a @6d (fair, east); g5 @6d (source literally "other", no
///   team); g6 @6d (source "": no value, west); g7 @6d (zoo, east).
///
/// Sources by deals: ads 2 (g2, g3), then fair, web, zoo 1 each: the top 2
/// are ads and fair (the tie broken byte-wise); other = g1, g5, g7;
/// unspecified = g6. Teams: east g1, g4, g7; west g2, g6; other g3;
/// unspecified g5.
/// Spend (its own attributes): 100 source ads @7d; 50 without source or
/// team @8d (unspecified); 30 source web, team east @9d (web is no top-2
/// source: other). Feedback (its deal's segment): g1 csat 4 @7d and nps 9
/// @8d; g2 nps 6 @9d; g5 csat 3 @9d. T = 10d from the last event.
fn scenario_g() -> Vec<(i32, Vec<String>)> {
    let c = |id: &str, deal: &str, day: i64, source: &str, team: Option<&str>| {
        let mut f = json!({"stage": "a", "source": source});
        if let Some(t) = team {
            f["team"] = json!(t);
        }
        pl(id, deal, "deal_created", at(day, 0), f)
    };
    let lines = vec![
        c("g1-c", "g1", 4, "web", Some("east")),
        pl("g1-w", "g1", "deal_won", at(6, 0), json!({})),
        c("g2-c", "g2", 5, "web", Some("west")),
        pl("g2-u", "g2", "deal_updated", at(7, 0), json!({"source": "ads"})),
        pl("g2-l", "g2", "deal_lost", at(8, 0), json!({})),
        c("g3-c", "g3", 5, "ads", Some("north")),
        c("g4-c", "g4", 6, "fair", Some("east")),
        c("g5-c", "g5", 6, "other", None),
        c("g6-c", "g6", 6, "", Some("west")),
        c("g7-c", "g7", 6, "zoo", Some("east")),
        spend("sp1", at(7, 0), 100.0, json!({"source": "ads"})),
        spend("sp2", at(8, 0), 50.0, json!({})),
        spend("sp3", at(9, 0), 30.0, json!({"source": "web", "team": "east"})),
        answer("g1-f1", "g1", at(7, 0), "csat", json!(4)),
        answer("g1-f2", "g1", at(8, 0), "nps", json!(9)),
        answer("g2-f1", "g2", at(9, 0), "nps", json!(6)),
        answer("g5-f1", "g5", at(9, 0), "csat", json!(3)),
        pl("end", "g4", "activity", at(10, 0), json!({"activity": "call"})),
    ];
    vec![(0, lines)]
}

#[tokio::test]
async fn g_segments_rank_move_and_fall_in_other_and_unspecified() {
    let (snap, _) = run(&config(CONFIG_G), &scenario_g()).await;
    let m = M(snap);
    let seg = |dim: &'static str, seg: &'static str| {
        [("pipeline", "p"), ("window", "7d"), ("dimension", dim), ("segment", seg)]
    };
    let stage = |dim: &'static str, sg: &'static str, st: &'static str| {
        [("pipeline", "p"), ("funnel_stage", st), ("window", "7d"), ("dimension", dim), ("segment", sg)]
    };
    // The segments that exist, from the zero-filled entries at stage a.
    let segments = |dim: &'static str| -> Vec<String> {
        m.series("crm_funnel_segment_stage_entries", &[("dimension", dim), ("funnel_stage", "a")])
            .into_iter()
            .map(|(rest, _)| rest.iter().find(|(k, _)| k == "segment").unwrap().1.clone())
            .collect()
    };
    assert_eq!(segments("source"), ["ads", "fair", "other", "unspecified"]);
    assert_eq!(segments("team"), ["east", "other", "unspecified", "west"]);
    // 8 segments × 4 stages × 1 window, zeros included.
    assert_eq!(m.series("crm_funnel_segment_stage_entries", &[]).len(), 32);
    // Entries at a: every deal was created in the window.
    for (dim, sg, n) in [
        ("source", "ads", 2.0),
        ("source", "fair", 1.0),
        ("source", "other", 3.0),
        ("source", "unspecified", 1.0),
        ("team", "east", 3.0),
        ("team", "west", 2.0),
        ("team", "other", 1.0),
        ("team", "unspecified", 1.0),
    ] {
        eq(m.v("crm_funnel_segment_stage_entries", &stage(dim, sg, "a")), n);
        eq(m.v("crm_funnel_segment_cohort_deals", &stage(dim, sg, "a")), n);
    }
    // g1 (source other, team east) passed b when it reached c.
    eq(m.v("crm_funnel_segment_stage_entries", &stage("source", "other", "b")), 1.0);
    eq(m.v("crm_funnel_segment_stage_entries", &stage("team", "east", "c")), 1.0);
    eq(m.v("crm_funnel_segment_stage_entries", &stage("source", "ads", "c")), 0.0);
    // Won and lost: g1 won (other / east), g2 lost (ads, where it moved / west).
    eq(m.v("crm_funnel_segment_won_deals", &seg("source", "other")), 1.0);
    eq(m.v("crm_funnel_segment_lost_deals", &seg("source", "ads")), 1.0);
    eq(m.v("crm_funnel_segment_won_deals", &seg("source", "fair")), 0.0);
    eq(m.v("crm_funnel_segment_win_rate_ratio", &seg("source", "ads")), 0.0);
    eq(m.v("crm_funnel_segment_win_rate_ratio", &seg("team", "east")), 1.0);
    m.absent("crm_funnel_segment_win_rate_ratio", &seg("source", "fair"));
    let q = |dim: &'static str, sg: &'static str, q: &'static str| {
        [("pipeline", "p"), ("window", "7d"), ("dimension", dim), ("segment", sg), ("quantile", q)]
    };
    eq(m.v("crm_funnel_segment_time_to_close_quantile_seconds", &q("team", "east", "0.5")), 172_800.0);
    eq(m.v("crm_funnel_segment_time_to_close_quantile_seconds", &q("source", "other", "0.9")), 172_800.0);
    m.absent("crm_funnel_segment_time_to_close_quantile_seconds", &q("team", "west", "0.5"));
    // Open deals (any stage): source ads g3, fair g4, other g5 + g7, unspecified g6.
    let open = |dim: &'static str, sg: &'static str| [("pipeline", "p"), ("dimension", dim), ("segment", sg)];
    for (dim, sg, n) in [("source", "ads", 1.0), ("source", "other", 2.0), ("team", "east", 2.0), ("team", "west", 1.0)]
    {
        eq(m.v("crm_funnel_segment_open_deals", &open(dim, sg)), n);
    }
    // No amounts: every open deal adds 0 in the pipeline's currency.
    let amount = [("pipeline", "p"), ("dimension", "source"), ("segment", "fair"), ("currency", "USD")];
    eq(m.v("crm_funnel_segment_open_amount", &amount), 0.0);
    // Spend: ads 100; other 30 (web is no listed source); unspecified 50; team east 30.
    let cur = |dim: &'static str, sg: &'static str| {
        [("pipeline", "p"), ("window", "7d"), ("dimension", dim), ("segment", sg), ("currency", "USD")]
    };
    eq(m.v("crm_funnel_segment_acquisition_spend", &cur("source", "ads")), 100.0);
    eq(m.v("crm_funnel_segment_acquisition_spend", &cur("source", "other")), 30.0);
    eq(m.v("crm_funnel_segment_acquisition_spend", &cur("source", "unspecified")), 50.0);
    eq(m.v("crm_funnel_segment_acquisition_spend", &cur("team", "east")), 30.0);
    m.absent("crm_funnel_segment_acquisition_spend", &cur("source", "fair"));
    // Cost per lead = spend / new deals of the segment; CAC = spend / its won deals.
    eq(m.v("crm_funnel_segment_cost_per_lead", &cur("source", "ads")), 50.0);
    eq(m.v("crm_funnel_segment_cost_per_lead", &cur("source", "other")), 10.0);
    // sp1 carries no team either: team unspecified has 100 + 50 over g5, its one new deal.
    eq(m.v("crm_funnel_segment_acquisition_spend", &cur("team", "unspecified")), 150.0);
    eq(m.v("crm_funnel_segment_cost_per_lead", &cur("team", "unspecified")), 150.0);
    eq(m.v("crm_funnel_segment_customer_acquisition_cost", &cur("source", "other")), 30.0);
    eq(m.v("crm_funnel_segment_customer_acquisition_cost", &cur("team", "east")), 30.0);
    m.absent("crm_funnel_segment_customer_acquisition_cost", &cur("source", "ads"));
    // Feedback by band, in the deal's segment; every band of both surveys, zeros included.
    let band = |dim: &'static str, sg: &'static str, survey: &'static str, b: &'static str| {
        let mut l = seg(dim, sg).to_vec();
        l.extend([("survey", survey), ("band", b)]);
        m.v("crm_funnel_segment_feedback_responses", &l)
    };
    eq(band("source", "other", "csat", "satisfied"), 1.0);
    eq(band("source", "other", "csat", "neutral"), 1.0);
    eq(band("source", "other", "nps", "promoter"), 1.0);
    eq(band("source", "ads", "nps", "detractor"), 1.0);
    eq(band("source", "fair", "nps", "passive"), 0.0);
    assert_eq!(m.series("crm_funnel_segment_feedback_responses", &[]).len(), 8 * 6);
    eq(m.v("crm_funnel_segment_csat_ratio", &seg("source", "other")), 0.5);
    eq(m.v("crm_funnel_segment_csat_ratio", &seg("team", "unspecified")), 0.0);
    eq(m.v("crm_funnel_segment_net_promoter_score", &seg("source", "ads")), -100.0);
    eq(m.v("crm_funnel_segment_net_promoter_score", &seg("team", "east")), 100.0);
    m.absent("crm_funnel_segment_csat_ratio", &seg("source", "ads"));
}

#[tokio::test]
async fn no_breakdowns_no_segment_series_and_other_exists_only_when_used() {
    let off = CONFIG_G
        .replace(r#"breakdowns = ["source", "team"]"#, "breakdowns = []")
        .replace("[breakdown_segments]\nteam = [\"east\", \"west\"]\n", "");
    let (snap, _) = run(&config(&off), &scenario_g()).await;
    let segment_samples = snap.families.iter().filter(|f| f.spec.name.starts_with("crm_funnel_segment_"));
    assert_eq!(segment_samples.map(|f| f.samples.len()).sum::<usize>(), 0, "breakdowns = [] exports no segment series");
    // One deal with a listed team and no source: source has only unspecified; team
    // east and west (listed) exist, other and unspecified do not.
    let lines = vec![pl("c", "d", "deal_created", at(0, 0), json!({"stage": "a", "team": "east"}))];
    let (snap, _) = run(&config(CONFIG_G), &[(0, lines)]).await;
    let m = M(snap);
    let segs: Vec<(String, String)> = m
        .series("crm_funnel_segment_open_deals", &[])
        .into_iter()
        .map(|(l, _)| (l[1].1.clone(), l[2].1.clone()))
        .collect();
    let want = [("source", "unspecified"), ("team", "east"), ("team", "west")];
    assert_eq!(segs, want.map(|(d, s)| (d.to_string(), s.to_string())));
}

#[tokio::test]
async fn default_pipeline_skips_back_moves_and_post_sale() {
    let t = at(10, 0);
    // Events without "pipeline" belong to "default": lead → contact (3d) → needs (7d) →
    // proposal (10d) → negotiation (14d) → won → after_sales.
    // g1: lead @T−5d, straight to proposal @T−4d (skips contact, needs), back to contact @T−3d−1h.
    //     R: lead T−5d; contact = needs = proposal = T−4d (a later entry of contact does not move
    //     R: min over j ≥ i). Open at contact since T−3d−1h: age 3d1h > 3d → stuck.
    // g2: created directly at after_sales @T−2d (amount 1000): every stage reached at T−2d, won.
    // g5: lead @T−8d, contact @T−6d: open at contact, age 6d > 3d → stuck. Its lead entry and C
    //     lie before the 7d window.
    // g4: only an activity (demo) @T: sets T; never open, never in the funnel.
    let lines = vec![
        line("g1-1", "g1", "deal_created", t - 5 * D, json!({"stage": "lead"})),
        line("g1-2", "g1", "stage_changed", t - 4 * D, json!({"stage": "proposal"})),
        line("g1-3", "g1", "stage_changed", t - 3 * D - H, json!({"stage": "contact"})),
        line("g2-1", "g2", "deal_created", t - 2 * D, json!({"stage": "after_sales", "amount": 1000})),
        line("g5-1", "g5", "deal_created", t - 8 * D, json!({"stage": "lead"})),
        line("g5-2", "g5", "stage_changed", t - 6 * D, json!({"stage": "contact"})),
        line("g4-1", "g4", "activity", t, json!({"activity": "demo"})),
    ];
    let (snap, pushed) = run(&config(CONFIG_DEFAULT), &[(0, lines)]).await;
    assert_eq!(pushed[0].accepted, 7);
    let m = M(snap);
    let stages = ["lead", "contact", "needs", "proposal", "negotiation", "won", "after_sales"];
    let d = |name: &str, s, w| m.v(name, &[("pipeline", "default"), ("funnel_stage", s), ("window", w)]);

    // Entries. 7d (T−7d, T]: lead g1, g2 (g5's T−8d is older than the window) = 2;
    // contact g1 (T−4d), g2, g5 (T−6d) = 3; needs, proposal g1, g2 = 2; negotiation, won,
    // after_sales g2 = 1. 1d (T−1d, T]: nothing (the last stage event is at T−2d).
    // 30d: lead 3, contact 3, needs 2, proposal 2, then 1, 1, 1.
    let want = [
        ("1d", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ("7d", [2.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0]),
        ("30d", [3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0]),
    ];
    for (w, counts) in want {
        for (s, c) in stages.into_iter().zip(counts) {
            eq(d("crm_funnel_stage_entries", s, w), c);
        }
    }
    // Cohort. C: g1 T−5d, g2 T−2d, g5 T−8d. 7d: g1, g2 → 2, 2, 2, 2, then g2 only: 1, 1, 1.
    // 30d: all three → lead 3, contact 3 (g5 reached it), needs 2, proposal 2, 1, 1, 1. 1d: none.
    let want = [
        ("1d", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ("7d", [2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]),
        ("30d", [3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0]),
    ];
    for (w, counts) in want {
        for (s, c) in stages.into_iter().zip(counts) {
            eq(d("crm_funnel_cohort_deals", s, w), c);
        }
    }

    let ratio = |name: &str, from, to, w| {
        m.get(name, &[("pipeline", "default"), ("from_stage", from), ("to_stage", to), ("window", w)])
    };
    let period = "crm_funnel_period_conversion_ratio";
    let cohort = "crm_funnel_cohort_conversion_ratio";
    eq(ratio(period, "lead", "contact", "7d").unwrap(), 1.5); // 3/2: may exceed 1
    eq(ratio(period, "contact", "needs", "7d").unwrap(), 2.0 / 3.0); // 2/3
    eq(ratio(period, "needs", "proposal", "7d").unwrap(), 1.0); // 2/2
    eq(ratio(period, "proposal", "negotiation", "7d").unwrap(), 0.5); // 1/2
    eq(ratio(period, "negotiation", "won", "7d").unwrap(), 1.0); // 1/1
    eq(ratio(period, "won", "after_sales", "7d").unwrap(), 1.0); // 1/1
    eq(ratio(period, "lead", "contact", "30d").unwrap(), 1.0); // 3/3
    eq(ratio(cohort, "lead", "contact", "7d").unwrap(), 1.0); // 2/2
    eq(ratio(cohort, "proposal", "negotiation", "7d").unwrap(), 0.5); // 1/2
    eq(ratio(cohort, "contact", "needs", "30d").unwrap(), 2.0 / 3.0); // 2/3
    // 1d: every denominator is 0 → no ratio series at all for that window.
    for pair in stages.windows(2) {
        assert_eq!(ratio(period, pair[0], pair[1], "1d"), None);
        assert_eq!(ratio(cohort, pair[0], pair[1], "1d"), None);
    }
    assert!(!m.0.text.lines().any(|l| l.starts_with("crm_funnel_period_conversion_ratio") && l.contains("\"1d\"")));

    // lead → contact, R(contact) − R(lead) for R(contact) ∈ 7d: g1 1d = 86400, g2 0,
    // g5 2d = 172800 → sorted [0, 86400, 172800], sum 259200.
    let tr = |suffix: &str, from, to, w, le: Option<&str>| {
        let mut l = vec![("pipeline", "default"), ("from_stage", from), ("to_stage", to), ("window", w)];
        if let Some(le) = le {
            l.push(("le", le));
        }
        m.v(&format!("crm_funnel_transition_duration_seconds{suffix}"), &l)
    };
    let trq = |from, to, w, q| {
        m.get(
            "crm_funnel_transition_duration_quantile_seconds",
            &[("pipeline", "default"), ("from_stage", from), ("to_stage", to), ("window", w), ("quantile", q)],
        )
    };
    eq(tr("_count", "lead", "contact", "7d", None), 3.0);
    eq(tr("_sum", "lead", "contact", "7d", None), 259200.0);
    eq(tr("_bucket", "lead", "contact", "7d", Some("3600")), 1.0);
    eq(tr("_bucket", "lead", "contact", "7d", Some("43200")), 1.0);
    eq(tr("_bucket", "lead", "contact", "7d", Some("86400")), 2.0);
    eq(tr("_bucket", "lead", "contact", "7d", Some("172800")), 3.0);
    eq(trq("lead", "contact", "7d", "0.5").unwrap(), 86400.0); // rank ⌈1.5⌉ = 2
    eq(trq("lead", "contact", "7d", "0.9").unwrap(), 172800.0); // rank ⌈2.7⌉ = 3
    // Skipped stages are passed at the same moment: contact → needs, needs → proposal are 0 s.
    eq(tr("_count", "contact", "needs", "7d", None), 2.0); // g1, g2
    eq(tr("_sum", "contact", "needs", "7d", None), 0.0);
    eq(tr("_bucket", "needs", "proposal", "7d", Some("3600")), 2.0);
    eq(tr("_count", "proposal", "negotiation", "7d", None), 1.0); // g2 only (g1 never got there)
    eq(tr("_count", "won", "after_sales", "7d", None), 1.0); // post-sale transitions exist too
    eq(trq("won", "after_sales", "7d", "0.9").unwrap(), 0.0);
    // 1d: zeros, and no quantiles.
    eq(tr("_count", "lead", "contact", "1d", None), 0.0);
    eq(tr("_bucket", "lead", "contact", "1d", Some("+Inf")), 0.0);
    assert_eq!(trq("lead", "contact", "1d", "0.5"), None);
    // 6 transitions × 3 windows.
    assert_eq!(m.series("crm_funnel_transition_duration_seconds_count", &[]).len(), 18);

    // Time to close: g2 R(won) − C = 0 (created post-sale). 7d: [0].
    let pw = |w| [("pipeline", "default"), ("window", w)];
    eq(m.v("crm_funnel_time_to_close_seconds_count", &pw("7d")), 1.0);
    eq(m.v("crm_funnel_time_to_close_seconds_sum", &pw("7d")), 0.0);
    eq(
        m.v(
            "crm_funnel_time_to_close_quantile_seconds",
            &[("pipeline", "default"), ("window", "7d"), ("quantile", "0.5")],
        ),
        0.0,
    );
    eq(m.v("crm_funnel_time_to_close_seconds_count", &pw("1d")), 0.0);
    m.absent(
        "crm_funnel_time_to_close_quantile_seconds",
        &[("pipeline", "default"), ("window", "1d"), ("quantile", "0.5")],
    );

    // Won: g2 (a post-sale stage implies the won stage was reached). No losses.
    eq(m.v("crm_funnel_won_deals", &pw("7d")), 1.0);
    eq(m.v("crm_funnel_lost_deals", &pw("7d")), 0.0);
    eq(m.v("crm_funnel_win_rate_ratio", &pw("7d")), 1.0); // 1 / (1 + 0)
    eq(m.v("crm_funnel_won_deals", &pw("1d")), 0.0);
    eq(m.v("crm_funnel_lost_deals", &pw("1d")), 0.0);
    m.absent("crm_funnel_win_rate_ratio", &pw("1d")); // 0 / 0: no series
    assert!(m.series("crm_funnel_lost_reason_deals", &[]).is_empty()); // no reasons occur

    // Open: g1, g5 at contact; g2 is won (post-sale); g4 has no stage. Zeros for the rest.
    let open = m.series("crm_funnel_open_deals", &[("pipeline", "default")]);
    assert_eq!(open.len(), 7);
    for s in stages {
        eq(
            m.v("crm_funnel_open_deals", &[("pipeline", "default"), ("funnel_stage", s)]),
            if s == "contact" { 2.0 } else { 0.0 },
        );
    }
    // Stuck: only stages with an sla have a series: contact 2 (ages 3d1h and 6d > 3d); needs,
    // proposal, negotiation 0.
    assert_eq!(
        m.series("crm_funnel_stuck_deals", &[("pipeline", "default")]),
        [
            (labels_of(&[("funnel_stage", "contact")]), 2.0),
            (labels_of(&[("funnel_stage", "needs")]), 0.0),
            (labels_of(&[("funnel_stage", "negotiation")]), 0.0),
            (labels_of(&[("funnel_stage", "proposal")]), 0.0)
        ]
    );
    // Open amount: the contact deals carry no amount → 0 in the pipeline currency CNY; g2's
    // 1000 is not open.
    assert_eq!(
        m.series("crm_funnel_open_amount", &[("pipeline", "default")]),
        [(labels_of(&[("funnel_stage", "contact"), ("currency", "CNY")]), 0.0)]
    );
    // Activities: g4's demo at T is in every window.
    eq(m.v("crm_funnel_activities", &[("pipeline", "default"), ("window", "1d"), ("activity", "demo")]), 1.0);
    assert_eq!(m.v("crm_funnel_evaluation_timestamp_seconds", &[]), 1_768_089_600.0); // T = 10d
}

#[tokio::test]
async fn lost_reopened_past_won_won_without_creation_and_lost_after_won() {
    // T = 9d4h; 1d = (8d4h, 9d4h].
    // x: created a @9d, lost @9d1h "price", reopened at d (post-sale) @9d2h.
    //    E: a 9d, d 9d2h → R: a 9d, b = c = d = 9d2h. State won (d is after won), not lost.
    // y: won @9d3h without a creation, then lost @9d4h without reason.
    //    E: c 9d3h → R: a = b = c = 9d3h, d never. State lost, "unspecified".
    // z: created a @9d, lost @9d1h "price", reopened a @9d2h, lost again @9d3h "timing".
    //    R: a 9d only. State lost; lost_at and reason come from the last deal_lost: 9d3h, "timing".
    let lines = vec![
        pl("1", "x", "deal_created", at(9, 0), json!({"stage": "a"})),
        pl("2", "x", "deal_lost", at(9, 1), json!({"lost_reason": "price"})),
        pl("3", "x", "deal_reopened", at(9, 2), json!({"stage": "d"})),
        pl("4", "y", "deal_won", at(9, 3), json!({})),
        pl("5", "y", "deal_lost", at(9, 4), json!({})),
        pl("z1", "z", "deal_created", at(9, 0), json!({"stage": "a"})),
        pl("z2", "z", "deal_lost", at(9, 1), json!({"lost_reason": "price"})),
        pl("z3", "z", "deal_reopened", at(9, 2), json!({"stage": "a"})),
        pl("z4", "z", "deal_lost", at(9, 3), json!({"lost_reason": "timing"})),
    ];
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    let w = [("pipeline", "p"), ("window", "1d")];
    eq(m.v("crm_funnel_won_deals", &w), 2.0); // R(c) = 9d2h (x) and 9d3h (y)
    eq(m.v("crm_funnel_lost_deals", &w), 2.0); // y, z
    eq(m.v("crm_funnel_win_rate_ratio", &w), 0.5); // 2 / (2 + 2): y is both won and lost in the window
    assert_eq!(
        m.series("crm_funnel_lost_reason_deals", &w),
        [(labels_of(&[("reason", "timing")]), 1.0), (labels_of(&[("reason", "unspecified")]), 1.0)]
    );
    // Entries and cohort: a x, y, z; b, c x, y; d x.
    for (s, c) in [("a", 3.0), ("b", 2.0), ("c", 2.0), ("d", 1.0)] {
        eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", s), ("window", "1d")]), c);
        eq(m.v("crm_funnel_cohort_deals", &[("pipeline", "p"), ("funnel_stage", s), ("window", "1d")]), c);
    }
    // a → b: x 9d2h − 9d = 7200, y 0.
    let ab = [("pipeline", "p"), ("from_stage", "a"), ("to_stage", "b"), ("window", "1d")];
    eq(m.v("crm_funnel_transition_duration_seconds_count", &ab), 2.0);
    eq(m.v("crm_funnel_transition_duration_seconds_sum", &ab), 7200.0);
    // c → d: x 0.
    let cd = [("pipeline", "p"), ("from_stage", "c"), ("to_stage", "d"), ("window", "1d")];
    eq(m.v("crm_funnel_transition_duration_seconds_count", &cd), 1.0);
    // Time to close: x 7200, y 0 → sum 7200; nearest rank: 0.5 → rank 1 = 0, 0.9 → rank 2 = 7200.
    eq(m.v("crm_funnel_time_to_close_seconds_sum", &w), 7200.0);
    eq(m.v("crm_funnel_time_to_close_seconds_count", &w), 2.0);
    eq(
        m.v("crm_funnel_time_to_close_quantile_seconds", &[("pipeline", "p"), ("window", "1d"), ("quantile", "0.5")]),
        0.0,
    );
    eq(
        m.v("crm_funnel_time_to_close_quantile_seconds", &[("pipeline", "p"), ("window", "1d"), ("quantile", "0.9")]),
        7200.0,
    );
    // Nothing is open: x won (post-sale), y and z lost.
    for s in ["a", "b", "c", "d"] {
        eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", s)]), 0.0);
    }
    assert!(m.series("crm_funnel_open_amount", &[]).is_empty());
}

#[tokio::test]
async fn equal_timestamps_are_ordered_by_event_id_bytes_and_stuck_is_strict() {
    let t1 = at(0, 1);
    let t = t1 + 2 * D + 1; // T, set by the activity of "tick"
    // q: created a @0; at t1 two stage changes: "q-9" → b and "q-10" → a, pushed in that order.
    //    Byte-wise "q-10" < "q-9" ('1' < '9'), so a then b: current stage b since t1.
    //    (Arrival order or numeric order would end at a.) R: a 0, b t1.
    // r: created b @T − 2d: in b for exactly the sla 2d → not stuck (strictly greater only).
    //    R: a = b = T − 2d.
    // q's age is T − t1 = 2d + 1 ms > 2d → stuck.
    // s: "s-2" created a @BASE (epoch ms) and "s-1" → b at 08:00:00.0009+08:00 = BASE + 0.9 ms,
    //    truncated to BASE: a tie, "s-1" < "s-2", so b then a: open at a since BASE,
    //    age 2d1h > 1d → stuck. R: a = b = BASE. (Rounding to BASE + 1 would leave it at b.)
    let lines = vec![
        pl("q-1", "q", "deal_created", at(0, 0), json!({"stage": "a"})),
        pl("q-9", "q", "stage_changed", t1, json!({"stage": "b"})),
        pl("q-10", "q", "stage_changed", t1, json!({"stage": "a"})),
        pl("r-1", "r", "deal_created", t - 2 * D, json!({"stage": "b"})),
        pl("tick", "tick", "activity", t, json!({"activity": "call"})),
        pl("s-2", "s", "deal_created", BASE, json!({"stage": "a"})),
        pl(
            "s-1",
            "s",
            "stage_changed",
            at(0, 0),
            json!({"stage": "b", "occurred_at": "2026-01-01T08:00:00.0009+08:00"}),
        ),
    ];
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "a")]), 1.0); // s
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 2.0); // q, r
    eq(m.v("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "a")]), 1.0); // s
    eq(m.v("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 1.0); // q, not r
    // T = BASE + 2d1h + 1 ms: the timestamp keeps the millisecond.
    assert_eq!(m.v("crm_funnel_evaluation_timestamp_seconds", &[]), 1_767_402_000.001);
    // 7d = (T − 7d, T] holds every reach time: a: q, r, s; b: q, r, s.
    // a → b: q t1 − 0 = 3600, r 0, s 0 → sum 3600.
    let ab = [("pipeline", "p"), ("from_stage", "a"), ("to_stage", "b"), ("window", "7d")];
    eq(m.v("crm_funnel_transition_duration_seconds_count", &ab), 3.0);
    eq(m.v("crm_funnel_transition_duration_seconds_sum", &ab), 3600.0);
    // 1d = (T − 1d, T]: only the activity; no stage entry → ratios absent, activity counted.
    eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", "a"), ("window", "1d")]), 0.0);
    m.absent(
        "crm_funnel_period_conversion_ratio",
        &[("pipeline", "p"), ("from_stage", "a"), ("to_stage", "b"), ("window", "1d")],
    );
    eq(m.v("crm_funnel_activities", &[("pipeline", "p"), ("window", "1d"), ("activity", "call")]), 1.0);
}

#[tokio::test]
async fn duplicate_id_with_different_content_first_arrival_wins() {
    // Same event_id "e-2" twice: first as stage_changed → b @1h, then (later arrival, on another
    // partition) as stage_changed → c @2h. First wins: the deal is open at b, never reached c.
    // A third exact resend of "e-1" changes nothing.
    let first = vec![
        pl("e-1", "k", "deal_created", at(0, 0), json!({"stage": "a", "amount": 5})),
        pl("e-2", "k", "stage_changed", at(0, 1), json!({"stage": "b"})),
    ];
    let later = vec![
        pl("e-2", "k", "stage_changed", at(0, 2), json!({"stage": "c", "amount": 999})),
        pl("e-1", "k", "deal_created", at(0, 0), json!({"stage": "a", "amount": 5})),
    ];
    let (snap, pushed) = run(&config(CONFIG_P), &[(0, first), (3, later)]).await;
    assert_eq!((pushed[1].accepted, pushed[1].duplicates, pushed[1].rejected.len()), (0, 2, 0));
    let m = M(snap);
    // T = 1h (the duplicate's 2h never entered the store).
    assert_eq!(m.0.t_ms, at(0, 1));
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 1.0);
    eq(m.v("crm_funnel_won_deals", &[("pipeline", "p"), ("window", "1d")]), 0.0);
    eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", "c"), ("window", "1d")]), 0.0);
    eq(m.v("crm_funnel_open_amount", &[("pipeline", "p"), ("funnel_stage", "b"), ("currency", "USD")]), 5.0);
}

#[tokio::test]
async fn events_after_t_wait_for_a_later_refresh() {
    // Wall clock: T is the time of the refresh. An event 2 minutes in the future is within the
    // 5-minute skew, so it is accepted, but it lies after T and is not counted yet; one 10
    // minutes ahead is rejected as future_timestamp.
    let toml = r#"
        windows = ["1d"]
        [[pipelines]]
        id = "p"
        currency = "USD"
        stages = [{ id = "a" }, { id = "b" }, { id = "c", won = true }]
    "#;
    let cfg = config(toml);
    let now = now_ms();
    let lines = vec![
        pl("w-1", "w", "deal_created", now - H, json!({"stage": "a"})),
        pl("w-2", "w", "stage_changed", now + 120_000, json!({"stage": "b"})),
        pl("v-1", "v", "deal_created", now + 60_000, json!({"stage": "a"})),
        pl("u-1", "u", "deal_created", now + 600_000, json!({"stage": "a"})),
    ];
    let (snap, pushed) = run(&cfg, &[(0, lines)]).await;
    let after = now_ms();
    assert_eq!(pushed[0].accepted, 3);
    assert_eq!(pushed[0].rejected.len(), 1);
    assert_eq!(pushed[0].rejected[0].1.reason, Reason::FutureTimestamp);
    assert!(after < now + 60_000, "the test took over a minute: the 'future' events are no longer after T");
    let m = M(snap);
    // T is the wall clock of the refresh: between the push and now.
    assert!(m.0.t_ms >= now && m.0.t_ms <= after);
    // Only w's creation (now − 1h) is at or before T: a 1, b 0; v does not exist yet.
    let e = |s| m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", s), ("window", "1d")]);
    eq(e("a"), 1.0);
    eq(e("b"), 0.0);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "a")]), 1.0);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 0.0);
    // a → b: 0/1, the entry into b is still in the future.
    eq(
        m.v(
            "crm_funnel_period_conversion_ratio",
            &[("pipeline", "p"), ("from_stage", "a"), ("to_stage", "b"), ("window", "1d")],
        ),
        0.0,
    );
}

#[tokio::test]
async fn top_20_lost_reasons_and_activities_then_other() {
    // 25 lost deals with 22 distinct reasons: "big" ×3, "mid" ×2, "t01" … "t20" ×1.
    // Ranked by count, ties by name: big, mid, t01 … t18 are the 20 largest; t19 and t20 are
    // summed as other = 2. The same shape for 22 activity kinds on one deal.
    let mut lines = Vec::new();
    let mut reasons: Vec<String> = vec!["big".into(), "big".into(), "big".into(), "mid".into(), "mid".into()];
    reasons.extend((1..=20).map(|i| format!("t{i:02}")));
    for (i, r) in reasons.iter().enumerate() {
        let deal = format!("L{i}");
        lines.push(pl(&format!("{deal}-c"), &deal, "deal_created", at(0, 1), json!({"stage": "a"})));
        lines.push(pl(&format!("{deal}-l"), &deal, "deal_lost", at(0, 2), json!({"lost_reason": r})));
    }
    let mut kinds: Vec<String> = vec!["call".into(), "call".into(), "call".into(), "email".into(), "email".into()];
    kinds.extend((1..=20).map(|i| format!("k{i:02}")));
    for (i, k) in kinds.iter().enumerate() {
        lines.push(pl(&format!("act-{i}"), "act", "activity", at(0, 3), json!({"activity": k})));
    }
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    let w = [("pipeline", "p"), ("window", "1d")];
    let mut want = vec![("big".to_string(), 3.0), ("mid".to_string(), 2.0), ("other".to_string(), 2.0)];
    want.extend((1..=18).map(|i| (format!("t{i:02}"), 1.0)));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<(String, f64)> =
        m.series("crm_funnel_lost_reason_deals", &w).into_iter().map(|(l, v)| (l[0].1.clone(), v)).collect();
    assert_eq!(got, want);
    eq(m.v("crm_funnel_lost_deals", &w), 25.0);
    eq(m.v("crm_funnel_won_deals", &w), 0.0);
    eq(m.v("crm_funnel_win_rate_ratio", &w), 0.0); // 0 / (0 + 25): a real zero, not absent

    let mut want = vec![("call".to_string(), 3.0), ("email".to_string(), 2.0), ("other".to_string(), 2.0)];
    want.extend((1..=18).map(|i| (format!("k{i:02}"), 1.0)));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<(String, f64)> =
        m.series("crm_funnel_activities", &w).into_iter().map(|(l, v)| (l[0].1.clone(), v)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn other_and_unspecified_are_never_ranked() {
    // docs/metrics.md §7. Lost: 21 named reasons r01 … r21 ×2 each; "other" ×3 (literal);
    // "unspecified" ×1 (literal), "" ×1 and none ×1 (all three unspecified). The 20 ranked are
    // r01 … r20; r21 (2) joins the literal other (3) = 5; unspecified = 3 — though both special
    // values would rank among the 20 by count.
    let mut lines = Vec::new();
    let mut reasons: Vec<Option<String>> = (1..=21).flat_map(|i| vec![Some(format!("r{i:02}")); 2]).collect();
    reasons.extend([Some("other".into()), Some("other".into()), Some("other".into())]);
    reasons.extend([Some("unspecified".into()), Some(String::new()), None]);
    for (i, r) in reasons.iter().enumerate() {
        let deal = format!("L{i}");
        lines.push(pl(&format!("{deal}-c"), &deal, "deal_created", at(0, 1), json!({"stage": "a"})));
        lines.push(pl(&format!("{deal}-l"), &deal, "deal_lost", at(0, 2), json!({"lost_reason": r})));
    }
    // Activities: 20 kinds ×1, "other" ×4 and "unspecified" ×2 (literal kinds).
    let mut kinds: Vec<String> = (1..=20).map(|i| format!("k{i:02}")).collect();
    kinds.extend(["other"; 4].map(String::from));
    kinds.extend(["unspecified"; 2].map(String::from));
    for (i, k) in kinds.iter().enumerate() {
        lines.push(pl(&format!("act-{i}"), "act", "activity", at(0, 3), json!({"activity": k})));
    }
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    let w = [("pipeline", "p"), ("window", "1d")];
    let mut want: Vec<(String, f64)> = (1..=20).map(|i| (format!("r{i:02}"), 2.0)).collect();
    want.extend([("other".to_string(), 5.0), ("unspecified".to_string(), 3.0)]);
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<(String, f64)> =
        m.series("crm_funnel_lost_reason_deals", &w).into_iter().map(|(l, v)| (l[0].1.clone(), v)).collect();
    assert_eq!(got, want);
    eq(m.v("crm_funnel_lost_deals", &w), 48.0);

    let mut want: Vec<(String, f64)> = (1..=20).map(|i| (format!("k{i:02}"), 1.0)).collect();
    want.extend([("other".to_string(), 4.0), ("unspecified".to_string(), 2.0)]);
    let got: Vec<(String, f64)> =
        m.series("crm_funnel_activities", &w).into_iter().map(|(l, v)| (l[0].1.clone(), v)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_deal_is_its_pipeline_and_deal_id() {
    // Two pipelines sharing stage ids a and b, and one deal_id "same" in both: two deals.
    let toml = r#"
        clock = "event"
        windows = ["1d"]
        [[pipelines]]
        id = "p"
        currency = "USD"
        stages = [{ id = "a" }, { id = "b" }, { id = "c", won = true }]
        [[pipelines]]
        id = "q"
        currency = "EUR"
        stages = [{ id = "a" }, { id = "b", won = true }]
    "#;
    // p/same: created a (5). q/same: created a (7). q/other: created a (3 USD).
    // q/w: won @2h → q reaches a and b (won).
    let q = |id: &str, deal: &str, kind: &str, t: i64, mut f: Value| {
        f.as_object_mut().expect("object").insert("pipeline".into(), json!("q"));
        line(id, deal, kind, t, f)
    };
    let lines = vec![
        pl("p-same", "same", "deal_created", at(0, 0), json!({"stage": "a", "amount": 5})),
        q("q-same", "same", "deal_created", at(0, 1), json!({"stage": "a", "amount": 7})),
        q("q-other", "other", "deal_created", at(0, 1), json!({"stage": "a", "amount": 3, "currency": "USD"})),
        q("q-w", "w", "deal_won", at(0, 2), json!({})),
    ];
    let (snap, _) = run(&config(toml), &[(0, lines)]).await;
    let m = M(snap);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "a")]), 1.0);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "q"), ("funnel_stage", "a")]), 2.0);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "q"), ("funnel_stage", "b")]), 0.0);
    eq(m.v("crm_funnel_open_amount", &[("pipeline", "p"), ("funnel_stage", "a"), ("currency", "USD")]), 5.0);
    eq(m.v("crm_funnel_open_amount", &[("pipeline", "q"), ("funnel_stage", "a"), ("currency", "EUR")]), 7.0);
    eq(m.v("crm_funnel_open_amount", &[("pipeline", "q"), ("funnel_stage", "a"), ("currency", "USD")]), 3.0);
    assert_eq!(m.series("crm_funnel_open_amount", &[]).len(), 3);
    // Entries in 1d: p: a 1; q: a 3 (same, other, w), b 1 (w).
    let e = |p, s| m.v("crm_funnel_stage_entries", &[("pipeline", p), ("funnel_stage", s), ("window", "1d")]);
    eq(e("p", "a"), 1.0);
    eq(e("p", "b"), 0.0);
    eq(e("q", "a"), 3.0);
    eq(e("q", "b"), 1.0);
    eq(m.v("crm_funnel_won_deals", &[("pipeline", "q"), ("window", "1d")]), 1.0);
    eq(m.v("crm_funnel_won_deals", &[("pipeline", "p"), ("window", "1d")]), 0.0);
    // q has one transition (a → b), p two.
    assert_eq!(m.series("crm_funnel_transition_duration_seconds_count", &[("pipeline", "q")]).len(), 1);
    assert_eq!(m.series("crm_funnel_transition_duration_seconds_count", &[("pipeline", "p")]).len(), 2);
}

#[tokio::test]
async fn age_counts_from_the_last_stage_bearing_event() {
    // docs/metrics.md §7: age counts from the last stage-bearing event, even one that repeats
    // the stage. T = 3d (the activity).
    // rr: created b @0d, stage_changed b again @2d → age T − 2d = 1d ≤ 2d: not stuck
    //     (counting from 0d would give 3d > 2d). R(b) stays 0d.
    // rs: created b @0d only → age 3d > 2d: stuck.
    let lines = vec![
        pl("rr-1", "rr", "deal_created", at(0, 0), json!({"stage": "b"})),
        pl("rr-2", "rr", "stage_changed", at(2, 0), json!({"stage": "b"})),
        pl("rs-1", "rs", "deal_created", at(0, 0), json!({"stage": "b"})),
        pl("tick", "tick", "activity", at(3, 0), json!({"activity": "call"})),
    ];
    let (snap, _) = run(&config(CONFIG_P), &[(0, lines)]).await;
    let m = M(snap);
    eq(m.v("crm_funnel_open_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 2.0);
    eq(m.v("crm_funnel_stuck_deals", &[("pipeline", "p"), ("funnel_stage", "b")]), 1.0);
    // 1d = (2d, 3d]: rr's repeated entry at 2d is neither in it nor a new first reach.
    eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", "b"), ("window", "1d")]), 0.0);
    eq(m.v("crm_funnel_stage_entries", &[("pipeline", "p"), ("funnel_stage", "b"), ("window", "7d")]), 2.0);
}

#[tokio::test]
async fn no_events_yet() {
    // docs/metrics.md §7: with clock = "event" and no events, T = 0; every count series exists
    // at 0 and no ratio or quantile does.
    let (snap, _) = run(&config(CONFIG_P), &[]).await;
    let m = M(snap.clone());
    assert_eq!(m.v("crm_funnel_evaluation_timestamp_seconds", &[]), 0.0);
    let zeros = |name: &str, n: usize| {
        let s = m.series(name, &[]);
        assert_eq!(s.len(), n, "{name}");
        assert!(s.iter().all(|(_, v)| *v == 0.0), "{name}: {s:?}");
    };
    zeros("crm_funnel_stage_entries", 12); // 4 stages × 3 windows
    zeros("crm_funnel_cohort_deals", 12);
    zeros("crm_funnel_transition_duration_seconds_count", 9); // 3 transitions × 3 windows
    zeros("crm_funnel_transition_duration_seconds_sum", 9);
    zeros("crm_funnel_transition_duration_seconds_bucket", 9 * 13);
    zeros("crm_funnel_time_to_close_seconds_count", 3);
    zeros("crm_funnel_won_deals", 3);
    zeros("crm_funnel_lost_deals", 3);
    zeros("crm_funnel_open_deals", 4);
    zeros("crm_funnel_stuck_deals", 2); // a and b have an sla
    for name in [
        "crm_funnel_period_conversion_ratio",
        "crm_funnel_cohort_conversion_ratio",
        "crm_funnel_win_rate_ratio",
        "crm_funnel_transition_duration_quantile_seconds",
        "crm_funnel_time_to_close_quantile_seconds",
        "crm_funnel_lost_reason_deals",
        "crm_funnel_activities",
        "crm_funnel_open_amount",
    ] {
        assert!(m.series(name, &[]).is_empty(), "{name}");
    }
    // Quantile families are typed summary (docs/metrics.md §7), histograms histogram.
    assert!(snap.text.contains("# TYPE crm_funnel_time_to_close_quantile_seconds summary\n"));
    assert!(snap.text.contains("# TYPE crm_funnel_transition_duration_quantile_seconds summary\n"));
    assert!(snap.text.contains("# TYPE crm_funnel_time_to_close_seconds histogram\n"));
}

// ---------------------------------------------------------------------------
// Order independence.
// ---------------------------------------------------------------------------

/// A deterministic Fisher–Yates shuffle driven by a 64-bit LCG (Knuth's MMIX constants).
fn shuffle<T>(v: &mut [T], mut state: u64) {
    for i in (1..v.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[tokio::test]
async fn shuffled_and_repartitioned_events_give_identical_output() {
    let toml = r#"
        clock = "event"
        [[pipelines]]
        id = "default"
        currency = "CNY"
        stages = [
          { id = "lead" }, { id = "contact", sla = "3d" }, { id = "needs", sla = "7d" },
          { id = "proposal", sla = "10d" }, { id = "negotiation", sla = "14d" },
          { id = "won", won = true }, { id = "after_sales" },
        ]
        [[pipelines]]
        id = "self_serve"
        currency = "USD"
        stages = [{ id = "signup", sla = "2d" }, { id = "trial" }, { id = "paid", won = true }, { id = "renewal" }]
    "#;
    let cfg = config(toml);
    let end = 1_790_812_800_000; // 2026-10-01T00:00:00Z
    let lines = Generator::new(&cfg.pipelines, 400, 60, 7, end - 60 * D).advance(end);
    assert!(lines.len() > 2000, "{} lines", lines.len());

    // (a) in order, one partition.
    let (a, pa) = run(&cfg, &[(0, lines.clone())]).await;
    // (b) shuffled, spread over 4 partitions in uneven chunks, then the first 300 lines replayed.
    let mut shuffled = lines.clone();
    shuffle(&mut shuffled, 0x5eed);
    let mut pushes: Vec<(i32, Vec<String>)> = Vec::new();
    for (i, chunk) in shuffled.chunks(97).enumerate() {
        pushes.push(((i % 4) as i32, chunk.to_vec()));
    }
    pushes.push((2, shuffled[..300].to_vec()));
    let (b, pb) = run(&cfg, &pushes).await;

    let total =
        |p: &[Pushed]| p.iter().fold((0, 0, 0), |s, x| (s.0 + x.accepted, s.1 + x.duplicates, s.2 + x.rejected.len()));
    let (acc_a, dup_a, rej_a) = total(&pa);
    let (acc_b, dup_b, rej_b) = total(&pb);
    assert_eq!((rej_a, rej_b), (0, 0));
    assert_eq!(acc_a, acc_b);
    assert_eq!(dup_b, dup_a + 300); // the replay is all duplicates
    assert_eq!(a.t_ms, b.t_ms);
    // Non-trivial: deals were won, lost and are open in both pipelines.
    let m = M(a.clone());
    for p in ["default", "self_serve"] {
        assert!(m.v("crm_funnel_won_deals", &[("pipeline", p), ("window", "90d")]) > 0.0);
        assert!(m.v("crm_funnel_lost_deals", &[("pipeline", p), ("window", "90d")]) > 0.0);
        let open: f64 = m.series("crm_funnel_open_deals", &[("pipeline", p)]).iter().map(|(_, v)| v).sum();
        assert!(open > 0.0, "{p}");
    }
    assert!(a.text.len() > 50_000, "{} bytes", a.text.len());
    if a.text != b.text {
        let differing: Vec<(&str, &str)> = a.text.lines().zip(b.text.lines()).filter(|(x, y)| x != y).collect();
        let mut families: Vec<&str> = differing.iter().map(|(x, _)| x.split(['{', ' ']).next().unwrap_or(x)).collect();
        families.dedup();
        let examples: Vec<String> =
            differing.iter().take(6).map(|(x, y)| format!("  in order: {x}\n  shuffled: {y}")).collect();
        panic!(
            "the outputs differ in {} of {} lines (vs {}), in {families:?}:\n{}",
            differing.len(),
            a.text.lines().count(),
            b.text.lines().count(),
            examples.join("\n")
        );
    }
}

#[tokio::test]
async fn sums_do_not_depend_on_arrival_order() {
    // Three deals created at a @0 with amounts 0.1, 0.2, 0.3 that reach b after 100, 200 and
    // 300 ms. By hand: open amount (b, USD) = 0.1 + 0.2 + 0.3 = 0.6 and the a → b _sum is
    // 0.1 + 0.2 + 0.3 = 0.6 s, whatever the arrival order. In f64, (0.1 + 0.2) + 0.3 is
    // 0.6000000000000001 while (0.3 + 0.2) + 0.1 is 0.6: a sum taken in arrival order is not.
    let deal = |n: usize, amount: f64, ms: i64| {
        let d = format!("x{n}");
        vec![
            pl(&format!("{d}-c"), &d, "deal_created", BASE, json!({"stage": "a", "amount": amount})),
            pl(&format!("{d}-b"), &d, "stage_changed", BASE + ms, json!({"stage": "b"})),
        ]
    };
    let forward: Vec<String> = [deal(1, 0.1, 100), deal(2, 0.2, 200), deal(3, 0.3, 300)].concat();
    let backward: Vec<String> = [deal(3, 0.3, 300), deal(2, 0.2, 200), deal(1, 0.1, 100)].concat();
    let cfg = config(CONFIG_P);
    let (a, _) = run(&cfg, &[(0, forward)]).await;
    let (b, _) = run(&cfg, &[(0, backward)]).await;
    for snap in [&a, &b] {
        let m = M(snap.clone());
        eq(m.v("crm_funnel_open_amount", &[("pipeline", "p"), ("funnel_stage", "b"), ("currency", "USD")]), 0.6);
        let ab = [("pipeline", "p"), ("from_stage", "a"), ("to_stage", "b"), ("window", "1d")];
        eq(m.v("crm_funnel_transition_duration_seconds_sum", &ab), 0.6);
    }
    let differing: Vec<(&str, &str)> = a.text.lines().zip(b.text.lines()).filter(|(x, y)| x != y).collect();
    assert!(differing.is_empty(), "arrival order changes the output: {differing:#?}");
}

// ---------------------------------------------------------------------------
// User-supplied query files.
// ---------------------------------------------------------------------------

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("funnelwatch-queries-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn a_query_file_in_queries_dir_adds_a_family() {
    let dir = temp_dir("custom");
    std::fs::write(
        dir.join("custom_open.sql"),
        "-- metric: crm_custom_x\n-- type: gauge\n-- help: Open deals per pipeline (test).\n-- labels: pipeline\n\
         -- value: value\nSELECT pipeline, COUNT(*) AS value FROM deals WHERE state = 'open' GROUP BY pipeline\n",
    )
    .expect("write query");
    std::fs::write(dir.join("notes.txt"), "not a query").expect("write");
    let mut cfg = config(CONFIG_DEFAULT);
    cfg.queries_dir = Some(dir.clone());
    // k1 open at lead, k2 open at contact, k3 created then lost, k4 only an activity → 2 open.
    let lines = vec![
        line("k1", "k1", "deal_created", at(0, 0), json!({"stage": "lead"})),
        line("k2", "k2", "deal_created", at(0, 1), json!({"stage": "contact"})),
        line("k3", "k3", "deal_created", at(0, 2), json!({"stage": "lead"})),
        line("k3-l", "k3", "deal_lost", at(0, 3), json!({})),
        line("k4", "k4", "activity", at(0, 4), json!({"activity": "call"})),
    ];
    let (snap, _) = run(&cfg, &[(0, lines)]).await;
    let m = M(snap.clone());
    eq(m.v("crm_custom_x", &[("pipeline", "default")]), 2.0);
    assert!(snap.text.contains("# TYPE crm_custom_x gauge\n"));
    assert!(snap.text.contains("# HELP crm_custom_x Open deals per pipeline (test).\n"));
    // The built-ins are still there.
    eq(m.v("crm_funnel_lost_deals", &[("pipeline", "default"), ("window", "1d")]), 1.0);
    assert!(snap.queries.iter().any(|(f, _)| f == "custom_open.sql"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_table_query_that_fails_fails_its_readers_and_the_rest_go_on() {
    let dir = temp_dir("failing-table");
    // Fails when it runs (a quantile of 2/1), not when it is planned.
    std::fs::write(
        dir.join("broken_table.sql"),
        "-- table: broken\nSELECT nearest_rank(created_ms, 2, 1) AS v FROM deals\n",
    )
    .expect("write query");
    std::fs::write(
        dir.join("reads_broken.sql"),
        "-- metric: crm_reads_broken\n-- help: Reads a failed table (test).\n-- labels:\n\
         SELECT CAST(v AS DOUBLE) AS value FROM broken\n",
    )
    .expect("write query");
    let mut cfg = config(CONFIG_DEFAULT);
    cfg.queries_dir = Some(dir.clone());
    let app = App::new(cfg.clone());
    let ingest = app.ingest();
    let lines = [line("k1", "k1", "deal_created", at(0, 0), json!({"stage": "lead"}))];
    ingest.push(&PartitionKey::new("t", 0), lines.iter().map(|l| l.as_bytes()));
    let engine = Engine::new(&cfg).expect("the queries load");
    ingest.caught_up();
    app.refresh(&engine).await;
    let snap = app.state().snapshot();
    assert_eq!(snap.version, 1, "the refresh was published");
    let result = |file: &str| snap.queries.iter().find(|(f, _)| f == file).map(|(_, r)| r.clone()).expect(file);
    let failed = result("broken_table.sql").expect_err("a fraction of 2/1 fails");
    assert!(failed.contains("not a fraction"), "{failed}");
    let reader = result("reads_broken.sql").expect_err("its reader fails too");
    assert!(reader.contains("broken_table.sql failed"), "{reader}");
    for (file, r) in &snap.queries {
        if file != "broken_table.sql" && file != "reads_broken.sql" {
            assert!(r.is_ok(), "{file}: {r:?}");
        }
    }
    assert!(!snap.families.iter().any(|f| f.spec.name == "crm_reads_broken"));
    let m = M(snap.clone());
    eq(m.v("crm_funnel_stage_entries", &[("pipeline", "default"), ("funnel_stage", "lead"), ("window", "1d")]), 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_query_header_is_reported_with_its_file_name() {
    let dir = temp_dir("broken");
    std::fs::write(dir.join("broken.sql"), "-- metric: crm bad name\n-- type: gauges\nSELECT 1 AS value\n")
        .expect("write query");
    std::fs::write(
        dir.join("fine.sql"),
        "-- metric: crm_fine\n-- help: fine\n-- labels:\nSELECT CAST(1 AS DOUBLE) AS value\n",
    )
    .expect("write query");
    let errs = load_queries(Some(&dir)).expect_err("a broken header is an error");
    assert!(!errs.is_empty());
    for e in &errs {
        assert!(e.starts_with("broken.sql: "), "{e}");
    }
    // The invalid name, the unknown type and the missing help are each reported.
    assert!(errs.iter().any(|e| e.contains("metric:")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("type:")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("help:")), "{errs:?}");
    let mut cfg = config(CONFIG_DEFAULT);
    cfg.queries_dir = Some(dir.clone());
    assert!(Engine::new(&cfg).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_and_repeated_header_keys_are_errors() {
    let dir = temp_dir("header-keys");
    let fine = "-- metric: crm_fine\n-- help: fine\n-- Prose: a comment, even with a colon.\nSELECT CAST(1 AS DOUBLE) AS value\n";
    std::fs::write(dir.join("fine.sql"), fine).expect("write query");
    std::fs::write(dir.join("typo.sql"), "-- metric: crm_typo\n-- help: h\n-- lables: pipeline\nSELECT 1 AS value\n")
        .expect("write query");
    std::fs::write(dir.join("twice.sql"), "-- metric: crm_twice\n-- help: a\n-- help: b\nSELECT 1 AS value\n")
        .expect("write query");
    let errs = load_queries(Some(&dir)).expect_err("bad header keys are errors");
    assert_eq!(
        errs,
        [
            "twice.sql: header: help is given twice",
            "typo.sql: header: unknown key \"lables\" (the keys are table, metric, type, help, labels, value, export)",
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_table_file_cannot_read_a_table_made_after_it() {
    let dir = temp_dir("table-order");
    // `a_first` reads `z_last`, which runs after it (file-name order).
    std::fs::write(dir.join("a_first.sql"), "-- table: a_first\nSELECT * FROM z_last\n").expect("write query");
    std::fs::write(dir.join("z_last.sql"), "-- table: z_last\nSELECT 1 AS x\n").expect("write query");
    let mut cfg = config(CONFIG_DEFAULT);
    cfg.queries_dir = Some(dir.clone());
    let errs = Engine::new(&cfg).err().expect("the order is checked");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("a_first.sql: reads the table \"z_last\", which z_last.sql makes"), "{errs:?}");
    // The other way round is the documented order and works.
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = temp_dir("table-order-ok");
    std::fs::write(dir.join("a_first.sql"), "-- table: a_first\nSELECT 1 AS x\n").expect("write query");
    std::fs::write(dir.join("z_last.sql"), "-- table: z_last\nSELECT * FROM a_first\n").expect("write query");
    cfg.queries_dir = Some(dir.clone());
    assert!(Engine::new(&cfg).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The built-in list compiled into the binary is exactly the files of `queries/`.
#[test]
fn the_built_in_queries_are_the_files_of_the_queries_directory() {
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
        .expect("queries/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut built_in: Vec<String> = load_queries(None).expect("built-in queries").into_iter().map(|q| q.file).collect();
    built_in.sort();
    assert_eq!(built_in, files);
}
