//! Kafka: one member of a consumer group over the configured topics.
//!
//! Kafka is the source of truth. On every assignment a partition is sought
//! back to the first offset at or after `T_wall − retention − max_clock_skew`
//! (the earliest offset with `clock = "event"`, or when the broker has no
//! answer) and rebuilt from the log; on revocation its events are dropped.
//! Offsets are stored only after the events are in the store and committed
//! by librdkafka every `auto.commit.interval.ms`, synchronously on revocation
//! and at shutdown. Offsets below the group's committed offset were processed
//! before (by this or another member): they are replayed into the store but
//! neither stored again (the committed offset never moves back) nor
//! dead-lettered again.
//!
//! The consumer runs on its own thread: librdkafka's rebalance and
//! statistics callbacks run inside `poll` and may block on the broker. A
//! second thread stores each polled batch while the next one is polled; the
//! partition table's lock makes a rebalance and the storing of a batch (its
//! epoch check, push and progress) happen one after the other, never interleaved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::watch;

use super::{Ingest, now_ms};
use crate::config::{Clock, Config, KafkaConfig};
use crate::event::{Reason, Rejection};
use crate::store::PartitionKey;

/// Broker calls made from the consumer thread give up after this long.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages handed to the store in one push, at most.
const BATCH: usize = 4096;

/// librdkafka settings for any client: the brokers, then the user's properties.
pub fn client_config(brokers: &str, properties: &std::collections::BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("client.id", "funnelwatch");
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// What the Kafka source takes from the configuration.
pub struct Settings {
    kafka: KafkaConfig,
    clock: Clock,
    retention_ms: i64,
    max_clock_skew_ms: i64,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        Ok(Settings {
            kafka: config.kafka.clone().context("--source kafka needs a [kafka] section in the configuration")?,
            clock: config.clock,
            retention_ms: config.retention_ms,
            max_clock_skew_ms: config.max_clock_skew_ms,
        })
    }
}

/// Runs the consumer until `shutdown` turns true.
pub async fn run(ingest: Ingest, settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let k = settings.kafka.clone();
    ingest.set_connected(false);
    let metrics = KafkaMetrics::new(ingest.registry(), &k);
    let dead_letters = match &k.dead_letter_topic {
        Some(topic) => Some(DeadLetters::new(&k, topic, metrics.clone())?),
        None => None,
    };
    let context = Context {
        ingest,
        settings,
        reported_caught_up: AtomicBool::new(false),
        metrics,
        parts: Mutex::new(HashMap::new()),
        assigned: AtomicBool::new(false),
        epochs: AtomicU64::new(0),
    };
    let mut config = client_config(&k.brokers, &k.properties);
    config
        .set("group.id", &k.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.offset.reset", "earliest");
    // Defaults the user's properties may override: statistics feed the lag and
    // connection metrics; a short queue backoff lets a rebuild fetch without
    // 1 s pauses each time librdkafka's prefetch queue fills (5x faster here);
    // a 10 s session (librdkafka: 45 s) lets a restarted instance rejoin its
    // group soon after a crash, when the dead member's session must expire.
    for (key, value) in
        [("statistics.interval.ms", "1000"), ("fetch.queue.backoff.ms", "10"), ("session.timeout.ms", "10000")]
    {
        if !k.properties.contains_key(key) {
            config.set(key, value);
        }
    }
    let consumer: BaseConsumer<Context> =
        config.create_with_context(context).context("cannot create the Kafka consumer")?;
    let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe")?;
    tracing::info!(brokers = %k.brokers, topics = ?k.topics, group = %k.group_id, "consuming from Kafka");

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("kafka".into()).spawn(move || {
        consume(&consumer, dead_letters.as_ref(), &shutdown);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            log_commit_error(&e);
        }
        drop(consumer); // leaves the group: the revocation drops and commits once more
        if let Some(d) = dead_letters {
            let _ = d.producer.flush(BROKER_TIMEOUT);
        }
        let _ = done_tx.send(());
    })?;
    let _ = done_rx.await;
    Ok(())
}

