//! Kafka ingestion against a real broker: `FUNNELWATCH_TEST_BROKERS` (the
//! test command starts tansu and sets it; point it at Apache Kafka to run
//! these there). The broker-outage test starts its own tansu
//! (`FUNNELWATCH_TEST_TANSU`) behind a TCP proxy it can cut. Without a
//! broker these tests fail; they never skip.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(120);

fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// `serve --config CONFIG` (Kafka is the default source) with extra arguments.
fn serve(config: &Path, args: &[&str]) -> Server {
    let mut all = vec!["serve", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// The reference: the same events read from a file.
fn from_file(dir: &Path, events: &Path) -> Samples {
    let config = dir.join("file.toml");
    std::fs::write(&config, "").unwrap();
    let server = Server::replay(&config, events);
    business(&server)
}

fn business(server: &Server) -> Samples {
    samples(&server.metrics(), "crm_funnel_")
}

fn service(server: &Server, name: &str) -> f64 {
    samples(&server.metrics(), name).iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
}

/// Asserts two business outputs are identical, showing the first differences.
fn assert_same(got: &Samples, want: &Samples, what: &str) {
    assert!(want.len() > 100, "{what}: the reference has only {} series", want.len());
    let diff: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| (k, got.get(k), v))
        .chain(got.iter().filter(|(k, _)| !want.contains_key(*k)).map(|(k, v)| (k, Some(v), &f64::NAN)))
        .take(10)
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} vs {} series; first differences (key, got, want): {diff:#?}",
        got.len(),
        want.len()
    );
}

/// The generated events include spend, feedback and every dimension: a
/// comparison against `want` covers their families.
fn assert_covers_new_families(want: &Samples, what: &str) {
    for family in [
        "crm_funnel_acquisition_spend",
        "crm_funnel_customer_acquisition_cost",
        "crm_funnel_feedback_score_bucket",
        "crm_funnel_net_promoter_score",
        "crm_funnel_segment_win_rate_ratio",
    ] {
        assert!(want.keys().any(|(n, _)| n == family), "{what}: the reference has no {family} series");
    }
}

fn generated(dir: &Path, name: &str, deals: &str, seed: &str) -> PathBuf {
    let path = dir.join(name);
    generate(&path, &["--deals", deals, "--seed", seed, "--days", "60", "--until", "2026-11-01T00:00:00Z"]);
    path
}

fn concat(dir: &Path, name: &str, parts: &[&Path]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for p in parts {
        f.write_all(&std::fs::read(p).unwrap()).unwrap();
    }
    path
}

#[test]
fn kafka_equals_the_same_events_from_a_file() {
    let (brokers, topic) = (brokers(), unique("equal"));
    let dir = scratch("kafka-equal");
    let events = generated(&dir, "events.ndjson", "800", "11");
    create_topic(&brokers, &topic, 3);
    publish(&brokers, &topic, &events);

    let config = kafka_config(&dir, "kafka", &brokers, &topic, &unique("g"), "");
    let server = serve(&config, &["--clock", "event"]);
    server.wait_ready(WAIT);
    let got = business(&server);
    let m = server.metrics();
    assert_eq!(service(&server, "funnelwatch_kafka_assigned_partitions"), 3.0, "{m}");
    assert_eq!(service(&server, "funnelwatch_kafka_connected"), 1.0);
    assert_eq!(service(&server, "funnelwatch_kafka_messages_total"), file_lines(&events) as f64);
    let want = from_file(&dir, &events);
    assert_covers_new_families(&want, "kafka vs file");
    assert_same(&got, &want, "kafka vs file");
    // Caught up: no lag left on any partition once the statistics report it.
    poll(WAIT, "lag reported as 0", || {
        let lag = samples(&server.metrics(), "funnelwatch_kafka_consumer_lag");
        lag.len() == 3 && lag.values().all(|v| *v == 0.0)
    });
}

fn file_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.is_empty()).count()
}

/// Polls /readyz until 200; every /metrics read before must hold no business series.
fn wait_ready_exporting_nothing_before(server: &Server) {
    let mut first = None;
    poll(WAIT, "ready", || {
        // /metrics first: a 503 from /readyz after it shows it was read before ready
        // (the other order races with the refresh that makes the server ready).
        let early = business(server);
        let (status, _) = server.get("/readyz");
        first.get_or_insert(status);
        if status != 200 {
            assert!(early.is_empty(), "{} business series exported before ready", early.len());
        }
        status == 200
    });
    assert_eq!(first, Some(503), "a restarted instance must not be ready at once");
}

