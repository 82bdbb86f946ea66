//! Throughput and latency of the hot paths, measured here, never asserted
//! (the targets are in the issue and the README): decode+append on one core,
//! a refresh of all built-in queries, store bytes per event.
//!
//! `cargo bench --bench core` runs, in this order:
//! - `store_memory` (no timing): builds a ~1M-event store first, while the
//!   heap is still clean, and prints bytes/event from `Store::stats()` (by
//!   part) and from the process RSS growth (Linux `/proc/self/status`);
//! - `refresh/{100k,1M}/clock_only`: `Engine::gather` + `Engine::refresh` at
//!   a later T with no new event (the per-deal tables are reused);
//!   `refresh/{100k,1M}/one_new_event`: the same after one new event (its
//!   deal is derived again and the tables are rebuilt); and a per-query
//!   breakdown printed from `Snapshot::queries`;
//! - `ingest/decode`, `ingest/decode_append` (pushes of 256 lines: one core) and
//!   `ingest/decode_append_8192` (pushes as the file source makes them) over ~100k generated lines.
//!
//! The refresh runs on a two-worker runtime, as the server's refresh does
//! (src/app.rs). Whole-process figures (start → ready, RSS, the DuckDB
//! peer side by side) are `benches/serve.rs`. Pass a filter as usual
//! (`cargo bench --bench core -- ingest`); the stores are only built for
//! the benches that need them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use funnelwatch::config::Config;
use funnelwatch::engine::Engine;
use funnelwatch::event::Decoder;
use funnelwatch::source::generator::Generator;
use funnelwatch::store::{PartitionKey, Store};
use tokio::runtime::Runtime;

const DAY: i64 = 86_400_000;
/// 2026-10-01T00:00:00Z: the end of the generated history and the evaluation time T.
const END_MS: i64 = 1_790_812_800_000;
const SEED: u64 = 1;

/// A generated data set: `deals` deals created over the `days` before `END_MS`.
#[derive(Clone, Copy)]
struct Set {
    name: &'static str,
    deals: usize,
    days: u32,
}

/// ~12 events per deal: about 100k and 1M events.
const SMALL: Set = Set { name: "100k", deals: 8_300, days: 90 };
const LARGE: Set = Set { name: "1M", deals: 85_000, days: 180 };

fn config() -> Config {
    Config::from_toml("").expect("default config")
}

fn generator(config: &Config, set: Set) -> Generator {
    Generator::new(&config.pipelines, set.deals, set.days, SEED, END_MS - i64::from(set.days) * DAY)
}

/// All of a set's JSON lines up to `END_MS`.
fn lines(config: &Config, set: Set) -> Vec<String> {
    generator(config, set).advance(END_MS)
}

/// Decodes and inserts one line; panics on a rejection (the generator's lines are valid).
fn ingest(decoder: &Decoder, store: &mut Store, part: &PartitionKey, line: &str) {
    let e = decoder.decode(line.as_bytes(), END_MS).expect("generated lines decode");
    store.insert(part, &e, Some(END_MS)).expect("generated events are within retention");
}

/// A set's store, built a day at a time so that only one day of JSON is ever held.
/// Returns the store and the number of lines ingested (duplicates included).
fn build_store(config: &Config, set: Set) -> (Store, usize) {
    let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
    let mut store = Store::new(&config.pipelines, config.retention_ms, &config.breakdowns);
    let part = PartitionKey::new("bench", 0);
    let mut g = generator(config, set);
    let mut n = 0;
    let start = END_MS - i64::from(set.days) * DAY;
    for day in 1..=i64::from(set.days) {
        for line in g.advance((start + day * DAY).min(END_MS)) {
            ingest(&decoder, &mut store, &part, &line);
            n += 1;
        }
    }
    (store, n)
}

/// Resident set size of this process in bytes (Linux), if readable.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim();
    kb.parse::<usize>().ok().map(|kb| kb * 1024)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Builds the large store, prints its memory use and returns it for the refresh benches.
fn store_memory() -> Store {
    let config = config();
    let before = rss_bytes();
    let t = Instant::now();
    let (mut store, lines) = build_store(&config, LARGE);
    let built = t.elapsed();
    let after_build = rss_bytes();
    // The first refresh derives every deal and builds the per-deal tables.
    let t = Instant::now();
    let tables = store.refresh(END_MS);
    let derived = t.elapsed();
    drop(tables);
    let after_refresh = rss_bytes();
    let s = store.stats();
    eprintln!("\n== store_memory ({}: {} deals over {} days; load {})", LARGE.name, LARGE.deals, LARGE.days, load());
    eprintln!("  lines {lines}, rows {}, deals {}, built (generate+decode+insert) in {built:.2?}", s.rows, s.deals);
    eprintln!("  first refresh of the store (derive every deal, build the tables): {derived:.2?}");
    eprintln!("  Store::stats: {} bytes = {:.1} MiB = {:.1} bytes/event", s.bytes, mib(s.bytes), per(s.bytes, s.rows));
    for (part, bytes) in store.memory() {
        eprintln!("    {:>6.2} bytes/event  {part}", per(bytes, s.rows));
    }
    if let (Some(b), Some(a), Some(c)) = (before, after_build, after_refresh) {
        let (grow, grow2) = (a.saturating_sub(b), c.saturating_sub(b));
        eprintln!(
            "  RSS: {:.1} MiB before, +{:.1} MiB after building ({:.1} bytes/event), +{:.1} MiB after the first \
             refresh ({:.1} bytes/event)",
            mib(b),
            mib(grow),
            per(grow, s.rows),
            mib(grow2),
            per(grow2, s.rows),
        );
    }
    store
}

