//! Where events come from. Every source hands raw messages to [`Ingest`],
//! the one path into the store: decode, validate, dedup, count, and log
//! rejections at a bounded rate. A source calls [`Ingest::caught_up`] once
//! it has delivered its backlog (a file read to the end, the generator's
//! history); readiness waits for that. The Kafka source also reports falling
//! behind (a rebalance) and catching up again through [`App::set_caught_up`].
//! A source that ends (a FIFO closed) leaves the server running on what it
//! has; a source that fails stops the server with its error.

pub mod file;
pub mod generator;
pub mod kafka;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::app::App;
use crate::config::Clock;
use crate::event::{Reason, Rejection};
use crate::store::{Inserted, PartitionKey};

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
    pub async fn run(self, ingest: Ingest, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        match self {
            Source::File(path) => file::run(&path, &ingest, shutdown).await,
            Source::Generator { deals, days, seed } => generator_source(ingest, deals, days, seed, shutdown).await,
            Source::Kafka => kafka::run(ingest, shutdown).await,
        }
    }
}

async fn generator_source(
    ingest: Ingest,
    deals: usize,
    days: u32,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let part = PartitionKey::new("generator", 0);
    let now = now_ms();
    let mut g =
        generator::Generator::new(ingest.app.decoder.pipelines(), deals, days, seed, now - days as i64 * 86_400_000);
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

/// The handle sources push messages through.
#[derive(Clone)]
pub struct Ingest {
    app: Arc<App>,
}

impl Ingest {
    pub fn new(app: Arc<App>) -> Ingest {
        Ingest { app }
    }

    /// Decodes and stores a batch of messages of one partition.
    pub fn push<'a>(&self, part: &PartitionKey, messages: impl IntoIterator<Item = &'a [u8]>) -> Pushed {
        let now = now_ms();
        let decoded: Vec<_> = messages.into_iter().map(|m| self.app.decoder.decode(m, now)).collect();
        let t = match self.app.config.clock {
            Clock::Wall => Some(now),
            Clock::Event => None,
        };
        let mut out = Pushed::default();
        let max = {
            let mut store = self.app.store.lock().expect("store lock");
            for (i, d) in decoded.into_iter().enumerate() {
                match d.and_then(|e| store.insert(part, &e, t)) {
                    Ok(Inserted::Accepted) => out.accepted += 1,
                    Ok(Inserted::Duplicate) => out.duplicates += 1,
                    Err(r) => out.rejected.push((i, r)),
                }
            }
            store.max_occurred_at()
        };
        let m = &self.app.metrics;
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
            self.app.rejection_log.log(part, r);
        }
        out
    }

    /// The source has delivered its backlog; the next refresh makes the server ready.
    pub fn caught_up(&self) {
        self.app.set_caught_up(true);
    }
}

/// Logs rejections at most once per reason every ten seconds, with a count
/// of those not logged in between.
#[derive(Default)]
pub struct RejectionLog {
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