#[test]
fn kill_9_and_restart_rebuild_the_same_numbers() {
    let (brokers, topic, group) = (brokers(), unique("restart"), unique("g"));
    let dir = scratch("kafka-restart");
    let first = generated(&dir, "a.ndjson", "600", "21");
    let second = generated(&dir, "b.ndjson", "600", "22");
    create_topic(&brokers, &topic, 2);
    publish(&brokers, &topic, &first);
    let config = kafka_config(&dir, "kafka", &brokers, &topic, &group, "");

    let mut server = serve(&config, &["--clock", "event"]);
    server.wait_ready(WAIT);
    // Kill it mid-stream: while the second half is being published.
    let mut publisher = Command::new(BIN)
        .args(["publish", "--brokers", &brokers, "--topic", &topic])
        .arg(&second)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.child.kill().unwrap();
    let _ = server.child.wait();
    assert!(publisher.wait().unwrap().success());

    let want = from_file(&dir, &concat(&dir, "all.ndjson", &[&first, &second]));
    let server = serve(&config, &["--clock", "event"]);
    wait_ready_exporting_nothing_before(&server);
    assert_covers_new_families(&want, "after kill -9 mid-stream");
    assert_same(&business(&server), &want, "after kill -9 mid-stream");

    let mut child = server;
    child.child.kill().unwrap();
    let _ = child.child.wait();
    let server = serve(&config, &["--clock", "event"]);
    wait_ready_exporting_nothing_before(&server);
    assert_same(&business(&server), &want, "after a second kill -9");
}

/// A large partition: while its replay runs, /readyz is 503 and nothing is
/// exported; the first 200 already holds every event and the numbers of
/// the whole file.
#[test]
fn readiness_waits_for_the_whole_rebuild_of_a_large_partition() {
    let (brokers, topic) = (brokers(), unique("large"));
    let dir = scratch("kafka-large");
    let events = generated(&dir, "events.ndjson", "40000", "31");
    create_topic(&brokers, &topic, 1);
    publish(&brokers, &topic, &events);
    let reference = {
        let config = dir.join("file.toml");
        std::fs::write(&config, "").unwrap();
        Server::replay(&config, &events).metrics()
    };
    let (want, total) = (samples(&reference, "crm_funnel_"), samples(&reference, "funnelwatch_store_rows"));

    let config = kafka_config(&dir, "kafka", &brokers, &topic, &unique("g"), "");
    let server = serve(&config, &["--clock", "event"]);
    let mut partial = 0;
    poll(WAIT, "ready", || {
        // /metrics before /readyz: a 503 after it shows it was read before ready
        // (the other order races with the refresh that makes the server ready).
        let early = server.metrics();
        let ready = server.get("/readyz").0 == 200;
        if ready {
            let rows = samples(&server.metrics(), "funnelwatch_store_rows");
            assert_eq!(rows, total, "ready with only part of the partition replayed");
        } else {
            let business = samples(&early, "crm_funnel_");
            assert!(business.is_empty(), "{} business series exported during the rebuild", business.len());
            let rows = samples(&early, "funnelwatch_store_rows");
            if rows.values().any(|&r| r > 0.0) && rows != total {
                partial += 1;
            }
        }
        ready
    });
    assert_covers_new_families(&want, "after the rebuild");
    assert_same(&business(&server), &want, "after the rebuild");
    eprintln!("observed {partial} scrapes of a half-rebuilt store, none of them ready");
}

