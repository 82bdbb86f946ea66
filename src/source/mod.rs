//! Where events come from. Every source hands raw messages to [`Ingest`],
//! the one path into the store: decode, validate, dedup, count, and log
//! rejections at a bounded rate. `Ingest` is all a source sees of the
//! server: push, drop a partition, caught up or behind, connected, and the
//! registry for its own metrics. A source calls [`Ingest::caught_up`] once
//! it has delivered its backlog (a file read to the end, the generator's
//! history); readiness waits for that. The Kafka source also reports falling
//! behind (a rebalance) and catching up again ([`Ingest::set_caught_up`]).
//! A source that ends (a FIFO closed) leaves the server running on what it
//! has; a source that fails stops the server with its error.

pub mod file;
pub mod generator;
pub mod kafka;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{Clock, Config};
use crate::event::{Decoder, Event, Reason, Rejection};
use crate::export::ServiceMetrics;
use crate::state::State;
use crate::store::{Inserted, PartitionKey, Store};

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The source a server reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Replays an NDJSON file, then follows lines appended to it.
    File(PathBuf),
    /// Synthetic CRM traffic: `days` of history for `deals` deals, then live.
    Generator { deals: usize, days: u32, seed: u64 },
    /// The consumer group of the configuration's `[kafka]` section.
    Kafka,
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Source, String> {
        if let Some(path) = s.strip_prefix("file:") {
            return Ok(Source::File(path.into()));
        }
        match s {
            "generator" => Ok(Source::Generator { deals: 3000, days: 90, seed: 1 }),
            "kafka" => Ok(Source::Kafka),
            _ => Err(format!("unknown source {s:?}: use kafka, file:PATH or generator")),
        }
    }
}

impl Source {
    /// Runs until the source ends (a file is read) or `shutdown` turns true.
    /// Each source takes its own part of the configuration.
    pub async fn run(self, ingest: Ingest, config: &Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        match self {
            Source::File(path) => file::run(&path, &ingest, shutdown).await,
            Source::Generator { deals, days, seed } => {
                generator_source(ingest, &config.pipelines, deals, days, seed, shutdown).await
            }
            Source::Kafka => kafka::run(ingest, kafka::Settings::from_config(config)?, shutdown).await,
        }
    }
}

async fn generator_source(
    ingest: Ingest,
    pipelines: &[crate::config::Pipeline],
    deals: usize,
    days: u32,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let part = PartitionKey::new("generator", 0);
    let now = now_ms();
    let mut g = generator::Generator::new(pipelines, deals, days, seed, now - days as i64 * 86_400_000);
    let history = g.advance(now);
    for chunk in history.chunks(4096) {
        ingest.push(&part, chunk.iter().map(|l| l.as_bytes()));
    }
    ingest.caught_up();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        let lines = g.advance(now_ms());
        ingest.push(&part, lines.iter().map(|l| l.as_bytes()));
    }
}

/// What one push did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub accepted: usize,
    pub duplicates: usize,
    /// Index of each rejected message in the push, with its rejection.
    pub rejected: Vec<(usize, Rejection)>,
}

/// A batch of messages decoded by [`Ingest::decode`], for [`Ingest::store`].
pub struct Decoded<'a> {
    events: Vec<Result<Event<'a>, Rejection>>,
    /// The wall clock when they were decoded.
    now: i64,
}

/// The handle sources push messages through.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    state: Arc<State>,
    decoder: Decoder,
    clock: Clock,
    metrics: Arc<ServiceMetrics>,
    rejection_log: RejectionLog,
}

/// Pushes at least this large are decoded on two threads.
const PARALLEL_DECODE: usize = 512;

impl Ingest {
    pub fn new(config: &Config, store: Arc<Mutex<Store>>, state: Arc<State>, metrics: Arc<ServiceMetrics>) -> Ingest {
        let decoder = Decoder::new(&config.pipelines, config.max_clock_skew_ms);
        let rejection_log = RejectionLog::default();
        Ingest { inner: Arc::new(Inner { store, state, decoder, clock: config.clock, metrics, rejection_log }) }
    }