fn consume(consumer: &BaseConsumer<Context>, dead_letters: Option<&DeadLetters>, shutdown: &watch::Receiver<bool>) {
    let cx = consumer.context();
    // At most one polled batch waits for the storing thread.
    let (batches, polled) = std::sync::mpsc::sync_channel::<Vec<(BorrowedMessage<'_>, u64)>>(1);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("kafka-store".into())
            .spawn_scoped(s, move || {
                for batch in polled {
                    cx.push(consumer, dead_letters, batch);
                    cx.report_progress(consumer);
                }
            })
            .expect("spawn the storing thread");
        while !*shutdown.borrow() {
            // A batch of messages, each with the assignment count when it was
            // polled (assignments happen inside `poll`).
            let mut batch: Vec<(BorrowedMessage<'_>, u64)> = Vec::new();
            let mut timeout = Duration::from_millis(200);
            while batch.len() < BATCH {
                match consumer.poll(timeout) {
                    None => break,
                    Some(Ok(m)) => batch.push((m, cx.epochs.load(Ordering::SeqCst))),
                    Some(Err(e)) => log_error(&e, ""),
                }
                timeout = Duration::ZERO;
            }
            if batches.send(batch).is_err() {
                break;
            }
        }
        // Closes the channel, so the storing thread ends and the scope can join it.
        drop(batches);
    });
}

/// What the consumer knows of one assigned partition.
struct Part {
    /// The assignment count when this partition was assigned: messages
    /// polled before are discarded (the partition is rebuilt from its start).
    epoch: u64,
    /// The offset of the next message to store.
    next: i64,
    /// The high watermark listed at assignment (`None` if the broker did not answer).
    listed: Option<i64>,
    /// The partition is caught up once `next` reaches this: the larger of
    /// the listed high watermark and the one in the first fetch response.
    /// `None` until a fetch response arrived.
    target: Option<i64>,
    /// The group's committed offset at assignment (0 when none).
    committed: i64,
}

impl Part {
    fn caught_up(&self) -> bool {
        self.target.is_some_and(|t| self.next >= t)
    }
}

struct Context {
    ingest: Ingest,
    settings: Settings,
    /// What the source last told `ingest` about catching up.
    reported_caught_up: AtomicBool,
    metrics: KafkaMetrics,
    parts: Mutex<HashMap<PartitionKey, Part>>,
    /// The group has given this member an assignment (maybe empty).
    assigned: AtomicBool,
    /// Counts assignments, to tell a partition's successive assignments apart.
    epochs: AtomicU64,
}

impl Context {
    /// Records whether the brokers are reachable: from the statistics, and
    /// as soon as messages arrive (a rebuild can finish before the first
    /// statistics, and readiness needs both).
    fn set_connected(&self, connected: bool) {
        if self.ingest.set_connected(connected) != connected {
            if connected {
                tracing::info!("connected to the Kafka brokers");
            } else {
                tracing::warn!("the Kafka brokers are unreachable; serving the last snapshot");
            }
        }
        self.metrics.connected.set(connected as i64);
    }

    fn set_caught_up(&self, caught_up: bool) {
        self.reported_caught_up.store(caught_up, Ordering::SeqCst);
        self.ingest.set_caught_up(caught_up);
    }

    /// Pushes a polled batch, partition by partition in poll order; then
    /// dead-letters the rejections that are new to the group and stores the
    /// offsets.
    fn push(
        &self,
        consumer: &BaseConsumer<Context>,
        dead_letters: Option<&DeadLetters>,
        batch: Vec<(BorrowedMessage, u64)>,
    ) {
        // Groups by partition; a partition's messages keep their poll order.
        let mut groups: Vec<(PartitionKey, u64, Vec<&BorrowedMessage>)> = Vec::new();
        for (m, polled_at) in &batch {
            let same = |(k, e, _): &&mut (PartitionKey, u64, _)| {
                *e == *polled_at && k.partition == m.partition() && *k.topic == *m.topic()
            };
            match groups.iter_mut().find(same) {
                Some((_, _, msgs)) => msgs.push(m),
                None => groups.push((PartitionKey::new(m.topic(), m.partition()), *polled_at, vec![m])),
            }
        }
        for (key, polled_at, msgs) in groups {
            // Held until the messages are stored: a rebalance waits for them.
            let mut parts = self.parts.lock().expect("parts lock");
            let committed = match parts.get(&key) {
                Some(p) if p.epoch <= polled_at => p.committed,
                _ => continue, // revoked, or reassigned (and rebuilt from its start) since it was polled
            };
            self.set_connected(true);
            let pushed = self.ingest.push(&key, msgs.iter().map(|m| m.payload().unwrap_or_default()));
            let bytes: usize = msgs.iter().map(|m| m.payload_len() + m.key().map_or(0, <[u8]>::len)).sum();
            self.metrics.messages.with_label_values(&[&*key.topic]).inc_by(msgs.len() as u64);
            self.metrics.bytes.with_label_values(&[&*key.topic]).inc_by(bytes as u64);
            if let Some(d) = dead_letters {
                for (i, rejection) in &pushed.rejected {
                    if msgs[*i].offset() >= committed {
                        d.send(msgs[*i], rejection);
                    }
                }
            }
            let next = msgs.last().expect("a group has a message").offset() + 1;
            if let Some(p) = parts.get_mut(&key) {
                p.next = next;
            }
            if next > committed {
                let mut tpl = TopicPartitionList::new();
                let stored = tpl
                    .add_partition_offset(&key.topic, key.partition, Offset::Offset(next))
                    .and_then(|()| consumer.store_offsets(&tpl));
                if let Err(e) = stored {
                    tracing::warn!(topic = %key.topic, partition = key.partition, "cannot store offset {next}: {e}");
                }
            }
        }
    }

