//! One typed [`Config`]: a TOML file, then `FUNNELWATCH_*` environment
//! overrides, then [`Config::validate`], which reports *every* problem with
//! the key it belongs to instead of stopping at the first.
//!
//! Invariants after validation: at least one pipeline; every pipeline has
//! unique stage ids and exactly one `won` stage; windows are unique, positive
//! and no longer than `retention`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Which time a refresh evaluates at (docs/metrics.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// `T` is the wall clock.
    Wall,
    /// `T` is the largest accepted `occurred_at` (replays, backfills, tests).
    Event,
}

impl std::str::FromStr for Clock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wall" => Ok(Clock::Wall),
            "event" => Ok(Clock::Event),
            _ => Err(format!("expected \"wall\" or \"event\", got {s:?}")),
        }
    }
}

/// A rolling window: its configured text (the `window` label) and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: String,
    pub ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub id: String,
    pub label: String,
    pub sla_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub id: String,
    pub currency: String,
    pub stages: Vec<Stage>,
    /// Index of the one `won` stage in `stages`.
    pub won: usize,
}

impl Pipeline {
    pub fn stage_index(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }
}

/// A dimension of the segment breakdowns (docs/metrics.md §5.4): an
/// attribute that deals and spend events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Source,
    Team,
    Region,
    Owner,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [Dimension::Source, Dimension::Team, Dimension::Region, Dimension::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Source => "source",
            Dimension::Team => "team",
            Dimension::Region => "region",
            Dimension::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The segment breakdowns (docs/metrics.md §2, §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdowns {
    /// The dimensions broken down, as configured; empty turns breakdowns off.
    pub dimensions: Vec<Dimension>,
    /// How many of a dimension's values, the most frequent, are segments (per pipeline).
    pub limit: usize,
    /// Fixed segments of a dimension, instead of its top `limit`.
    pub fixed: BTreeMap<Dimension, Vec<String>>,
}

/// The largest `breakdown_limit` and fixed segment list: a segment is a
/// series of every segment family.
const MAX_BREAKDOWN_LIMIT: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub dead_letter_topic: Option<String>,
    /// Passed to librdkafka unchanged (TLS, SASL, timeouts, …).
    pub properties: BTreeMap<String, String>,
}

/// librdkafka properties funnelwatch sets itself, with what to use instead.
const MANAGED_PROPERTIES: [(&str, &str); 5] = [
    ("bootstrap.servers", "use kafka.brokers"),
    ("group.id", "use kafka.group_id"),
    ("enable.auto.offset.store", "offsets are stored only after the events are in the store"),
    ("enable.auto.commit", "stored offsets are committed periodically (tune auto.commit.interval.ms)"),
    ("auto.offset.reset", "each assigned partition starts at now - retention"),
];

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub clock: Clock,
    pub windows: Vec<Window>,
    pub refresh_interval: Duration,
    pub retention_ms: i64,
    /// How far past its arrival an event's `occurred_at` may lie.
    pub max_clock_skew_ms: i64,
    /// Directory of `.sql` files; `None` uses the built-in queries.
    pub queries_dir: Option<PathBuf>,
    /// Memory pool for one refresh's queries.
    pub query_memory_limit_bytes: usize,
    /// The dashboard warns when no event arrived for longer than this.
    pub stale_after_ms: i64,
    pub kafka: Option<KafkaConfig>,
    pub pipelines: Vec<Pipeline>,
    pub breakdowns: Breakdowns,
}

/// Every problem found, each with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    clock: Option<String>,
    windows: Option<Vec<String>>,
    refresh_interval: Option<String>,
    retention: Option<String>,
    max_clock_skew: Option<String>,
    queries_dir: Option<PathBuf>,
    query_memory_limit: Option<String>,
    stale_after: Option<String>,
    kafka: Option<RawKafka>,
    pipelines: Option<Vec<RawPipeline>>,
    breakdowns: Option<Vec<String>>,
    /// An integer, or its text (from the environment).
    breakdown_limit: Option<toml::Value>,
    breakdown_segments: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group_id: Option<String>,
    dead_letter_topic: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    id: Option<String>,
    currency: Option<String>,
    stages: Option<Vec<RawStage>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: Option<String>,
    label: Option<String>,
    sla: Option<String>,
    #[serde(default)]
    won: bool,
}

