//! Incremental = from scratch: the per-deal facts a store keeps up to date
//! at ingest, and the whole business output computed from them, equal a
//! fresh store built from the same accepted events at the same `T`.
//!
//! Each case draws random events for a few deals (shuffled arrival over
//! three partitions, duplicates with changed content, late events for old
//! deals, skipped stages, backward moves, losses and reopenings, equal
//! timestamps, events after the next `T`), interleaved with refreshes at a
//! rising `T` under a short retention (so eviction runs) and with a
//! dropped partition. The test keeps its own account of which events the
//! store holds (what it accepted, minus what retention or the drop took)
//! and builds the reference store from that account alone.
//!
//! The same random events also check the previous period (docs/metrics.md
//! §5.5): every `crm_funnel_previous_*` value at `T` equals its family at
//! `T − W` from a store given only the events up to `T − W`.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use funnelwatch::config::Config;
use funnelwatch::engine::Engine;
use funnelwatch::event::{Decoder, Event, EventType};
use funnelwatch::export::Sample;
use funnelwatch::store::{Inserted, PartitionKey, Store};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
const BASE: i64 = 1_767_225_600_000;

const CONFIG: &str = r#"
clock = "event"
windows = ["1d", "7d", "14d"]
retention = "20d"

[[pipelines]]
id = "p"
currency = "USD"
stages = [
  { id = "a", label = "A", sla = "1d" },
  { id = "b", label = "B", sla = "2d" },
  { id = "c", label = "C", won = true },
  { id = "d", label = "D" },
]

[[pipelines]]
id = "q"
currency = "EUR"
stages = [
  { id = "x", label = "X" },
  { id = "y", label = "Y", won = true },
]
"#;

/// One random event line; `n` numbers it, `deal` picks its deal.
fn line(rng: &mut ChaCha8Rng, n: usize, deal: usize, at: i64) -> String {
    let pipeline = if deal % 4 == 3 { "q" } else { "p" };
    let stages: &[&str] = if pipeline == "q" { &["x", "y"] } else { &["a", "b", "c", "d"] };
    let kinds = [
        "deal_created",
        "stage_changed",
        "deal_won",
        "deal_lost",
        "deal_reopened",
        "deal_updated",
        "activity",
        "feedback",
        "spend",
    ];
    let kind = kinds[rng.random_range(0..kinds.len())];
    let mut e = json!({
        "event_id": format!("e{n}"),
        "deal_id": format!("d{deal}"),
        "type": kind,
        "occurred_at": at,
        "pipeline": pipeline,
    });
    let o = e.as_object_mut().expect("object");
    match kind {
        "deal_won" => {
            o.insert("stage".into(), json!(if pipeline == "q" { "y" } else { "c" }));
        }
        "deal_created" | "stage_changed" | "deal_reopened" => {
            o.insert("stage".into(), json!(stages[rng.random_range(0..stages.len())]));
        }
        "deal_lost" if rng.random_bool(0.7) => {
            o.insert("lost_reason".into(), json!(["price", "timing", "other"][rng.random_range(0..3)]));
        }
        "activity" => {
            o.insert("activity".into(), json!(["call", "email"][rng.random_range(0..2)]));
        }
        "feedback" if rng.random_bool(0.5) => {
            o.insert("survey".into(), json!("nps"));
            o.insert("score".into(), json!(rng.random_range(0..=10)));
        }
        "feedback" => {
            o.insert("survey".into(), json!("csat"));
            o.insert("score".into(), json!(rng.random_range(1..=5)));
        }
        "spend" => {
            o.remove("deal_id");
            o.insert("amount".into(), json!(rng.random_range(1..100_000) as f64 / 100.0));
        }
        _ => {}
    }
    if kind != "spend" && rng.random_bool(0.3) {
        o.insert("amount".into(), json!(rng.random_range(1..100_000) as f64 / 100.0));
    }
    if rng.random_bool(0.2) {
        o.insert("currency".into(), json!(["USD", "CNY"][rng.random_range(0..2)]));
    }
    for key in ["owner", "team", "region", "source"] {
        if rng.random_bool(0.25) {
            o.insert(key.into(), json!(format!("{key}-{}", rng.random_range(0..3))));
        }
    }
    e.to_string()
}