    /// Tells the server whether every assigned partition has caught up.
    fn report_progress(&self, consumer: &BaseConsumer<Context>) {
        // Held until readiness is set, so that a rebalance cannot come in between.
        let mut parts = self.parts.lock().expect("parts lock");
        let caught_up = self.assigned.load(Ordering::SeqCst) && {
            for (key, p) in parts.iter_mut().filter(|(_, p)| p.target.is_none()) {
                // The fetch response's high watermark also covers brokers whose
                // ListOffsets answer lags the log end (tansu answers the last
                // batch's base offset); Kafka's listed one alone would do.
                p.target = fetched_high_watermark(consumer, key).map(|h| h.max(p.listed.unwrap_or(0)));
            }
            parts.values().all(Part::caught_up)
        };
        if caught_up != self.reported_caught_up.load(Ordering::SeqCst) {
            if caught_up {
                tracing::info!("every assigned partition has caught up");
            }
            self.set_caught_up(caught_up);
        }
    }

    /// Where an assigned partition starts, and what it must reach to be caught up.
    fn plan(&self, consumer: &BaseConsumer<Context>, tpl: &TopicPartitionList) -> HashMap<PartitionKey, Part> {
        let config = &self.settings;
        let watermarks: HashMap<PartitionKey, (i64, i64)> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                let w = consumer.fetch_watermarks(e.topic(), e.partition(), BROKER_TIMEOUT);
                if let Err(err) = &w {
                    tracing::warn!(topic = e.topic(), partition = e.partition(), "no watermarks yet: {err}");
                }
                Some((PartitionKey::new(e.topic(), e.partition()), w.ok()?))
            })
            .collect();
        let by_time: HashMap<(String, i32), Offset> = match config.clock {
            Clock::Event => HashMap::new(),
            Clock::Wall => {
                let since = now_ms() - config.retention_ms - config.max_clock_skew_ms;
                let mut query = TopicPartitionList::new();
                for e in tpl.elements() {
                    query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(since)).expect("valid offset");
                }
                consumer.offsets_for_times(query, BROKER_TIMEOUT).map(|found| found.to_topic_map()).unwrap_or_else(
                    |e| {
                        tracing::warn!("offsets for times failed ({e}); starting from the earliest offsets");
                        HashMap::new()
                    },
                )
            }
        };
        let committed: HashMap<(String, i32), Offset> =
            consumer.committed_offsets(tpl.clone(), BROKER_TIMEOUT).map(|c| c.to_topic_map()).unwrap_or_default();
        let epoch = self.epochs.fetch_add(1, Ordering::SeqCst) + 1;
        tpl.elements()
            .iter()
            .map(|e| {
                let key = PartitionKey::new(e.topic(), e.partition());
                let tp = (e.topic().to_string(), e.partition());
                let (low, high) = watermarks.get(&key).copied().unzip();
                let next = match by_time.get(&tp) {
                    Some(Offset::Offset(o)) => *o,
                    Some(Offset::End) => high.unwrap_or(0),
                    _ => low.unwrap_or(0),
                };
                let committed = match committed.get(&tp) {
                    Some(Offset::Offset(o)) => *o,
                    _ => 0,
                };
                (key, Part { epoch, next, listed: high, target: None, committed })
            })
            .collect()
    }
}