    /// Decodes and stores a batch of messages of one partition.
    pub fn push<'a>(&self, part: &PartitionKey, messages: impl IntoIterator<Item = &'a [u8]>) -> Pushed {
        let messages: Vec<&[u8]> = messages.into_iter().collect();
        self.store(part, self.decode(&messages))
    }

    /// Decodes a batch of messages (a large batch on both cores) without
    /// touching the store, so that a source can decode its next batch while
    /// [`Ingest::store`] stores this one.
    pub fn decode<'a>(&self, messages: &[&'a [u8]]) -> Decoded<'a> {
        let now = now_ms();
        let decode = |ms: &[&'a [u8]]| -> Vec<Result<Event<'a>, Rejection>> {
            ms.iter().map(|m| self.inner.decoder.decode(m, now)).collect()
        };
        let events = if messages.len() >= PARALLEL_DECODE {
            let (a, b) = messages.split_at(messages.len() / 2);
            std::thread::scope(|s| {
                let second = s.spawn(|| decode(b));
                let mut first = decode(a);
                first.extend(second.join().expect("decoding does not panic"));
                first
            })
        } else {
            decode(messages)
        };
        Decoded { events, now }
    }

    /// Stores a decoded batch of one partition, as in its order.
    pub fn store(&self, part: &PartitionKey, decoded: Decoded) -> Pushed {
        let me = &*self.inner;
        let Decoded { events, now } = decoded;
        let t = match me.clock {
            Clock::Wall => Some(now),
            Clock::Event => None,
        };
        let mut out = Pushed::default();
        let max = {
            let mut store = me.store.lock().expect("store lock");
            for (i, d) in store.insert_all(part, &events, t).into_iter().enumerate() {
                match d {
                    Ok(Inserted::Accepted) => out.accepted += 1,
                    Ok(Inserted::Duplicate) => out.duplicates += 1,
                    Err(r) => out.rejected.push((i, r)),
                }
            }
            store.max_occurred_at()
        };
        let m = &me.metrics;
        if out.accepted > 0 {
            m.events_ingested.inc_by(out.accepted as u64);
            m.last_ingest_timestamp.set(now as f64 / 1000.0);
        }
        if let Some(max) = max {
            m.last_event_timestamp.set(max as f64 / 1000.0);
        }
        m.events_duplicate.inc_by(out.duplicates as u64);
        for (_, r) in &out.rejected {
            m.events_rejected.with_label_values(&[r.reason.as_str()]).inc();
            me.rejection_log.log(part, r);
        }
        out
    }

    /// Forgets everything a partition held (a Kafka partition revoked or reassigned).
    pub fn drop_partition(&self, part: &PartitionKey) {
        self.inner.store.lock().expect("store lock").drop_partition(part);
    }

    /// The source has delivered its backlog; the next refresh makes the server ready.
    pub fn caught_up(&self) {
        self.set_caught_up(true);
    }

    /// The source reports whether it holds its backlog (false: a rebuild is under way).
    pub fn set_caught_up(&self, caught_up: bool) {
        self.inner.state.set_caught_up(caught_up);
    }

    /// The source reports whether it reaches its brokers; returns the previous value.
    pub fn set_connected(&self, connected: bool) -> bool {
        self.inner.state.set_connected(connected)
    }

    /// Where a source registers its own metrics.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.inner.metrics.registry
    }
}

/// Logs rejections at most once per reason every ten seconds, with a count
/// of those not logged in between.
#[derive(Default)]
struct RejectionLog {
    last: std::sync::Mutex<Vec<(Reason, Instant, u64)>>,
}

impl RejectionLog {
    fn log(&self, part: &PartitionKey, r: &Rejection) {
        let mut last = self.last.lock().expect("log lock");
        let now = Instant::now();
        match last.iter_mut().find(|(reason, _, _)| *reason == r.reason) {
            Some((_, at, suppressed)) if now.duration_since(*at) < Duration::from_secs(10) => *suppressed += 1,
            Some((_, at, suppressed)) => {
                tracing::warn!(topic = %part.topic, partition = part.partition, suppressed = *suppressed, "rejected event: {r}");
                *at = now;
                *suppressed = 0;
            }
            None => {
                tracing::warn!(topic = %part.topic, partition = part.partition, "rejected event: {r}");
                last.push((r.reason, now, 0));
            }
        }
    }
}
