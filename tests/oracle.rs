//! The server against an independent implementation of docs/metrics.md
//! (`tests/oracle/funnel_oracle.py`, written from the contract alone): every
//! `crm_funnel_*` series must match — nothing missing, nothing extra,
//! counts exactly, ratios and seconds to 1e-6.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// Lines no producer should send, one per rejection reason that a file can carry.
const BAD_LINES: &[(&str, &str)] = &[
    ("{\"event_id\": \"x1\", ", "invalid_json"),
    ("[1, 2, 3]", "invalid_json"),
    (r#"{"deal_id":"d","type":"activity","occurred_at":1790000000000,"activity":"call"}"#, "missing_field"),
    (r#"{"event_id":"x2","deal_id":"d","type":"stage_changed","occurred_at":1790000000000}"#, "missing_field"),
    (r#"{"event_id":"x3","deal_id":"d","type":"deal_lost","occurred_at":"last tuesday"}"#, "invalid_field"),
    (r#"{"event_id":"x4","deal_id":"d","type":"deal_lost","occurred_at":1790000000000,"amount":-5}"#, "invalid_field"),
    (r#"{"event_id":"x5","deal_id":"d","type":"deal_merged","occurred_at":1790000000000}"#, "unknown_type"),
    (
        r#"{"event_id":"x6","deal_id":"d","type":"deal_lost","occurred_at":1790000000000,"pipeline":"nope"}"#,
        "unknown_pipeline",
    ),
    (
        r#"{"event_id":"x7","deal_id":"d","type":"stage_changed","occurred_at":1790000000000,"stage":"closing"}"#,
        "unknown_stage",
    ),
    (r#"{"event_id":"x8","deal_id":"d","type":"deal_lost","occurred_at":4102444800000}"#, "future_timestamp"),
    (r#"{"event_id":"x9","deal_id":"d","type":"deal_lost","occurred_at":"2001-01-01T00:00:00Z"}"#, "too_old"),
];

fn compare(config: &str, events: &std::path::Path) {
    let server = Server::replay(config.as_ref(), events);
    let text = server.metrics();
    let got = samples(&text, "crm_funnel_");

    let out = Command::new("python3")
        .arg(format!("{ROOT}/tests/oracle/funnel_oracle.py"))
        .args(["--config", config, "--events", events.to_str().unwrap()])
        .output()
        .expect("python3 runs the oracle");
    assert!(out.status.success(), "oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let want = samples(&String::from_utf8(out.stdout).unwrap(), "crm_funnel_");
    assert!(want.len() > 100, "oracle produced only {} series", want.len());

    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let differ: Vec<_> = want
        .iter()
        .filter_map(|(k, w)| got.get(k).map(|g| (k, *g, *w)))
        .filter(|(_, g, w)| (g - w).abs() > 1e-6 * w.abs().max(1.0))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{} series compared\nmissing: {missing:#?}\nextra: {extra:#?}\ndiffer (got, want): {differ:#?}",
        want.len()
    );

    // Rejections and duplicates are counted as the oracle counts them.
    let summary: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    let service = samples(&text, "funnelwatch_events_");
    let counter = |name: &str, labels: &[(&str, &str)]| {
        let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        service.get(&(name.to_string(), labels)).copied().unwrap_or(0.0)
    };
    assert_eq!(counter("funnelwatch_events_ingested_total", &[]), summary["accepted"].as_f64().unwrap());
    assert_eq!(counter("funnelwatch_events_duplicates_total", &[]), summary["duplicates"].as_f64().unwrap());
    let rejected: BTreeMap<String, f64> =
        summary["rejected"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect();
    for (reason, n) in &rejected {
        assert_eq!(counter("funnelwatch_events_rejected_total", &[("reason", reason)]), *n, "{reason}");
    }
}

/// The example configuration (two pipelines) and `deals` deals generated over 120 days.
fn generate_two_pipelines(name: &str, deals: &str, seed: &str) -> (String, std::path::PathBuf) {
    let config = format!("{ROOT}/funnelwatch.example.toml");
    let events = scratch(name).join("events.ndjson");
    let until = "2026-10-01T00:00:00Z";
    generate(&events, &["--config", &config, "--deals", deals, "--days", "120", "--seed", seed, "--until", until]);
    (config, events)
}

#[test]
fn generated_events_match_the_oracle_on_two_pipelines_with_bad_lines() {
    let (config, events) = generate_two_pipelines("oracle", "2000", "42");
    let mut text = std::fs::read_to_string(&events).unwrap();
    let good = text.lines().count();
    for (line, _) in BAD_LINES {
        text.push_str(line);
        text.push('\n');
    }
    // A resent event with different content: the first one wins.
    let first = text.lines().next().unwrap().replace("\"type\":\"deal_created\"", "\"type\":\"deal_lost\"");
    text.push_str(&first);
    text.push('\n');
    std::fs::write(&events, text).unwrap();
    assert!(good > 20_000, "only {good} generated events");
    compare(&config, &events);
}

#[test]
fn default_pipeline_with_short_windows_matches_the_oracle() {
    let dir = scratch("oracle-short");
    let config = dir.join("c.toml");
    std::fs::write(&config, "windows = [\"6h\", \"3d\", \"2w\"]\nretention = \"40d\"\n").unwrap();
    let events = dir.join("events.ndjson");
    generate(&events, &["--deals", "800", "--days", "60", "--seed", "9", "--until", "2026-09-15T12:00:00Z"]);
    compare(config.to_str().unwrap(), &events);
}

/// The file source reads 8 MiB at a time: lines that straddle the chunks,
/// and a last line without a newline, are each read once.
#[test]
fn a_file_larger_than_the_read_chunk_is_read_line_for_line() {
    let (config, events) = generate_two_pipelines("oracle-large", "7000", "7");
    let text = std::fs::read_to_string(&events).unwrap();
    std::fs::write(&events, text.trim_end_matches('\n')).unwrap();
    let size = std::fs::metadata(&events).unwrap().len();
    assert!(size > 9 << 20, "the file ({size} bytes) spans two read chunks");
    compare(&config, &events);
}