impl ClientContext for Context {
    fn stats(&self, s: Statistics) {
        let connected = s.brokers.values().any(|b| b.state == "UP" && b.source != "internal" && b.source != "logical");
        self.set_connected(connected);
        let parts = self.parts.lock().expect("parts lock");
        for (key, p) in parts.iter() {
            let high = s.topics.get(&*key.topic).and_then(|t| t.partitions.get(&key.partition)).map(|sp| sp.hi_offset);
            if let Some(high) = high.filter(|h| *h >= 0) {
                self.metrics
                    .lag
                    .with_label_values(&[&*key.topic, &key.partition.to_string()])
                    .set((high - p.next).max(0));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        // Held for the whole rebalance: the storing thread waits.
        let mut parts = self.parts.lock().expect("parts lock");
        // Nothing is published while the assignment changes.
        self.set_caught_up(false);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                // The group coordinator answered: the brokers are reachable.
                self.set_connected(true);
                let plan = self.plan(consumer, tpl);
                for (key, part) in plan {
                    tracing::info!(topic = %key.topic, partition = key.partition, start = part.next, high_watermark = ?part.listed, committed = part.committed, "assigned; rebuilding");
                    tpl.set_partition_offset(&key.topic, key.partition, Offset::Offset(part.next))
                        .expect("partition is in the list");
                    self.ingest.drop_partition(&key);
                    parts.insert(key, part);
                }
                self.metrics.assigned.set(parts.len() as i64);
                self.assigned.store(true, Ordering::SeqCst);
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.metrics.rebalances.with_label_values(&["revoke"]).inc();
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    log_commit_error(&e);
                }
                for e in tpl.elements() {
                    let key = PartitionKey::new(e.topic(), e.partition());
                    tracing::info!(topic = %key.topic, partition = key.partition, "revoked; dropping its events");
                    self.ingest.drop_partition(&key);
                    parts.remove(&key);
                    let _ = self.metrics.lag.remove_label_values(&[&*key.topic, &key.partition.to_string()]);
                }
                self.metrics.assigned.set(parts.len() as i64);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    // Everything was revoked: not caught up until the next assignment.
                    self.assigned.store(false, Ordering::SeqCst);
                    consumer.unassign()
                }
            }
            _ => {
                tracing::error!("rebalance failed: {:?}", RDKafkaErrorCode::from(err));
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!("cannot apply the assignment: {e}");
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.commits.with_label_values(&["ok"]).inc(),
            Err(e) => {
                if log_commit_error(&e) {
                    self.metrics.commits.with_label_values(&["error"]).inc();
                }
            }
        }
    }
}

/// The high watermark of the partition's last fetch response, if any.
fn fetched_high_watermark(consumer: &BaseConsumer<Context>, key: &PartitionKey) -> Option<i64> {
    let topic = std::ffi::CString::new(&*key.topic).ok()?;
    let (mut low, mut high) = (-1, -1);
    // SAFETY: the client pointer is valid while `consumer` lives; the topic is a
    // NUL-terminated string and both out-pointers point to live i64s.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            key.partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// Connection failures are logged by librdkafka and shown by
/// `funnelwatch_kafka_connected`; anything else is a warning.
fn log_error(e: &KafkaError, reason: &str) {
    use RDKafkaErrorCode::{AllBrokersDown, BrokerTransportFailure};
    if matches!(e.rdkafka_error_code(), Some(AllBrokersDown | BrokerTransportFailure)) {
        tracing::debug!("Kafka: {e} {reason}");
    } else {
        tracing::warn!("Kafka: {e} {reason}");
    }
}

/// Logs a failed commit; returns false when it was no failure (nothing
/// stored since the last commit).
fn log_commit_error(e: &KafkaError) -> bool {
    let failed = e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset);
    if failed {
        tracing::warn!("offset commit failed: {e}");
    }
    failed
}

/// Kafka service metrics, registered only when Kafka is the source.
#[derive(Clone)]
struct KafkaMetrics {
    connected: IntGauge,
    assigned: IntGauge,
    lag: IntGaugeVec,
    messages: IntCounterVec,
    bytes: IntCounterVec,
    commits: IntCounterVec,
    rebalances: IntCounterVec,
    dead_letters: IntCounterVec,
    dead_letter_failures: IntCounter,
}

