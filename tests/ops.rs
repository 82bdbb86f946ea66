//! The operations kit in `dashboards/`, `docker-compose.yml` and
//! `Dockerfile`, checked with real tools: promtool (check and unit tests of
//! the rules), a real Prometheus server scraping funnelwatch with the shipped
//! rules, the Grafana dashboard's queries against what funnelwatch and the
//! rules export, and the compose stack's references.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_yaml::Value as Yaml;

fn repo(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_and_config_and_the_rule_tests_pass() {
    let promtool = tool("promtool");
    let dir = repo("dashboards/prometheus");
    let out = run_ok(Command::new(&promtool).args(["check", "rules", "rules.yml"]).current_dir(&dir));
    assert!(out.contains("SUCCESS"), "{out}");
    run_ok(Command::new(&promtool).args(["check", "config", "prometheus.yml"]).current_dir(&dir));
    let out = run_ok(Command::new(&promtool).args(["test", "rules", "rules.test.yml"]).current_dir(&dir));
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The recording rules' names.
fn recorded_names() -> BTreeSet<String> {
    let rules = yaml("dashboards/prometheus/rules.yml");
    let names: BTreeSet<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["record"].as_str().map(String::from))
        .collect();
    assert!(names.len() > 10, "{names:?}");
    names
}

/// A Prometheus server of the test's own, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second with the shipped rules, evaluated every second.
    fn start(dir: &Path, target: std::net::SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        let rules = repo("dashboards/prometheus/rules.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: funnelwatch\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, url: format!("http://127.0.0.1:{port}") };
        poll(Duration::from_secs(60), "prometheus ready", || get(&format!("{}/-/ready", p.url)).0 == 200);
        p
    }

    /// An instant query: each series' labels (without `__name__`) and value.
    fn query(&self, q: &str) -> BTreeMap<Labels, f64> {
        let (status, body) =
            get(&format!("{}/api/v1/query?{}", self.url, serde_urlencoded::to_string([("query", q)]).unwrap()));
        assert_eq!(status, 200, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }
}

/// Prometheus's `histogram_quantile` (linear interpolation within the bucket) over `(le, count)`.
fn histogram_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if buckets.len() < 2 || total == 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let b = buckets.iter().position(|(_, c)| *c >= rank).unwrap();
    if b == buckets.len() - 1 {
        return buckets[b - 1].0;
    }
    let (start, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
    start + (buckets[b].0 - start) * ((rank - below) / (buckets[b].1 - below))
}

type Labels = Vec<(String, String)>;

/// The samples of `family` keyed by their labels.
fn family(samples: &Samples, family: &str) -> BTreeMap<Labels, f64> {
    samples.iter().filter(|((n, _), _)| n == family).map(|((_, l), v)| (l.clone(), *v)).collect()
}

/// Buckets of a histogram family grouped by their labels without `le`.
fn buckets(samples: &Samples, family: &str) -> BTreeMap<Labels, Vec<(f64, f64)>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for ((n, labels), v) in samples {
        if n == &format!("{family}_bucket") {
            let le = labels.iter().find(|(k, _)| k == "le").unwrap().1.parse::<f64>().unwrap();
            let rest = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            out.entry(rest).or_default().push((le, *v));
        }
    }
    out
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn a_real_prometheus_records_what_funnelwatch_exports() {
    let dir = scratch("ops-prometheus");
    let events = dir.join("events.ndjson");
    generate(&events, &["--deals", "1500", "--seed", "71", "--days", "90", "--until", "2026-11-01T00:00:00Z"]);
    let config = dir.join("funnelwatch.toml");
    std::fs::write(&config, "").unwrap();
    let server = Server::replay(&config, &events);
    let exported = samples(&server.metrics(), "crm_funnel_");
    let prom = Prometheus::start(&dir, server.addr);

    // What each recording rule must equal, computed from the single instance's export.
    let mut want: Vec<(&str, BTreeMap<Labels, f64>)> = vec![
        (
            "pipeline_window_step:crm_funnel_period_conversion:ratio",
            family(&exported, "crm_funnel_period_conversion_ratio"),
        ),
        (
            "pipeline_window_step:crm_funnel_cohort_conversion:ratio",
            family(&exported, "crm_funnel_cohort_conversion_ratio"),
        ),
        ("pipeline_window:crm_funnel_win_rate:ratio", family(&exported, "crm_funnel_win_rate_ratio")),
        ("pipeline_window_stage:crm_funnel_stage_entries:sum", family(&exported, "crm_funnel_stage_entries")),
        ("pipeline_window_stage:crm_funnel_cohort_deals:sum", family(&exported, "crm_funnel_cohort_deals")),
        ("pipeline_window:crm_funnel_won_deals:sum", family(&exported, "crm_funnel_won_deals")),
        ("pipeline_window:crm_funnel_lost_deals:sum", family(&exported, "crm_funnel_lost_deals")),
        ("pipeline_stage:crm_funnel_open_deals:sum", family(&exported, "crm_funnel_open_deals")),
        ("pipeline_stage_currency:crm_funnel_open_amount:sum", family(&exported, "crm_funnel_open_amount")),
        ("pipeline_stage:crm_funnel_stuck_deals:sum", family(&exported, "crm_funnel_stuck_deals")),
    ];
    for (record, hist, q) in [
        (
            "pipeline_window_step:crm_funnel_transition_duration_seconds:p50",
            "crm_funnel_transition_duration_seconds",
            0.5,
        ),
        (
            "pipeline_window_step:crm_funnel_transition_duration_seconds:p90",
            "crm_funnel_transition_duration_seconds",
            0.9,
        ),
        ("pipeline_window:crm_funnel_time_to_close_seconds:p50", "crm_funnel_time_to_close_seconds", 0.5),
        ("pipeline_window:crm_funnel_time_to_close_seconds:p90", "crm_funnel_time_to_close_seconds", 0.9),
    ] {
        want.push((record, buckets(&exported, hist).into_iter().map(|(l, b)| (l, histogram_quantile(q, b))).collect()));
    }
    for (record, series) in &want {
        assert!(!series.is_empty(), "{record}: nothing to compare");
    }
    // The period ratio really is a ratio of the summed counts: it differs from 1 somewhere.
    assert!(want[0].1.values().any(|v| *v != 1.0 && *v != 0.0));

    let mut last = String::new();
    let settled = (0..600).any(|_| {
        last = want
            .iter()
            .filter_map(|(record, series)| {
                let got = prom.query(record);
                let ok = got.len() == series.len()
                    && series.iter().all(|(labels, w)| got.get(labels).is_some_and(|g| same(*g, *w)));
                (!ok).then(|| format!("{record}: {} series recorded, {} expected", got.len(), series.len()))
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::thread::sleep(Duration::from_millis(100));
        last.is_empty()
    });
    assert!(settled, "the recording rules never matched funnelwatch's export:\n{last}");
}

/// Metric names in a PromQL expression: funnelwatch's prefixes and recording-rule names.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("crm_funnel_") || t.starts_with("funnelwatch_") || t.contains(':'))
        .map(String::from)
        .collect()
}

#[test]
fn the_grafana_dashboard_queries_only_what_funnelwatch_and_the_rules_export() {
    // Every name a funnelwatch with the Kafka source (and a dead-letter topic) exports, plus the rules.
    let (brokers, topic) = (brokers(), unique("grafana"));
    let dir = scratch("ops-grafana");
    let events = dir.join("events.ndjson");
    generate(&events, &["--deals", "300", "--seed", "81", "--days", "30", "--until", "2026-11-01T00:00:00Z"]);
    publish(&brokers, &topic, &events);
    let dlq = format!("dead_letter_topic = \"{topic}-dlq\"");
    let config = kafka_config(&dir, "kafka", &brokers, &topic, &unique("g"), &dlq);
    let server = Server::start(&["serve", "--config", config.to_str().unwrap()]);
    server.wait_ready(Duration::from_secs(120));
    poll(Duration::from_secs(60), "consumer lag exported", || {
        server.metrics().contains("funnelwatch_kafka_consumer_lag{")
    });
    let text = server.metrics();
    let mut known: BTreeSet<String> =
        ["crm_funnel_", "funnelwatch_"].iter().flat_map(|p| samples(&text, p).into_keys().map(|(n, _)| n)).collect();
    known.extend(recorded_names());

    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("dashboards/grafana/dashboards/funnelwatch.json")).unwrap())
            .expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "funnelwatch-funnel");
    let vars: Vec<&str> =
        dash["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, ["pipeline", "window", "dimension"]);
    let datasource = yaml("dashboards/grafana/provisioning/datasources/prometheus.yml");
    let uid = datasource["datasources"][0]["uid"].as_str().unwrap();

    let mut titles = Vec::new();
    for panel in dash["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        titles.push(title.to_lowercase());
        assert_eq!(panel["datasource"]["uid"], uid, "{title}: datasource");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr} queries no funnelwatch metric");
            for n in names {
                assert!(known.contains(&n), "{title}: {expr} uses {n}, which nothing exports");
            }
        }
    }
    for wanted in [
        "stage entries",
        "cohort",
        "conversion",
        "time in step",
        "time to close",
        "win rate",
        "open deals",
        "stuck",
        "lost reasons",
        "rejections",
        "lag",
        "since the newest event",
    ] {
        assert!(titles.iter().any(|t| t.contains(wanted)), "no panel about {wanted}: {titles:?}");
    }
    // The conversion panel draws the drop alert's threshold.
    let rules = std::fs::read_to_string(repo("dashboards/prometheus/rules.yml")).unwrap();
    assert!(rules.contains(") > 0.25"), "the drop threshold moved; update the dashboard's 0.75 line");
    assert!(dash.to_string().contains("0.75 * pipeline_window_step:crm_funnel_period_conversion:ratio"));
}