fn per(bytes: usize, rows: usize) -> f64 {
    bytes as f64 / rows.max(1) as f64
}

/// The refresh's runtime: two workers, as in the server.
fn refresh_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// One refresh at `t`: gather under the (here uncontended) store, then the queries.
fn run_refresh(rt: &Runtime, engine: &Engine, store: &mut Store, t: i64) -> funnelwatch::engine::Snapshot {
    let input = engine.gather(store, t);
    rt.block_on(engine.refresh(input, t)).expect("refresh")
}

/// Prints the per-query durations (median of `runs` refreshes), the slowest first,
/// and the whole refresh (gather, the queries in their waves, export).
fn breakdown(rt: &Runtime, engine: &Engine, store: &mut Store, runs: usize, label: &str) {
    let mut totals = Vec::new();
    let mut per_query: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..runs {
        let start = Instant::now();
        let snap = run_refresh(rt, engine, store, END_MS + i as i64);
        totals.push(start.elapsed().as_secs_f64());
        for (i, (file, result)) in snap.queries.iter().enumerate() {
            let secs = result.as_ref().unwrap_or_else(|e| panic!("{file} failed: {e}"));
            if per_query.len() <= i {
                per_query.push((file.clone(), Vec::new()));
            }
            per_query[i].1.push(*secs);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows: Vec<(String, f64)> = per_query.into_iter().map(|(f, mut v)| (f, median(&mut v))).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = median(&mut totals);
    let queries: f64 = rows.iter().map(|r| r.1).sum();
    eprintln!("\n== refresh breakdown {label} (median of {runs}; load {})", load());
    eprintln!(
        "  total {:.1} ms; the queries' own times add up to {:.1} ms (queries whose tables are made run at once)",
        total * 1e3,
        queries * 1e3,
    );
    for (file, secs) in &rows {
        eprintln!("  {:>8.2} ms  {:>5.1}%  {file}", secs * 1e3, 100.0 * secs / total);
    }
}

fn refresh(c: &mut Criterion, mut large: Option<Store>) {
    let config = config();
    let engine = Engine::new(&config).expect("built-in queries");
    let rt = refresh_runtime();
    let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
    let part = PartitionKey::new("bench", 0);
    for set in [SMALL, LARGE] {
        if !wanted(&format!("refresh/{}", set.name)) {
            continue;
        }
        let prebuilt = if set.name == LARGE.name { large.take() } else { None };
        let mut store = prebuilt.unwrap_or_else(|| build_store(&config, set).0);
        let rows = store.stats().rows;
        eprintln!("\n{}: {rows} events, {} deals", set.name, store.stats().deals);
        breakdown(&rt, &engine, &mut store, 5, set.name);

        let mut g = c.benchmark_group(format!("refresh/{}", set.name));
        g.sample_size(20).warm_up_time(Duration::from_secs(1));
        g.sampling_mode(SamplingMode::Flat);
        g.measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(rows as u64));
        let mut t = END_MS;
        g.bench_function("clock_only", |b| {
            b.iter(|| {
                t += 1;
                black_box(run_refresh(&rt, &engine, &mut store, t))
            })
        });
        let mut n = 0u64;
        g.bench_function("one_new_event", |b| {
            b.iter(|| {
                n += 1;
                t += 1;
                let line = format!(
                    r#"{{"event_id":"bench-{n}","deal_id":"bench-deal","type":"activity","occurred_at":{t},"activity":"call"}}"#
                );
                ingest(&decoder, &mut store, &part, &line);
                black_box(run_refresh(&rt, &engine, &mut store, t))
            })
        });
        g.finish();
    }
}

fn ingest_benches(c: &mut Criterion) {
    if !["ingest/decode", "ingest/decode_append", "ingest/decode_append_8192"].iter().any(|id| wanted(id)) {
        return;
    }
    let config = config();
    let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
    let lines = lines(&config, SMALL);
    let bytes: usize = lines.iter().map(String::len).sum();
    eprintln!("\ningest: {} lines, {:.0} bytes/line on average; load {}", lines.len(), per(bytes, lines.len()), load());
    let part = PartitionKey::new("bench", 0);

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(decoder.decode(black_box(l.as_bytes()), END_MS).expect("decodes"));
            }
        })
    });
    // Pushes of 256 lines are stored on one core (the store takes both from
    // 512 on); pushes of 8192 lines, as the file source makes, on both.
    for (name, push) in [("decode_append", 256), ("decode_append_8192", 8192)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Store::new(&config.pipelines, config.retention_ms, &config.breakdowns),
                |mut store| {
                    for chunk in lines.chunks(push) {
                        let decoded: Vec<_> = chunk.iter().map(|l| decoder.decode(l.as_bytes(), END_MS)).collect();
                        for r in store.insert_all(&part, &decoded, Some(END_MS)) {
                            r.expect("generated events are within retention");
                        }
                    }
                    store
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Whether a benchmark id passes the command line's filter, approximately as criterion
/// decides it (a substring rather than a regex): only to skip building stores nobody asked for.
fn wanted(id: &str) -> bool {
    const WITH_VALUE: [&str; 15] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--color",
        "--output-format",
        "--plotting-backend",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if WITH_VALUE.contains(&a.as_str()) {
            i += 1;
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
        }
        i += 1;
    }
    filter.is_none_or(|f| id.contains(f) || f.chars().any(|c| "^$.*+?()[]{}|\\".contains(c)))
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let large = ["store_memory", "refresh/1M"].iter().any(|id| wanted(id));
    refresh(&mut c, large.then(store_memory));
    ingest_benches(&mut c);
    c.final_summary();
}