impl KafkaMetrics {
    /// Registers the metrics, with zero series for every topic and reason so
    /// that rates work from the start.
    fn new(r: &Registry, k: &KafkaConfig) -> KafkaMetrics {
        use crate::export::register as reg;
        let counters = |n: &str, h: &str, l: &[&str]| reg(r, IntCounterVec::new(Opts::new(n, h), l).expect("valid"));
        let m = KafkaMetrics {
            connected: reg(
                r,
                IntGauge::new("funnelwatch_kafka_connected", "1 while a Kafka broker is reachable.").expect("valid"),
            ),
            assigned: reg(
                r,
                IntGauge::new("funnelwatch_kafka_assigned_partitions", "Partitions assigned to this instance.")
                    .expect("valid"),
            ),
            lag: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "funnelwatch_kafka_consumer_lag",
                        "Messages between the high watermark and the next offset to be stored.",
                    ),
                    &["topic", "partition"],
                )
                .expect("valid"),
            ),
            messages: counters("funnelwatch_kafka_messages_total", "Kafka messages consumed.", &["topic"]),
            bytes: counters(
                "funnelwatch_kafka_bytes_total",
                "Bytes of Kafka message keys and payloads consumed.",
                &["topic"],
            ),
            commits: counters("funnelwatch_kafka_commits_total", "Offset commits, by result (ok, error).", &["result"]),
            rebalances: counters(
                "funnelwatch_kafka_rebalances_total",
                "Partition assignments and revocations.",
                &["kind"],
            ),
            dead_letters: counters(
                "funnelwatch_dead_letters_total",
                "Rejected messages delivered to the dead-letter topic, by reason.",
                &["reason"],
            ),
            dead_letter_failures: reg(
                r,
                IntCounter::new(
                    "funnelwatch_dead_letter_failures_total",
                    "Rejected messages that could not be delivered to the dead-letter topic.",
                )
                .expect("valid"),
            ),
        };
        for kind in ["assign", "revoke"] {
            m.rebalances.with_label_values(&[kind]);
        }
        for result in ["ok", "error"] {
            m.commits.with_label_values(&[result]);
        }
        for topic in &k.topics {
            m.messages.with_label_values(&[topic]);
            m.bytes.with_label_values(&[topic]);
        }
        if k.dead_letter_topic.is_some() {
            for reason in Reason::ALL {
                m.dead_letters.with_label_values(&[reason.as_str()]);
            }
        }
        m
    }
}

/// Counts deliveries of a producer; failures are logged at most every ten seconds.
pub struct Deliveries {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    last_log: Mutex<Option<Instant>>,
    on_delivered: Option<KafkaMetrics>,
}

impl Deliveries {
    fn new(on_delivered: Option<KafkaMetrics>) -> Deliveries {
        Deliveries { delivered: AtomicU64::new(0), failed: AtomicU64::new(0), last_log: Mutex::new(None), on_delivered }
    }

    fn failed(&self, what: &str, e: &KafkaError) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        if let Some(m) = &self.on_delivered {
            m.dead_letter_failures.inc();
        }
        let mut last = self.last_log.lock().expect("log lock");
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::error!("cannot produce {what}: {e}");
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The rejection reason, for dead letters.
    type DeliveryOpaque = Box<Option<&'static str>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reason: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
                if let (Some(m), Some(reason)) = (&self.on_delivered, *reason) {
                    m.dead_letters.with_label_values(&[reason]).inc();
                }
            }
            Err((e, _)) => self.failed("a message", e),
        }
    }
}

/// A producer that counts what it delivers.
pub type CountingProducer = ThreadedProducer<Deliveries>;

/// A producer for the `generate` and `publish` tools.
pub fn producer(
    brokers: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<CountingProducer> {
    client_config(brokers, properties)
        .create_with_context(Deliveries::new(None))
        .context("cannot create the Kafka producer")
}

/// Sends one message, waiting while the producer's queue is full.
pub fn send_blocking(p: &CountingProducer, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(None)).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(10)); // backpressure: wait for deliveries
            }
            Err((e, _)) => return p.context().failed("a message", &e),
        }
    }
}

/// Rejected messages, produced unchanged to the dead-letter topic with
/// headers naming the reason and where they came from. Never blocks.
struct DeadLetters {
    producer: CountingProducer,
    topic: String,
}

impl DeadLetters {
    fn new(k: &KafkaConfig, topic: &str, metrics: KafkaMetrics) -> anyhow::Result<DeadLetters> {
        let producer = client_config(&k.brokers, &k.properties)
            .create_with_context(Deliveries::new(Some(metrics)))
            .context("cannot create the dead-letter producer")?;
        Ok(DeadLetters { producer, topic: topic.to_string() })
    }

    fn send(&self, m: &BorrowedMessage, r: &Rejection) {
        let (partition, offset) = (m.partition().to_string(), m.offset().to_string());
        let headers = [
            ("funnelwatch.reason", r.reason.as_str()),
            ("funnelwatch.detail", &r.detail),
            ("funnelwatch.source.topic", m.topic()),
            ("funnelwatch.source.partition", &partition),
            ("funnelwatch.source.offset", &offset),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value) }));
        let mut record: BaseRecord<[u8], [u8], _> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(Some(r.reason.as_str()))).headers(headers);
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Err((e, _)) = self.producer.send(record) {
            self.producer.context().failed("a dead letter", &e);
        }
    }
}