fn str_of(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_compose_stack_is_consistent_with_the_repository() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for s in ["kafka", "funnelwatch", "generator", "prometheus", "alertmanager", "grafana"] {
        assert!(names.contains(s), "no {s} service");
    }
    let declared: BTreeSet<&str> =
        compose["volumes"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        for port in svc["ports"].as_sequence().into_iter().flatten() {
            assert!(str_of(port).starts_with("127.0.0.1:"), "{name}: port {port:?} not bound to 127.0.0.1");
        }
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let v = str_of(v);
            let mut parts = v.split(':');
            let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
            if let Some(path) = source.strip_prefix("./") {
                assert!(repo(path).exists(), "{name}: mounts {source}, which is not in the repository");
                mounts.insert(target.to_string(), repo(path));
            } else {
                assert!(declared.contains(source), "{name}: volume {source} is not declared");
            }
        }
    }

    // Kafka: the official image, single-node KRaft, replication factor 1 for internal topics.
    let kafka = &services["kafka"];
    assert!(str_of(&kafka["image"]).starts_with("apache/kafka:"));
    let env = &kafka["environment"];
    assert!(str_of(&env["KAFKA_PROCESS_ROLES"]).contains("controller"));
    assert_eq!(str_of(&env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]), "1");
    assert_eq!(str_of(&env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]), "1");

    // funnelwatch: built here, its environment is a valid configuration, listening on all interfaces.
    let fw = &services["funnelwatch"];
    assert_eq!(str_of(&fw["build"]), ".");
    let env: Vec<(String, String)> =
        fw["environment"].as_mapping().unwrap().iter().map(|(k, v)| (str_of(k), str_of(v))).collect();
    let get_env = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert!(get_env("FUNNELWATCH_LISTEN").starts_with("0.0.0.0:"));
    let mut check = Command::new(BIN);
    check.arg("check").envs(env.iter().cloned());
    run_ok(&mut check);
    let generator: Vec<String> = services["generator"]["command"].as_sequence().unwrap().iter().map(str_of).collect();
    assert_eq!(generator[0], "generate");
    let topic = generator.iter().skip_while(|a| *a != "--topic").nth(1).unwrap();
    assert_eq!(*topic, get_env("FUNNELWATCH_KAFKA_TOPICS"));

    // The Dockerfile: multi-stage, non-root, copies only what exists.
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "not multi-stage");
    let user = dockerfile.lines().filter_map(|l| l.strip_prefix("USER ")).next_back().expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as {user}");
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(repo(src).exists(), "Dockerfile copies {src}, which is not in the repository");
        }
    }

    // Prometheus scrapes the funnelwatch service with the shipped rules (promtool checks them in another test).
    let prom_dir = &mounts["/etc/prometheus"];
    assert!(prom_dir.join("prometheus.yml").exists() && prom_dir.join("rules.yml").exists());
    let prom = yaml("dashboards/prometheus/prometheus.yml");
    let port = get_env("FUNNELWATCH_LISTEN").rsplit(':').next().unwrap().to_string();
    let scrape = prom["scrape_configs"].as_sequence().unwrap().iter().find(|s| s["job_name"] == "funnelwatch").unwrap();
    assert_eq!(str_of(&scrape["static_configs"][0]["targets"][0]), format!("funnelwatch:{port}"));
    assert_eq!(str_of(&prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]), "alertmanager:9093");

    // Alertmanager: the route's receivers exist.
    let am = yaml("dashboards/alertmanager/alertmanager.yml");
    let receivers: BTreeSet<String> =
        am["receivers"].as_sequence().unwrap().iter().map(|r| str_of(&r["name"])).collect();
    assert!(receivers.contains(&str_of(&am["route"]["receiver"])));
    for r in am["route"]["routes"].as_sequence().into_iter().flatten() {
        assert!(receivers.contains(&str_of(&r["receiver"])));
    }

    // Grafana: the provider reads the mounted dashboards; the home dashboard is one of them.
    let provider = yaml("dashboards/grafana/provisioning/dashboards/funnelwatch.yml");
    let path = str_of(&provider["providers"][0]["options"]["path"]);
    assert!(mounts[&path].join("funnelwatch.json").exists());
    assert!(mounts.contains_key("/etc/grafana/provisioning"));
    let home = str_of(&services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    let (dir, file) = home.rsplit_once('/').unwrap();
    assert!(mounts[dir].join(file).exists(), "{home}");
}