/// Series that add up across instances: everything but ratios (cost per
/// lead, acquisition cost and net promoter score are ratios too), quantiles and T.
fn additive(samples: &Samples) -> Samples {
    const RATIOS: [&str; 3] = ["_cost_per_lead", "_customer_acquisition_cost", "_net_promoter_score"];
    samples
        .iter()
        .filter(|((n, _), _)| {
            !n.ends_with("_ratio")
                && !RATIOS.iter().any(|r| n.ends_with(r))
                && !n.contains("_quantile_")
                && !n.contains("evaluation_timestamp")
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// `parts` summed series by series equals `whole` (sums of amounts to 1e-9).
fn sums_equal(parts: &[Samples], whole: &Samples) -> Result<(), String> {
    let mut sum = Samples::new();
    for p in parts {
        for (k, v) in additive(p) {
            *sum.entry(k).or_default() += v;
        }
    }
    let whole = additive(whole);
    let mut diff = Vec::new();
    for k in whole.keys().chain(sum.keys()) {
        let (a, b) = (sum.get(k).copied().unwrap_or(0.0), whole.get(k).copied().unwrap_or(0.0));
        if (a - b).abs() > 1e-9 * b.abs().max(1.0) {
            diff.push(format!("{k:?}: sum {a} vs single {b}"));
        }
    }
    if whole.len() < 100 {
        diff.push(format!("only {} additive series", whole.len()));
    }
    if diff.is_empty() { Ok(()) } else { Err(diff[..diff.len().min(10)].join("\n")) }
}

/// Polls until the sums hold (the instances refresh at different wall-clock
/// instants, so an event on a window edge may briefly count in one only).
fn poll_sums(parts: &[&Server], whole: &Server, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let outputs: Vec<Samples> = parts.iter().map(|s| business(s)).collect();
        match sums_equal(&outputs, &business(whole)) {
            Ok(()) => return,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{what}: sums never held; last differences:\n{e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_instances_in_one_group_sum_to_a_single_instance() {
    let (brokers, topic) = (brokers(), unique("scale"));
    let dir = scratch("kafka-scale");
    let events = generated(&dir, "events.ndjson", "1000", "31");
    create_topic(&brokers, &topic, 4);
    publish(&brokers, &topic, &events);

    // Fixed segments (docs/metrics.md §5.4): every instance exports the same
    // ones, so each segment's counts add up exactly (top-N ones need not).
    let fixed = |path: std::path::PathBuf| {
        let owners: Vec<String> = GENERATED_OWNERS.iter().map(|o| format!("{o:?}")).collect();
        let segments = format!(
            "\n[breakdown_segments]\nsource = [\"website\", \"referral\", \"trade_show\", \"cold_call\", \"partner\", \"ads\"]\n\
             team = [\"enterprise\", \"mid-market\", \"smb\", \"channel\"]\nregion = [\"华东\", \"华北\", \"华南\", \"西部\", \"海外\"]\n\
             owner = [{}]\n",
            owners.join(", ")
        );
        let text = std::fs::read_to_string(&path).unwrap() + &segments;
        std::fs::write(&path, text).unwrap();
        path
    };
    let single = serve(&fixed(kafka_config(&dir, "single", &brokers, &topic, &unique("single"), "")), &[]);
    let group = fixed(kafka_config(&dir, "group", &brokers, &topic, &unique("pair"), ""));
    let a = serve(&group, &[]);
    let b = serve(&group, &[]);
    single.wait_ready(WAIT);
    poll(WAIT, "both members ready with 4 partitions between them", || {
        let (pa, pb) = (
            service(&a, "funnelwatch_kafka_assigned_partitions"),
            service(&b, "funnelwatch_kafka_assigned_partitions"),
        );
        pa > 0.0 && pb > 0.0 && pa + pb == 4.0 && a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    poll_sums(&[&a, &b], &single, "A + B = single");

    assert!(b.stop_with("TERM").success());
    poll(WAIT, "A takes over every partition and is ready", || {
        service(&a, "funnelwatch_kafka_assigned_partitions") == 4.0 && a.get("/readyz").0 == 200
    });
    poll_sums(&[&a], &single, "A alone = single");
}

/// The owners `funnelwatch generate` assigns (src/source/generator.rs).
const GENERATED_OWNERS: [&str; 20] = [
    "zhang.wei",
    "wang.fang",
    "li.na",
    "liu.yang",
    "chen.jie",
    "yang.li",
    "zhao.lei",
    "huang.min",
    "zhou.tao",
    "wu.xia",
    "xu.jing",
    "sun.hao",
    "ma.lin",
    "zhu.hong",
    "hu.bin",
    "guo.qiang",
    "he.yan",
    "lin.feng",
    "luo.hui",
    "gao.ming",
];

/// Messages no producer should send, with the reason funnelwatch gives.
const BAD: &[(&str, &str)] = &[
    ("{\"event_id\": \"x1\", ", "invalid_json"),
    ("", "invalid_json"),
    (r#"{"deal_id":"bad-1","type":"activity","occurred_at":1790000000000,"activity":"call"}"#, "missing_field"),
    (r#"{"event_id":"x5","deal_id":"bad-2","type":"deal_merged","occurred_at":1790000000000}"#, "unknown_type"),
    (
        r#"{"event_id":"x7","deal_id":"bad-3","type":"stage_changed","occurred_at":1790000000000,"stage":"closing"}"#,
        "unknown_stage",
    ),
    (r#"{"event_id":"x8","deal_id":"bad-4","type":"deal_lost","occurred_at":4102444800000}"#, "future_timestamp"),
];

#[test]
fn rejected_messages_land_in_the_dead_letter_topic_once() {
    let (brokers, topic, dlq, group) = (brokers(), unique("dlq-src"), unique("dlq"), unique("g"));
    let dir = scratch("kafka-dlq");
    let good = generated(&dir, "good.ndjson", "300", "41");
    create_topic(&brokers, &topic, 2);
    create_topic(&brokers, &dlq, 1);
    publish(&brokers, &topic, &good);
    // The bad messages, with the keys a CRM would give them; the empty one with no payload at all.
    let producer: rdkafka::producer::BaseProducer =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    for (payload, _) in BAD {
        let key = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["deal_id"].as_str().map(String::from));
        let mut record = rdkafka::producer::BaseRecord::<str, str>::to(&topic);
        if !payload.is_empty() {
            record = record.payload(payload);
        }
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        producer.send(record).map_err(|(e, _)| e).expect("queue a bad message");
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).expect("bad messages delivered");

    let config = kafka_config(&dir, "kafka", &brokers, &topic, &group, &format!("dead_letter_topic = \"{dlq}\""));
    let server = serve(&config, &["--clock", "event"]);
    server.wait_ready(WAIT);
    // Good data is unaffected: the same numbers as the good events alone.
    assert_same(&business(&server), &from_file(&dir, &good), "good data next to bad messages");
    poll(WAIT, "dead letters delivered", || service(&server, "funnelwatch_dead_letters_total") == BAD.len() as f64);
    assert_eq!(service(&server, "funnelwatch_dead_letter_failures_total"), 0.0);

    let letters = read_all(&brokers, &dlq);
    assert_eq!(letters.len(), BAD.len());
    for (payload, reason) in BAD {
        let found = letters
            .iter()
            .find(|l| l.payload == payload.as_bytes())
            .unwrap_or_else(|| panic!("no dead letter for {payload:?}"));
        assert_eq!(found.header("funnelwatch.reason"), *reason, "{payload}");
        assert_eq!(found.header("funnelwatch.source.topic"), topic);
        assert!(found.header("funnelwatch.source.offset").parse::<i64>().is_ok());
        let key = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["deal_id"].as_str().map(String::from));
        assert_eq!(found.key.as_deref(), key.as_deref().map(str::as_bytes), "key of {payload}");
    }
    for (_, reason) in BAD {
        let counted = samples(&server.metrics(), "funnelwatch_events_rejected_total")
            [&("funnelwatch_events_rejected_total".to_string(), vec![("reason".to_string(), reason.to_string())])];
        assert!(counted >= 1.0, "{reason} not counted");
    }

    // A graceful restart replays the partitions but sends no dead letter twice.
    assert!(server.stop_with("TERM").success());
    let server = serve(&config, &["--clock", "event"]);
    server.wait_ready(WAIT);
    assert_eq!(service(&server, "funnelwatch_events_rejected_total"), BAD.len() as f64, "rejections are counted again");
    assert_eq!(service(&server, "funnelwatch_dead_letters_total"), 0.0, "dead letters sent again after a restart");
    assert_eq!(read_all(&brokers, &dlq).len(), BAD.len(), "the dead-letter topic holds each bad message once");
}

struct Letter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Letter {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no header {name}"))
    }
}

/// Reads partition 0 of `topic` to its end.
fn read_all(brokers: &str, topic: &str) -> Vec<Letter> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    // Drain what is there on each try: the poll helper waits between tries.
    poll(WAIT, "the end of the topic", || {
        loop {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let headers = m.headers().map_or(vec![], |h| {
                        h.iter()
                            .map(|x| {
                                (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
                            })
                            .collect()
                    });
                    let (key, payload) = (m.key().map(<[u8]>::to_vec), m.payload().unwrap_or_default().to_vec());
                    out.push(Letter { key, payload, headers });
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return true,
                _ => return false,
            }
        }
    });
    out
}

/// A TCP proxy in front of a broker that can be cut and restored, so the
/// broker "goes away" and comes back with its data.
struct Proxy {
    port: u16,
    target: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(port: u16, target: u16) -> Proxy {
        let p = Proxy { port, target, stop: Arc::new(AtomicBool::new(false)), conns: Arc::default() };
        p.open();
        p
    }

    fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("proxy port");
        listener.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (stop, conns, target) = (self.stop.clone(), self.conns.clone(), self.target);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                conns.lock().unwrap().extend([client, server]);
            }
        });
    }

    /// Refuses new connections and drops the open ones.
    fn cut(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // The accept loop sees the flag within 10 ms and drops the listener.
        poll(WAIT, "proxy port closed", || TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A tansu broker of this test's own, advertising the proxy's port.
fn own_broker(proxy_port: u16) -> (Child, u16) {
    let tansu = std::env::var("FUNNELWATCH_TEST_TANSU").unwrap_or_else(|_| {
        panic!("FUNNELWATCH_TEST_TANSU is not set: run the test command from README.md (it installs tansu)")
    });
    let port = free_port();
    let child = Command::new(tansu)
        .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{proxy_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    poll(WAIT, "tansu listening", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    (child, port)
}

#[test]
fn broker_outage_keeps_serving_and_converges_after_return() {
    let proxy_port = free_port();
    let (mut broker, broker_port) = own_broker(proxy_port);
    let proxy = Proxy::start(proxy_port, broker_port);
    let brokers = format!("127.0.0.1:{proxy_port}");
    let topic = unique("outage");
    let dir = scratch("kafka-outage");
    let first = generated(&dir, "a.ndjson", "400", "51");
    let second = generated(&dir, "b.ndjson", "400", "52");
    create_topic(&brokers, &topic, 2);
    publish(&brokers, &topic, &first);

    let server = serve(&kafka_config(&dir, "kafka", &brokers, &topic, &unique("g"), ""), &["--clock", "event"]);
    server.wait_ready(WAIT);
    let before = business(&server);
    assert_same(&before, &from_file(&dir, &first), "before the outage");

    proxy.cut();
    poll(WAIT, "disconnection reported", || service(&server, "funnelwatch_kafka_connected") == 0.0);
    let (status, body) = server.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unreachable"), "{body}");
    assert_eq!(server.get("/healthz").0, 200);
    assert_same(&business(&server), &before, "during the outage the last snapshot is served");

    proxy.open();
    publish(&brokers, &topic, &second);
    let want = from_file(&dir, &concat(&dir, "all.ndjson", &[&first, &second]));
    poll(WAIT, "numbers converge after the broker returns", || {
        service(&server, "funnelwatch_kafka_connected") == 1.0
            && server.get("/readyz").0 == 200
            && business(&server) == want
    });
    let _ = broker.kill();
    let _ = broker.wait();
}

#[test]
fn generate_publishes_history_then_live_and_reports_counts() {
    let (brokers, topic) = (brokers(), unique("generated"));
    create_topic(&brokers, &topic, 1);
    let mut child = Command::new(BIN)
        .args(["generate", "--brokers", &brokers, "--topic", &topic, "--deals", "50", "--days", "5", "--rate", "5000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("history published"), "{line}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let published: usize = rest
        .split("published ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {rest:?}"));
    assert!(rest.contains("(0 failed)"), "{rest}");
    assert!(child.wait().unwrap().success(), "{rest}");
    let letters = read_all(&brokers, &topic);
    assert!(published > 100, "{rest}");
    assert_eq!(letters.len(), published, "the topic holds what generate reported");
    // Keyed by deal_id: every message's key is its deal.
    for l in &letters {
        let v: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
        assert_eq!(l.key.as_deref(), v["deal_id"].as_str().map(str::as_bytes));
    }
}

#[test]
fn publish_reports_failures_and_exits_1() {
    let dir = scratch("kafka-publish-fail");
    let events = generated(&dir, "events.ndjson", "5", "61");
    let dead = format!("127.0.0.1:{}", free_port());
    let out = Command::new(BIN)
        .args(["publish", "--brokers", &dead, "--topic", "nowhere", "-X", "message.timeout.ms=1000"])
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!("published 0 events to nowhere ({} failed)", file_lines(&events));
    assert!(stderr.contains(&want), "want {want:?} in {stderr}");
}

#[test]
fn a_bad_librdkafka_property_stops_the_server_with_its_name() {
    let dir = scratch("kafka-bad-property");
    let config = kafka_config(&dir, "bad", &brokers(), "t", "g", "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\"no.such.property\" = \"x\"\n");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot create the Kafka consumer") && stderr.contains("no.such.property"), "{stderr}");
}