/// Environment overrides: variable → TOML key. Lists are comma-separated.
const ENV_OVERRIDES: &[(&str, &[&str])] = &[
    ("FUNNELWATCH_LISTEN", &["listen"]),
    ("FUNNELWATCH_CLOCK", &["clock"]),
    ("FUNNELWATCH_WINDOWS", &["windows"]),
    ("FUNNELWATCH_REFRESH_INTERVAL", &["refresh_interval"]),
    ("FUNNELWATCH_RETENTION", &["retention"]),
    ("FUNNELWATCH_MAX_CLOCK_SKEW", &["max_clock_skew"]),
    ("FUNNELWATCH_QUERIES_DIR", &["queries_dir"]),
    ("FUNNELWATCH_QUERY_MEMORY_LIMIT", &["query_memory_limit"]),
    ("FUNNELWATCH_STALE_AFTER", &["stale_after"]),
    ("FUNNELWATCH_KAFKA_BROKERS", &["kafka", "brokers"]),
    ("FUNNELWATCH_KAFKA_TOPICS", &["kafka", "topics"]),
    ("FUNNELWATCH_KAFKA_GROUP_ID", &["kafka", "group_id"]),
    ("FUNNELWATCH_KAFKA_DEAD_LETTER_TOPIC", &["kafka", "dead_letter_topic"]),
    ("FUNNELWATCH_BREAKDOWNS", &["breakdowns"]),
    ("FUNNELWATCH_BREAKDOWN_LIMIT", &["breakdown_limit"]),
];

const LIST_KEYS: &[&str] = &["windows", "topics", "breakdowns"];

/// The embedded default configuration: the demo pipeline of docs/metrics.md §2.
pub const DEFAULT_TOML: &str = r#"
[[pipelines]]
id = "default"
currency = "CNY"
stages = [
  { id = "lead",        label = "潜在客户获取" },
  { id = "contact",     label = "初步接触", sla = "3d" },
  { id = "needs",       label = "需求分析", sla = "7d" },
  { id = "proposal",    label = "提供方案", sla = "10d" },
  { id = "negotiation", label = "商务谈判", sla = "14d" },
  { id = "won",         label = "签订合同", won = true },
  { id = "after_sales", label = "售后服务" },
]
"#;

impl Config {
    /// Reads `path` (or the embedded default when `None`), applies the
    /// environment overrides and validates.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let text = match path {
            Some(p) => {
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?
            }
            None => DEFAULT_TOML.to_string(),
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        Ok(Config::from_toml_with_env(&text, &env)?)
    }

    /// Parses TOML text with `env` as the environment; the pure core of [`Config::load`].
    pub fn from_toml_with_env(text: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        let mut table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigErrors(vec![format!("TOML: {e}")]))?;
        for (var, path) in ENV_OVERRIDES {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == var) {
                set_path(&mut table, path, value);
            }
        }
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigErrors(vec![e.message().to_string()]))?;
        raw.validate()
    }

    /// Parses TOML text without environment overrides.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml_with_env(text, &[])
    }

    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: &str) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("override parent is a table");
    }
    let v = if LIST_KEYS.contains(last) {
        toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )
    } else {
        toml::Value::String(value.to_string())
    };
    t.insert(last.to_string(), v);
}

/// Parses a humantime duration ("5s", "3d", "180d") into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration ({e})"))?;
    i64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))
}