#[test]
fn a_conversion_drop_injected_into_the_event_stream_raises_the_alert() {
    let dir = scratch("ops-drop");
    let events = dir.join("events.ndjson");
    // History up to a Thursday 00:00 UTC: the last day is a working day.
    generate(&events, &["--deals", "3000", "--seed", "91", "--days", "60", "--until", "2026-10-29T00:00:00Z"]);
    let config = dir.join("funnelwatch.toml");
    std::fs::write(&config, "refresh_interval = \"500ms\"\n").unwrap();
    let server = Server::replay(&config, &events);
    let prom = Prometheus::start(&dir, server.addr);
    let step = |record: &str, window: &str| {
        let q = format!(
            "pipeline_window_step:crm_funnel_period_conversion{record}{{pipeline=\"default\",window=\"{window}\",from_stage=\"contact\",to_stage=\"needs\"}}"
        );
        prom.query(&q).into_values().next()
    };
    poll(Duration::from_secs(60), "conversion recorded", || {
        step(":ratio", "7d").is_some() && step(":ratio", "30d").is_some()
    });
    let (week, month, entries) =
        (step(":ratio", "7d").unwrap(), step(":ratio", "30d").unwrap(), step("_denominator:sum", "7d").unwrap());
    assert!(
        week > 0.75 * month || entries < 30.0,
        "the generated traffic alone would alert ({week} against {month} on {entries} entries): pick another seed"
    );

    // 200 deals enter "contact" in the last hour and none moves on.
    let mut more = String::new();
    for i in 0..200 {
        more += &format!(
            "{{\"event_id\":\"drop-{i}-a\",\"deal_id\":\"DROP-{i}\",\"type\":\"deal_created\",\"occurred_at\":\"2026-10-28T23:00:00Z\",\"pipeline\":\"default\",\"stage\":\"lead\"}}\n\
             {{\"event_id\":\"drop-{i}-b\",\"deal_id\":\"DROP-{i}\",\"type\":\"stage_changed\",\"occurred_at\":\"2026-10-28T23:30:00Z\",\"pipeline\":\"default\",\"stage\":\"contact\"}}\n"
        );
    }
    std::io::Write::write_all(&mut std::fs::OpenOptions::new().append(true).open(&events).unwrap(), more.as_bytes())
        .unwrap();

    let mut seen = serde_json::Value::Null;
    poll(Duration::from_secs(120), "FunnelConversionDrop pending for contact → needs", || {
        let (_, body) = get(&format!("{}/api/v1/alerts", prom.url));
        let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen = alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                let l = &a["labels"];
                l["alertname"] == "FunnelConversionDrop" && l["from_stage"] == "contact" && l["to_stage"] == "needs"
            })
            .cloned()
            .unwrap_or_default();
        !seen.is_null()
    });
    assert!(["pending", "firing"].contains(&seen["state"].as_str().unwrap()), "{seen}");
    assert_eq!(seen["labels"]["window"], "7d", "{seen}");
    assert_eq!(seen["labels"]["baseline"], "the trailing 30 days", "{seen}");
    let summary = seen["annotations"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("Conversion contact → needs dropped "), "{summary}");
    assert!(
        seen["annotations"]["description"].as_str().unwrap().contains("lower than over the trailing 30 days"),
        "{seen}"
    );
}