/// Rows of a batch as strings, one line per row, every column but `skip`.
fn rows(batch: &RecordBatch, skip: &[&str]) -> Vec<String> {
    let schema = batch.schema();
    let opts = FormatOptions::default().with_null("∅");
    let cols: Vec<(String, ArrayFormatter)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !skip.contains(&f.name().as_str()))
        .map(|(f, c)| (f.name().clone(), ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter")))
        .collect();
    (0..batch.num_rows())
        .map(|r| cols.iter().map(|(n, f)| format!("{n}={}", f.value(r))).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The facts as sorted text: deals by their ids; reached and feedback rows
/// with the deal's id in place of its slot; spend rows and the segment sets.
fn facts(store: &mut Store, t: i64) -> Vec<Vec<String>> {
    let tables = store.refresh(t);
    let mut deals = rows(&tables.deals, &["deal_key"]);
    deals.sort();
    let mut by_deal: Vec<String> = Vec::new();
    for b in tables.reached.iter().chain([&tables.feedback, &tables.ended_losses]) {
        let keys = b.column_by_name("deal_key").expect("deal_key");
        let keys = keys.as_any().downcast_ref::<datafusion::arrow::array::UInt32Array>().expect("u32 keys");
        for (i, row) in rows(b, &["deal_key"]).into_iter().enumerate() {
            by_deal.push(format!("deal={} {row}", store.deal_id(keys.value(i)).expect("live deal")));
        }
    }
    by_deal.sort();
    let mut spend = rows(&tables.spend, &[]);
    spend.sort();
    let (sets, segments) = (rows(&tables.segment_sets, &[]), rows(&tables.segments, &[]));
    vec![deals, by_deal, spend, sets, segments]
}

/// Every sample of every family at `t`, also those not on `/metrics`.
fn business(engine: &Engine, rt: &tokio::runtime::Runtime, store: &mut Store, t: i64) -> Vec<Sample> {
    let input = engine.gather(store, t);
    let snap = rt.block_on(engine.refresh(input, t)).expect("refresh");
    for (file, r) in &snap.queries {
        assert!(r.is_ok(), "{file}: {r:?}");
    }
    snap.families.into_iter().flat_map(|f| f.samples).collect()
}

#[test]
fn maintained_facts_and_output_equal_a_fresh_derivation() {
    let config = Config::from_toml(CONFIG).expect("config");
    let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
    let engine = Engine::new(&config).expect("queries");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let parts = [PartitionKey::new("t", 0), PartitionKey::new("t", 1), PartitionKey::new("t", 2)];
    let mut evictions = 0;
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let deals = rng.random_range(3..15);
        let span = rng.random_range(5..40) * D;
        // Events over `span`; some share a timestamp; some reuse an id with other content.
        let mut lines: Vec<String> = Vec::new();
        for n in 0..rng.random_range(20..200) {
            let deal = rng.random_range(0..deals);
            let at = if rng.random_bool(0.1) && n > 0 { BASE + span / 2 } else { BASE + rng.random_range(0..span) };
            let id = if rng.random_bool(0.08) && n > 0 { rng.random_range(0..n) } else { n };
            lines.push(line(&mut rng, id, deal, at));
        }
        lines.shuffle(&mut rng);

        let mut store = Store::new(&config.pipelines, config.retention_ms, &config.breakdowns);
        // The test's account of the held events: id → (event, partition).
        let mut held: BTreeMap<String, (Event, usize)> = BTreeMap::new();
        let mut t = BASE + span / 3;
        let dropped = rng.random_range(0..parts.len());
        for (i, l) in lines.iter().enumerate() {
            let e = decoder.decode(l.as_bytes(), i64::MAX / 2).expect("test events are valid");
            let p = rng.random_range(0..parts.len());
            // Arrival T: the clock at arrival (events after the next refresh's T are allowed).
            if let Ok(Inserted::Accepted) = store.insert(&parts[p], &e, Some(t)) {
                held.insert(e.event_id.to_string(), (e, p));
            }
            if rng.random_bool(0.1) {
                t += rng.random_range(0..span / 4);
                store.refresh(t);
                let before = held.len();
                held.retain(|_, (e, _)| e.occurred_at > t - config.retention_ms);
                evictions += before - held.len();
            }
            if i == lines.len() / 2 {
                store.drop_partition(&parts[dropped]);
                held.retain(|_, (_, p)| *p != dropped);
            }
        }
        // Evaluate at a T that leaves some events after it.
        let t_end = t.max(BASE + span * 3 / 4);
        store.refresh(t_end);
        held.retain(|_, (e, _)| e.occurred_at > t_end - config.retention_ms);

        let mut fresh = Store::new(&config.pipelines, config.retention_ms, &config.breakdowns);
        for (e, _) in held.values() {
            assert_eq!(fresh.insert(&parts[0], e, Some(t_end)), Ok(Inserted::Accepted), "seed {seed}");
        }
        // The events table holds the deals' events; spend events are the spend table.
        let mut held_ids: Vec<String> =
            held.iter().filter(|(_, (e, _))| e.kind != EventType::Spend).map(|(id, _)| id.clone()).collect();
        held_ids.sort();
        let mut stored_ids: Vec<String> = store
            .events(i64::MAX)
            .iter()
            .flat_map(|b| rows(b, &[]))
            .map(|r| r.split(' ').next().expect("event_id first").to_string())
            .map(|c| c.trim_start_matches("event_id=").to_string())
            .collect();
        stored_ids.sort();
        assert_eq!(stored_ids, held_ids, "seed {seed}: the store holds what it accepted, minus evictions and the drop");
        assert_eq!(facts(&mut store, t_end), facts(&mut fresh, t_end), "seed {seed}: per-deal facts");
        assert_eq!(
            business(&engine, &rt, &mut store, t_end),
            business(&engine, &rt, &mut fresh, t_end),
            "seed {seed}: business output"
        );
    }
    assert!(evictions > 0, "retention evicted something in some case");
}

/// Each previous-period family and the family whose earlier value it holds.
const PREVIOUS: [(&str, &str); 13] = [
    ("crm_funnel_previous_stage_entries", "crm_funnel_stage_entries"),
    ("crm_funnel_previous_period_conversion_ratio", "crm_funnel_period_conversion_ratio"),
    ("crm_funnel_previous_transition_duration_quantile_seconds", "crm_funnel_transition_duration_quantile_seconds"),
    ("crm_funnel_previous_time_to_close_quantile_seconds", "crm_funnel_time_to_close_quantile_seconds"),
    ("crm_funnel_previous_won_deals", "crm_funnel_won_deals"),
    ("crm_funnel_previous_lost_deals", "crm_funnel_lost_deals"),
    ("crm_funnel_previous_win_rate_ratio", "crm_funnel_win_rate_ratio"),
    ("crm_funnel_previous_acquisition_spend", "crm_funnel_acquisition_spend"),
    ("crm_funnel_previous_cost_per_lead", "crm_funnel_cost_per_lead"),
    ("crm_funnel_previous_customer_acquisition_cost", "crm_funnel_customer_acquisition_cost"),
    ("crm_funnel_previous_feedback_responses", "crm_funnel_feedback_score_count"),
    ("crm_funnel_previous_csat_ratio", "crm_funnel_csat_ratio"),
    ("crm_funnel_previous_net_promoter_score", "crm_funnel_net_promoter_score"),
];

/// The samples of family `name` in `window`, as sorted "labels value" lines.
fn series(samples: &[Sample], name: &str, window: &str) -> Vec<String> {
    let mut out: Vec<String> = samples
        .iter()
        .filter(|s| s.name == name && s.label("window") == Some(window))
        .map(|s| format!("{:?} {}", s.labels, s.value))
        .collect();
    out.sort();
    out
}

#[test]
fn previous_period_values_equal_a_store_evaluated_at_t_minus_w() {
    let config = Config::from_toml(CONFIG).expect("config");
    let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
    let engine = Engine::new(&config).expect("queries");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let part = PartitionKey::new("t", 0);
    // 2W fits in the 20d retention for 1d and 7d, not for 14d.
    let (with_previous, without) = (["1d", "7d"], "14d");
    let mut nonzero = BTreeMap::<&str, usize>::new();
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let deals = rng.random_range(3..20);
        let span = rng.random_range(3..25) * D;
        let t = BASE + span;
        let mut store = Store::new(&config.pipelines, config.retention_ms, &config.breakdowns);
        let mut lines: Vec<String> = Vec::new();
        for n in 0..rng.random_range(30..300) {
            let (deal, at) = (rng.random_range(0..deals), BASE + rng.random_range(0..=span));
            lines.push(line(&mut rng, n, deal, at));
        }
        let mut held: Vec<Event> = Vec::new();
        for l in &lines {
            let e = decoder.decode(l.as_bytes(), i64::MAX / 2).expect("test events are valid");
            if let Ok(Inserted::Accepted) = store.insert(&part, &e, Some(t)) {
                held.push(e);
            }
        }
        let now = business(&engine, &rt, &mut store, t);
        held.retain(|e| e.occurred_at > t - config.retention_ms);
        for (previous, _) in PREVIOUS {
            assert_eq!(
                series(&now, previous, without),
                Vec::<String>::new(),
                "seed {seed}: {previous}, 2W > retention"
            );
        }
        for (window, width) in with_previous.iter().zip([D, 7 * D]) {
            let earlier_t = t - width;
            let mut earlier = Store::new(&config.pipelines, config.retention_ms, &config.breakdowns);
            for e in held.iter().filter(|e| e.occurred_at <= earlier_t) {
                assert_eq!(earlier.insert(&part, e, Some(earlier_t)), Ok(Inserted::Accepted), "seed {seed}");
            }
            let then = business(&engine, &rt, &mut earlier, earlier_t);
            for (previous, current) in PREVIOUS {
                let expected = series(&then, current, window);
                let got = series(&now, previous, window);
                assert_eq!(got, expected, "seed {seed}, window {window}: {previous} at T = {current} at T - W");
                if expected.iter().any(|l| !l.ends_with(" 0")) {
                    *nonzero.entry(previous).or_default() += 1;
                }
            }
        }
    }
    // Every family was compared with something other than zeros or nothing.
    for (previous, _) in PREVIOUS {
        assert!(nonzero.get(previous).copied().unwrap_or(0) >= 5, "{previous}: {nonzero:?}");
    }
}