/// Parses a byte size: a number with an optional KiB/MiB/GiB suffix.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        .iter()
        .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n.trim(), *m)))
        .unwrap_or((s, 1));
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a size like \"512MiB\" or \"2GiB\""))
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigErrors> {
        let mut errs = Vec::new();
        let mut dur = |key: &str, v: Option<String>, default: &str| -> i64 {
            let v = v.unwrap_or_else(|| default.to_string());
            match parse_duration_ms(&v) {
                Ok(0) => {
                    errs.push(format!("{key}: must be longer than zero"));
                    0
                }
                Ok(ms) => ms,
                Err(e) => {
                    errs.push(format!("{key}: {e}"));
                    0
                }
            }
        };
        let refresh_ms = dur("refresh_interval", self.refresh_interval, "5s");
        let retention_ms = dur("retention", self.retention, "180d");
        let max_clock_skew_ms = dur("max_clock_skew", self.max_clock_skew, "5m");
        let stale_after_ms = dur("stale_after", self.stale_after, "1h");

        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:9464".into());
        let listen = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            errs.push(format!("listen: {listen:?} is not an address like \"127.0.0.1:9464\""));
            SocketAddr::from(([127, 0, 0, 1], 9464))
        });
        let clock = match self.clock.as_deref().unwrap_or("wall").parse::<Clock>() {
            Ok(c) => c,
            Err(e) => {
                errs.push(format!("clock: {e}"));
                Clock::Wall
            }
        };
        let query_memory_limit_bytes = match parse_bytes(self.query_memory_limit.as_deref().unwrap_or("2GiB")) {
            Ok(b) => b,
            Err(e) => {
                errs.push(format!("query_memory_limit: {e}"));
                0
            }
        };

        let labels = self.windows.unwrap_or_else(|| ["1d", "7d", "30d", "90d"].map(String::from).to_vec());
        if labels.is_empty() {
            errs.push("windows: at least one window is needed".into());
        }
        let mut windows: Vec<Window> = Vec::new();
        for (i, label) in labels.into_iter().enumerate() {
            match parse_duration_ms(&label) {
                Ok(0) => errs.push(format!("windows[{i}]: must be longer than zero")),
                Ok(ms) if retention_ms > 0 && ms > retention_ms => {
                    errs.push(format!("windows[{i}]: {label:?} is longer than retention; events that old are evicted"))
                }
                Ok(ms) if windows.iter().any(|w| w.label == label) => {
                    errs.push(format!("windows[{i}]: {label:?} is listed twice"));
                    let _ = ms;
                }
                Ok(ms) => windows.push(Window { label, ms }),
                Err(e) => errs.push(format!("windows[{i}]: {e}")),
            }
        }

        let kafka = self.kafka.map(|k| {
            let mut props = BTreeMap::new();
            for (key, v) in k.properties {
                if let Some((_, instead)) = MANAGED_PROPERTIES.iter().find(|(name, _)| *name == key) {
                    errs.push(format!("kafka.properties.{key}: set by funnelwatch; {instead}"));
                    continue;
                }
                match v {
                    toml::Value::String(s) => {
                        props.insert(key, s);
                    }
                    toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                        props.insert(key, v.to_string());
                    }
                    _ => errs.push(format!("kafka.properties.{key}: must be a string, number or boolean")),
                }
            }
            let topics = k.topics.unwrap_or_else(|| vec!["crm-events".into()]);
            if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
                errs.push("kafka.topics: list at least one non-empty topic".into());
            }
            let dead_letter_topic = k.dead_letter_topic.filter(|t| !t.is_empty());
            if dead_letter_topic.as_ref().is_some_and(|d| topics.contains(d)) {
                errs.push("kafka.dead_letter_topic: must not be one of kafka.topics (rejections would loop)".into());
            }
            KafkaConfig {
                brokers: k.brokers.unwrap_or_else(|| "127.0.0.1:9092".into()),
                topics,
                group_id: k.group_id.unwrap_or_else(|| "funnelwatch".into()),
                dead_letter_topic,
                properties: props,
            }
        });

        let raw_pipelines = match self.pipelines {
            Some(p) => p,
            None => {
                let default: RawConfig = toml::from_str(DEFAULT_TOML).expect("embedded default parses");
                default.pipelines.expect("embedded default has pipelines")
            }
        };
        if raw_pipelines.is_empty() {
            errs.push("pipelines: at least one pipeline is needed".into());
        }
        let mut pipelines: Vec<Pipeline> = Vec::new();
        for (pi, rp) in raw_pipelines.into_iter().enumerate() {
            let key = format!("pipelines[{pi}]");
            let id = rp.id.unwrap_or_default();
            if id.is_empty() {
                errs.push(format!("{key}.id: missing"));
            } else if pipelines.iter().any(|p| p.id == id) {
                errs.push(format!("{key}.id: {id:?} is used by another pipeline"));
            }
            let currency = rp.currency.unwrap_or_else(|| "CNY".into());
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
                errs.push(format!("{key}.currency: {currency:?} is not a 3-letter currency code"));
            }
            let mut stages: Vec<Stage> = Vec::new();
            let mut won = Vec::new();
            let raw_stages = rp.stages.unwrap_or_default();
            if raw_stages.len() < 2 {
                errs.push(format!("{key}.stages: a funnel needs at least two stages"));
            }
            for (si, rs) in raw_stages.into_iter().enumerate() {
                let skey = format!("{key}.stages[{si}]");
                let sid = rs.id.unwrap_or_default();
                if sid.is_empty() || sid.len() > 128 {
                    errs.push(format!("{skey}.id: must be 1 to 128 bytes"));
                } else if stages.iter().any(|s| s.id == sid) {
                    errs.push(format!("{skey}.id: {sid:?} is used by another stage of this pipeline"));
                }
                let sla_ms = rs.sla.and_then(|s| match parse_duration_ms(&s) {
                    Ok(0) => {
                        errs.push(format!("{skey}.sla: must be longer than zero"));
                        None
                    }
                    Ok(ms) => Some(ms),
                    Err(e) => {
                        errs.push(format!("{skey}.sla: {e}"));
                        None
                    }
                });
                if rs.won {
                    won.push(si);
                }
                let label = rs.label.filter(|l| !l.is_empty()).unwrap_or_else(|| sid.clone());
                stages.push(Stage { id: sid, label, sla_ms });
            }
            if won.len() != 1 {
                errs.push(format!("{key}.stages: exactly one stage must have won = true (found {})", won.len()));
            }
            pipelines.push(Pipeline { id, currency, stages, won: won.first().copied().unwrap_or(0) });
        }

        let breakdowns = breakdowns(self.breakdowns, self.breakdown_limit, self.breakdown_segments, &mut errs);

        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        Ok(Config {
            listen,
            clock,
            windows,
            refresh_interval: Duration::from_millis(refresh_ms as u64),
            retention_ms,
            max_clock_skew_ms,
            queries_dir: self.queries_dir,
            query_memory_limit_bytes,
            stale_after_ms,
            kafka,
            pipelines,
            breakdowns,
        })
    }
}

/// The breakdown keys, validated; every problem goes to `errs` with its key.
fn breakdowns(
    dimensions: Option<Vec<String>>,
    limit: Option<toml::Value>,
    fixed: Option<BTreeMap<String, Vec<String>>>,
    errs: &mut Vec<String>,
) -> Breakdowns {
    let names = dimensions.unwrap_or_else(|| Dimension::ALL.iter().map(|d| d.as_str().to_string()).collect());
    let mut dims = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match Dimension::parse(name) {
            Some(d) if dims.contains(&d) => errs.push(format!("breakdowns[{i}]: {name:?} is listed twice")),
            Some(d) => dims.push(d),
            None => errs.push(format!("breakdowns[{i}]: {name:?} is not a dimension (source, team, region, owner)")),
        }
    }
    let limit = match limit {
        None => Some(20),
        Some(toml::Value::Integer(n)) => Some(n),
        Some(toml::Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let limit = match limit {
        Some(n) if (1..=MAX_BREAKDOWN_LIMIT).contains(&n) => n as usize,
        Some(n) => {
            errs.push(format!("breakdown_limit: {n} is not between 1 and {MAX_BREAKDOWN_LIMIT}"));
            1
        }
        None => {
            errs.push("breakdown_limit: must be a whole number of segments, like 20".into());
            1
        }
    };
    let mut segments = BTreeMap::new();
    for (name, values) in fixed.unwrap_or_default() {
        let key = format!("breakdown_segments.{name}");
        let Some(d) = Dimension::parse(&name) else {
            errs.push(format!("{key}: {name:?} is not a dimension (source, team, region, owner)"));
            continue;
        };
        if !dims.contains(&d) {
            errs.push(format!("{key}: {name} is not in breakdowns, so it has no segments"));
        }
        if values.len() > MAX_BREAKDOWN_LIMIT as usize {
            errs.push(format!("{key}: {} segments, at most {MAX_BREAKDOWN_LIMIT}", values.len()));
        }
        for (i, v) in values.iter().enumerate() {
            if v == "other" || v == "unspecified" {
                errs.push(format!(
                    "{key}[{i}]: {v:?} cannot be listed: it stands for the values not listed, or for no value"
                ));
            } else if v.is_empty() {
                errs.push(format!("{key}[{i}]: an empty value is no value: it falls in \"unspecified\""));
            } else if values[..i].contains(v) {
                errs.push(format!("{key}[{i}]: {v:?} is listed twice"));
            }
        }
        segments.insert(d, values);
    }
    Breakdowns { dimensions: dims, limit, fixed: segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.clock, Clock::Wall);
        let w: Vec<_> = c.windows.iter().map(|w| (w.label.as_str(), w.ms)).collect();
        assert_eq!(w, [("1d", 86_400_000), ("7d", 604_800_000), ("30d", 2_592_000_000), ("90d", 7_776_000_000)]);
        assert_eq!(c.refresh_interval, Duration::from_secs(5));
        assert_eq!(c.retention_ms, 180 * 86_400_000);
        assert_eq!(c.max_clock_skew_ms, 300_000);
        assert_eq!(c.stale_after_ms, 3_600_000);
        let p = &c.pipelines[0];
        assert_eq!(p.id, "default");
        assert_eq!(p.stages.len(), 7);
        assert_eq!(p.stages[p.won].id, "won");
        assert_eq!(p.stages[1].label, "初步接触");
        assert_eq!(p.stages[1].sla_ms, Some(3 * 86_400_000));
        assert!(c.kafka.is_none());
    }

    #[test]
    fn every_error_is_listed_with_its_key() {
        let text = r#"
            listen = "nowhere"
            clock = "sundial"
            windows = ["1d", "1d", "forever"]
            [[pipelines]]
            id = "p"
            currency = "EURO"
            stages = [{ id = "a" }, { id = "a", sla = "soon" }]
        "#;
        let errs = Config::from_toml(text).unwrap_err().0;
        for key in [
            "listen:",
            "clock:",
            "windows[1]:",
            "windows[2]:",
            "pipelines[0].currency:",
            "pipelines[0].stages[1].id:",
            "pipelines[0].stages[1].sla:",
            "pipelines[0].stages: exactly one",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(key)), "no error for {key}: {errs:#?}");
        }
    }

    /// docs/metrics.md §2 and §7: the breakdown keys, their defaults, every
    /// bad value named with its key, and the environment overrides.
    #[test]
    fn breakdowns_defaults_errors_and_overrides() {
        let b = Config::from_toml("").unwrap().breakdowns;
        assert_eq!(b.dimensions, Dimension::ALL);
        assert_eq!((b.limit, b.fixed.len()), (20, 0));
        let c = Config::from_toml(
            "breakdowns = [\"team\", \"source\"]\nbreakdown_limit = 3\n[breakdown_segments]\nsource = [\"ads\", \"web\"]",
        )
        .unwrap();
        assert_eq!(c.breakdowns.dimensions, [Dimension::Team, Dimension::Source]);
        assert_eq!(c.breakdowns.fixed[&Dimension::Source], ["ads", "web"]);
        let text = r#"
            breakdowns = ["source", "channel", "source", "region"]
            breakdown_limit = 0
            [breakdown_segments]
            team = ["a"]
            source = ["ads", "other", "", "ads", "unspecified"]
            colour = ["red"]
        "#;
        let errs = Config::from_toml(text).unwrap_err().0;
        for key in [
            "breakdowns[1]: \"channel\" is not a dimension",
            "breakdowns[2]: \"source\" is listed twice",
            "breakdown_limit: 0 is not between 1 and 1000",
            "breakdown_segments.team: team is not in breakdowns",
            "breakdown_segments.source[1]: \"other\" cannot be listed",
            "breakdown_segments.source[2]: an empty value",
            "breakdown_segments.source[3]: \"ads\" is listed twice",
            "breakdown_segments.source[4]: \"unspecified\" cannot be listed",
            "breakdown_segments.colour: \"colour\" is not a dimension",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(key)), "no error {key:?}: {errs:#?}");
        }
        assert_eq!(errs.len(), 9, "{errs:#?}");
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let c = Config::from_toml_with_env(
            "breakdown_limit = 5",
            &env(&[("FUNNELWATCH_BREAKDOWNS", "owner, region"), ("FUNNELWATCH_BREAKDOWN_LIMIT", "7")]),
        )
        .unwrap();
        assert_eq!((c.breakdowns.dimensions, c.breakdowns.limit), (vec![Dimension::Owner, Dimension::Region], 7));
        let off = Config::from_toml_with_env("", &env(&[("FUNNELWATCH_BREAKDOWNS", "")])).unwrap();
        assert!(off.breakdowns.dimensions.is_empty(), "an empty list turns breakdowns off");
        let many: Vec<String> = (0..1001).map(|i| format!("\"s{i}\"")).collect();
        let errs = Config::from_toml(&format!("[breakdown_segments]\nsource = [{}]", many.join(","))).unwrap_err().0;
        assert_eq!(errs, ["breakdown_segments.source: 1001 segments, at most 1000"]);
        let bad = Config::from_toml_with_env("", &env(&[("FUNNELWATCH_BREAKDOWN_LIMIT", "lots")])).unwrap_err().0;
        assert_eq!(bad, ["breakdown_limit: must be a whole number of segments, like 20"]);
    }

    #[test]
    fn kafka_properties_funnelwatch_manages_are_errors() {
        let text = "[kafka]\ntopics = []\ndead_letter_topic = \"\"\n[kafka.properties]\n\"group.id\" = \"x\"\n\"enable.auto.offset.store\" = true\n\"security.protocol\" = \"SASL_SSL\"\n\"fetch.max.bytes\" = 1048576\n";
        let errs = Config::from_toml(text).unwrap_err().0;
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs[0].starts_with("kafka.properties.enable.auto.offset.store: set by funnelwatch"), "{errs:#?}");
        assert!(errs[1].starts_with("kafka.properties.group.id: set by funnelwatch; use kafka.group_id"), "{errs:#?}");
        assert!(errs[2].starts_with("kafka.topics:"), "{errs:#?}");
        let loop_errs = Config::from_toml("[kafka]\ntopics = [\"a\"]\ndead_letter_topic = \"a\"").unwrap_err().0;
        assert!(loop_errs[0].starts_with("kafka.dead_letter_topic: must not be"), "{loop_errs:#?}");
        let c = Config::from_toml("[kafka]\n[kafka.properties]\n\"fetch.max.bytes\" = 1048576\n").unwrap();
        assert_eq!(c.kafka.unwrap().properties["fetch.max.bytes"], "1048576");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_toml("listn = \"x\"").unwrap_err().0;
        assert!(err[0].contains("listn"), "{err:?}");
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        let env = [
            ("FUNNELWATCH_CLOCK".to_string(), "event".to_string()),
            ("FUNNELWATCH_WINDOWS".to_string(), "1d, 2d".to_string()),
            ("FUNNELWATCH_KAFKA_TOPICS".to_string(), "a,b".to_string()),
        ];
        let c = Config::from_toml_with_env("clock = \"wall\"", &env).unwrap();
        assert_eq!(c.clock, Clock::Event);
        assert_eq!(c.windows.iter().map(|w| w.label.as_str()).collect::<Vec<_>>(), ["1d", "2d"]);
        assert_eq!(c.kafka.unwrap().topics, ["a", "b"]);
    }

    #[test]
    fn window_longer_than_retention_is_rejected() {
        let errs = Config::from_toml("retention = \"30d\"").unwrap_err().0;
        assert!(errs.iter().any(|e| e.starts_with("windows[3]:")), "{errs:?}");
    }
}
