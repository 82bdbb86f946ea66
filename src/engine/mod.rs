//! The DataFusion engine: loads the query files, runs them over a store
//! snapshot at `T`, and produces an immutable [`Snapshot`].
//!
//! A query file is SQL with a header of `-- key: value` comment lines:
//! `-- table: NAME` files come first (in file-name order, each after the
//! tables it reads) and their result is registered as a table for later
//! files; `-- metric: NAME` files (with `type`, `help`, `labels`, `value`,
//! `export`) each produce one metric family; with `-- export: no` it is
//! kept for the dashboard and `/api/funnel` but not on `/metrics`. A query runs as soon as the tables it
//! reads are made, at the same time as the other queries that are ready
//! (each its own task, two at a time: both cores).
//! Parameters reach SQL only as registered tables (`params`, `windows`,
//! `pipelines`, `stages`, `buckets`, `quantiles`, `surveys`, `score_buckets`, `bands`)
//! and as the functions of
//! [`functions`], never as SQL text.
//!
//! The base tables are the store's per-deal facts (`deals`, `reached`,
//! `feedback`), the `spend` events, the activity counts per window
//! (`activity_counts`), and `events`, which is
//! rebuilt from the store only when some query reads it. They are split in
//! two partitions so a refresh uses both cores; every built-in aggregate is
//! exact (integer counts and sums, `exact_sum`, the rank and cell aggregates), so the
//! output does not depend on how the partitions interleave.
//!
//! Every table is a [`Slot`]: its rows are replaced before each refresh,
//! and each query's physical plan is made once and run again and again
//! (made anew only when a base table's size changes by about 4×).

mod cells;
mod functions;
mod rank;
mod single;
mod slot;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt16Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt;

use crate::config::{Breakdowns, Config, Pipeline, Window};
use crate::deals;
use crate::event::Survey;
use crate::export::{self, Family, Kind, MetricSpec};
use crate::store::{FactTables, Store};
use slot::Slot;

/// Histogram bucket upper bounds in seconds (docs/metrics.md §5).
pub const BUCKETS: [u32; 12] =
    [3600, 14400, 43200, 86400, 172800, 259200, 604800, 1209600, 2592000, 5184000, 7776000, 15552000];
/// Quantiles as exact fractions: label, numerator, denominator.
pub const QUANTILES: [(&str, i64, i64); 2] = [("0.5", 1, 2), ("0.9", 9, 10)];

/// The feedback bands: survey, band, lowest and highest score (docs/metrics.md §5.4).
const BANDS: [(Survey, &str, i64, i64); 6] = [
    (Survey::Csat, "satisfied", 4, 5),
    (Survey::Csat, "neutral", 3, 3),
    (Survey::Csat, "dissatisfied", 1, 2),
    (Survey::Nps, "promoter", 9, 10),
    (Survey::Nps, "passive", 7, 8),
    (Survey::Nps, "detractor", 0, 6),
];

/// The built-in query files, compiled in.
const BUILTIN: &[(&str, &str)] = &[
    ("acquisition_spend.sql", include_str!("../../queries/acquisition_spend.sql")),
    ("activities.sql", include_str!("../../queries/activities.sql")),
    ("close_durations.sql", include_str!("../../queries/close_durations.sql")),
    ("cohort_conversion.sql", include_str!("../../queries/cohort_conversion.sql")),
    ("cohort_deals.sql", include_str!("../../queries/cohort_deals.sql")),
    ("cost_per_lead.sql", include_str!("../../queries/cost_per_lead.sql")),
    ("csat.sql", include_str!("../../queries/csat.sql")),
    ("customer_acquisition_cost.sql", include_str!("../../queries/customer_acquisition_cost.sql")),
    ("evaluation_timestamp.sql", include_str!("../../queries/evaluation_timestamp.sql")),
    ("feedback_by_set.sql", include_str!("../../queries/feedback_by_set.sql")),
    ("feedback_counts.sql", include_str!("../../queries/feedback_counts.sql")),
    ("feedback_score.sql", include_str!("../../queries/feedback_score.sql")),
    ("lost_deals.sql", include_str!("../../queries/lost_deals.sql")),
    ("lost_reasons.sql", include_str!("../../queries/lost_reasons.sql")),
    ("net_promoter_score.sql", include_str!("../../queries/net_promoter_score.sql")),
    ("open_amount.sql", include_str!("../../queries/open_amount.sql")),
    ("open_deals.sql", include_str!("../../queries/open_deals.sql")),
    ("outcome_counts.sql", include_str!("../../queries/outcome_counts.sql")),
    ("outcomes.sql", include_str!("../../queries/outcomes.sql")),
    ("period_conversion.sql", include_str!("../../queries/period_conversion.sql")),
    ("previous_acquisition_spend.sql", include_str!("../../queries/previous_acquisition_spend.sql")),
    ("previous_cost_per_lead.sql", include_str!("../../queries/previous_cost_per_lead.sql")),
    ("previous_csat_ratio.sql", include_str!("../../queries/previous_csat_ratio.sql")),
    ("previous_customer_acquisition_cost.sql", include_str!("../../queries/previous_customer_acquisition_cost.sql")),
    ("previous_feedback_counts.sql", include_str!("../../queries/previous_feedback_counts.sql")),
    ("previous_feedback_responses.sql", include_str!("../../queries/previous_feedback_responses.sql")),
    ("previous_lost_deals.sql", include_str!("../../queries/previous_lost_deals.sql")),
    ("previous_net_promoter_score.sql", include_str!("../../queries/previous_net_promoter_score.sql")),
    ("previous_period_conversion_ratio.sql", include_str!("../../queries/previous_period_conversion_ratio.sql")),
    ("previous_stage_entries.sql", include_str!("../../queries/previous_stage_entries.sql")),
    (
        "previous_time_to_close_quantile_seconds.sql",
        include_str!("../../queries/previous_time_to_close_quantile_seconds.sql"),
    ),
    (
        "previous_transition_duration_quantile_seconds.sql",
        include_str!("../../queries/previous_transition_duration_quantile_seconds.sql"),
    ),
    ("previous_win_rate_ratio.sql", include_str!("../../queries/previous_win_rate_ratio.sql")),
    ("previous_won_deals.sql", include_str!("../../queries/previous_won_deals.sql")),
    ("reached_counts.sql", include_str!("../../queries/reached_counts.sql")),
    ("segment_acquisition_spend.sql", include_str!("../../queries/segment_acquisition_spend.sql")),
    ("segment_cohort_deals.sql", include_str!("../../queries/segment_cohort_deals.sql")),
    ("segment_cost_per_lead.sql", include_str!("../../queries/segment_cost_per_lead.sql")),
    ("segment_csat.sql", include_str!("../../queries/segment_csat.sql")),
    ("segment_customer_acquisition_cost.sql", include_str!("../../queries/segment_customer_acquisition_cost.sql")),
    ("segment_feedback_counts.sql", include_str!("../../queries/segment_feedback_counts.sql")),
    ("segment_feedback_responses.sql", include_str!("../../queries/segment_feedback_responses.sql")),
    ("segment_lost_deals.sql", include_str!("../../queries/segment_lost_deals.sql")),
    ("segment_net_promoter_score.sql", include_str!("../../queries/segment_net_promoter_score.sql")),
    ("segment_open_amount.sql", include_str!("../../queries/segment_open_amount.sql")),
    ("segment_open_deals.sql", include_str!("../../queries/segment_open_deals.sql")),
    ("segment_outcomes.sql", include_str!("../../queries/segment_outcomes.sql")),
    ("segment_spend_totals.sql", include_str!("../../queries/segment_spend_totals.sql")),
    ("segment_stage_counts.sql", include_str!("../../queries/segment_stage_counts.sql")),
    ("segment_stage_entries.sql", include_str!("../../queries/segment_stage_entries.sql")),
    ("segment_time_to_close_quantiles.sql", include_str!("../../queries/segment_time_to_close_quantiles.sql")),
    ("segment_win_rate.sql", include_str!("../../queries/segment_win_rate.sql")),
    ("segment_won_deals.sql", include_str!("../../queries/segment_won_deals.sql")),
    ("spend_totals.sql", include_str!("../../queries/spend_totals.sql")),
    ("stage_counts.sql", include_str!("../../queries/stage_counts.sql")),
    ("stage_entries.sql", include_str!("../../queries/stage_entries.sql")),
    ("stuck_deals.sql", include_str!("../../queries/stuck_deals.sql")),
    ("time_to_close_histogram.sql", include_str!("../../queries/time_to_close_histogram.sql")),
    ("time_to_close_quantiles.sql", include_str!("../../queries/time_to_close_quantiles.sql")),
    ("transition_duration_histogram.sql", include_str!("../../queries/transition_duration_histogram.sql")),
    ("transition_duration_quantiles.sql", include_str!("../../queries/transition_duration_quantiles.sql")),
    ("transition_durations.sql", include_str!("../../queries/transition_durations.sql")),
    ("transitions.sql", include_str!("../../queries/transitions.sql")),
    ("win_rate.sql", include_str!("../../queries/win_rate.sql")),
    ("won_deals.sql", include_str!("../../queries/won_deals.sql")),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Table(String),
    Metric(MetricSpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// File name, e.g. `stage_entries.sql`.
    pub file: String,
    pub output: Output,
    pub sql: String,
}

impl Query {
    /// Parses a query file's header. Errors name the file and the header key.
    pub fn parse(file: &str, text: &str) -> Result<Query, Vec<String>> {
        const KEYS: [&str; 7] = ["table", "metric", "type", "help", "labels", "value", "export"];
        let mut header = BTreeMap::new();
        let mut errs = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("--") else {
                if line.trim().is_empty() {
                    continue;
                }
                break;
            };
            // `-- key: value` with a lowercase word as key; any other comment is prose.
            let Some((k, v)) = rest.split_once(':') else { continue };
            let k = k.trim();
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                continue;
            }
            if !KEYS.contains(&k) {
                errs.push(format!("{file}: header: unknown key {k:?} (the keys are {})", KEYS.join(", ")));
            } else if header.insert(k.to_string(), v.trim().to_string()).is_some() {
                errs.push(format!("{file}: header: {k} is given twice"));
            }
        }
        let output = match (header.get("table"), header.get("metric")) {
            (Some(t), None) if is_identifier(t) => Output::Table(t.clone()),
            (Some(t), None) => {
                errs.push(format!("{file}: table: {t:?} is not a plain identifier"));
                Output::Table(String::new())
            }
            (None, Some(name)) => {
                if !is_identifier(name) {
                    errs.push(format!("{file}: metric: {name:?} is not a valid metric name"));
                }
                let kind = header.get("type").map(String::as_str).unwrap_or("gauge");
                let kind = Kind::parse(kind).unwrap_or_else(|| {
                    errs.push(format!("{file}: type: {kind:?} is not gauge, counter, histogram or summary"));
                    Kind::Gauge
                });
                let labels: Vec<String> = header
                    .get("labels")
                    .map(|l| l.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                    .unwrap_or_default();
                for l in &labels {
                    if !is_identifier(l) || l.starts_with("__") || (kind == Kind::Histogram && l == "le") {
                        errs.push(format!("{file}: labels: {l:?} is not a usable label name"));
                    }
                }
                let exported = match header.get("export").map(String::as_str) {
                    None | Some("yes") => true,
                    Some("no") => false,
                    Some(other) => {
                        errs.push(format!("{file}: export: {other:?} is not yes or no"));
                        true
                    }
                };
                let help = header.get("help").cloned().unwrap_or_default();
                if help.is_empty() {
                    errs.push(format!("{file}: help: missing"));
                }
                Output::Metric(MetricSpec {
                    name: name.clone(),
                    help,
                    kind,
                    labels,
                    value: header.get("value").cloned().unwrap_or_else(|| "value".into()),
                    exported,
                })
            }
            _ => {
                errs.push(format!("{file}: header: needs exactly one of `-- table: NAME` or `-- metric: NAME`"));
                Output::Table(String::new())
            }
        };
        if errs.is_empty() { Ok(Query { file: file.into(), output, sql: text.into() }) } else { Err(errs) }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The built-in queries, then the `.sql` files of `dir` (a file with a
/// built-in's name replaces it). Tables first, then metrics, each by name.
pub fn load_queries(dir: Option<&Path>) -> Result<Vec<Query>, Vec<String>> {
    let mut texts: BTreeMap<String, String> = BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect();
    let mut errs = Vec::new();
    if let Some(dir) = dir {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let path = e.path();
                    if path.extension().is_some_and(|x| x == "sql") {
                        let name = e.file_name().to_string_lossy().into_owned();
                        match std::fs::read_to_string(&path) {
                            Ok(t) => {
                                texts.insert(name, t);
                            }
                            Err(err) => errs.push(format!("queries_dir: {}: {err}", path.display())),
                        }
                    }
                }
            }
            Err(err) => errs.push(format!("queries_dir: {}: {err}", dir.display())),
        }
    }
    let mut queries = Vec::new();
    for (file, text) in &texts {
        match Query::parse(file, text) {
            Ok(q) => queries.push(q),
            Err(e) => errs.extend(e),
        }
    }
    let mut seen = BTreeMap::new();
    for q in &queries {
        let name = match &q.output {
            Output::Table(t) => t,
            Output::Metric(m) => &m.name,
        };
        if let Some(other) = seen.insert(name.clone(), q.file.clone()) {
            errs.push(format!("{}: {name:?} is also produced by {other}", q.file));
        }
    }
    queries.sort_by_key(|q| (matches!(q.output, Output::Metric(_)), q.file.clone()));
    if errs.is_empty() { Ok(queries) } else { Err(errs) }
}

/// What one refresh produced. Immutable once published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every published refresh; 0 means "no refresh yet".
    pub version: u64,
    pub t_ms: i64,
    pub families: Vec<Family>,
    /// The business families in Prometheus text format, rendered once.
    pub text: String,
    /// Per query file: duration in seconds, or its error.
    pub queries: Vec<(String, Result<f64, String>)>,
}

pub struct Engine {
    pipelines: Vec<Pipeline>,
    windows: Vec<Window>,
    /// The widths `window_of` tells apart: every window's and, where it
    /// fits in the retention, twice it, so that the previous period
    /// `(T − 2W, T − W]` of a window is the difference of two nested ones
    /// (docs/metrics.md §5.5). Sorted, without repeats.
    widths: Vec<i64>,
    retention_ms: i64,
    breakdowns: Breakdowns,
    queries: Vec<Query>,
    /// By query: the earlier `-- table:` queries whose tables it reads.
    inputs_of: Vec<Vec<usize>>,
    /// Some query reads the `events` table, which is then rebuilt for every refresh.
    needs_events: bool,
    /// One session for the life of the engine: its tables are slots.
    ctx: SessionContext,
    clock: functions::Clock,
    /// The base and parameter tables by name, refilled before every refresh.
    inputs: BTreeMap<&'static str, Slot>,
    plans: tokio::sync::Mutex<Plans>,
}

/// The queries' physical plans, made once and run by every refresh.
#[derive(Default)]
struct Plans {
    /// The size class of each base table when the plans were made: they are
    /// made again when one changes, so that join sides follow the data.
    sizes: Vec<u32>,
    /// By query; `None` until planned (or after a planning error, retried).
    by_query: Vec<Option<Arc<dyn ExecutionPlan>>>,
    /// The results of the `-- table:` queries, by table name.
    outputs: BTreeMap<String, Slot>,
}

/// What running a query gave, and how long it took in seconds.
type Ran = (Result<Vec<RecordBatch>, String>, f64);

/// Base tables split in two partitions (both cores scan them).
const SPLIT: [&str; 3] = ["deals", "reached", "events"];

/// What a refresh reads from the store, gathered under its lock.
pub struct Input {
    facts: Arc<FactTables>,
    activities: RecordBatch,
    events: Option<Vec<RecordBatch>>,
}

fn activity_counts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("window", DataType::Utf8, false),
        Field::new("activity", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

impl Engine {
    pub fn new(config: &Config) -> Result<Engine, Vec<String>> {
        let queries = load_queries(config.queries_dir.as_deref())?;
        // Unparsable: `check` and the refresh report it; assume the worst meanwhile.
        let reads: Vec<Option<Vec<String>>> = queries.iter().map(|q| tables_read(&q.sql)).collect();
        let needs_events = reads.iter().any(|r| r.as_ref().is_none_or(|r| r.iter().any(|t| t == "events")));
        // For each query, the queries that make a table it reads: all before it
        // (`-- table:` files run in file-name order), else the files are in error.
        let inputs_of: Vec<Vec<usize>> = reads
            .iter()
            .map(|r| {
                let r = r.as_deref().unwrap_or_default();
                (0..queries.len())
                    .filter(|&j| matches!(&queries[j].output, Output::Table(t) if r.iter().any(|x| x.eq_ignore_ascii_case(t))))
                    .collect()
            })
            .collect();
        let made_later: Vec<String> = inputs_of
            .iter()
            .enumerate()
            .flat_map(|(i, makers)| makers.iter().filter(move |&&j| j >= i).map(move |&j| (i, j)))
            .map(|(i, j)| {
                let Output::Table(t) = &queries[j].output else { unreachable!("a maker makes a table") };
                format!(
                    "{}: reads the table {t:?}, which {} makes: `-- table:` files run in file-name order, \
                     each after the tables it reads",
                    queries[i].file, queries[j].file
                )
            })
            .collect();
        if !made_later.is_empty() {
            return Err(made_later);
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.query_memory_limit_bytes, 1.0)
            .build_arc()
            .map_err(|e| vec![format!("query_memory_limit: {e}")])?;
        // Two partitions: both cores. The built-in aggregates are exact, so
        // the interleaving of the partitions cannot change a bit of the output
        // (a user query's plain SUM of doubles may differ in its last bits).
        let mut session = SessionConfig::new().with_target_partitions(2).with_information_schema(false);
        // Plans are run again and again: no state may outlive a run.
        let optimizer = &mut session.options_mut().optimizer;
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        let ctx = SessionContext::new_with_config_rt(session, runtime);
        let clock = functions::Clock::default();
        let mut widths: Vec<i64> = config.windows.iter().map(|w| w.ms).collect();
        widths.extend(config.windows.iter().map(|w| w.ms.saturating_mul(2)).filter(|&w| w <= config.retention_ms));
        widths.sort_unstable();
        widths.dedup();
        functions::register(&ctx, &clock, &widths);
        let mut engine = Engine {
            pipelines: config.pipelines.clone(),
            windows: config.windows.clone(),
            widths,
            retention_ms: config.retention_ms,
            breakdowns: config.breakdowns.clone(),
            plans: tokio::sync::Mutex::new(Plans { by_query: vec![None; queries.len()], ..Plans::default() }),
            queries,
            inputs_of,
            needs_events,
            ctx,
            clock,
            inputs: BTreeMap::new(),
        };
        let mut schemas = vec![
            ("deals", deals::deals_schema()),
            ("reached", deals::reached_schema()),
            ("feedback", deals::feedback_schema()),
            ("ended_losses", deals::ended_losses_schema()),
            ("spend", crate::store::spend_schema()),
            ("segment_sets", crate::segments::segment_sets_schema()),
            ("segments", crate::segments::segments_schema()),
            ("activity_counts", activity_counts_schema()),
            ("events", crate::store::events_schema()),
        ];
        schemas.extend(engine.params(0).into_iter().map(|(name, batch)| (name, batch.schema())));
        for (name, schema) in schemas {
            let slot = Slot::new(name, schema, SPLIT.contains(&name));
            engine.ctx.register_table(name, Arc::new(slot.clone())).map_err(|e| vec![e.to_string()])?;
            engine.inputs.insert(name, slot);
        }
        Ok(engine)
    }

    /// Brings the store to `t_ms` and takes what the queries read from it
    /// (call with the store locked; the queries then run without it).
    pub fn gather(&self, store: &mut Store, t_ms: i64) -> Input {
        let facts = store.refresh(t_ms);
        let ranges: Vec<(i64, i64)> = self.windows.iter().map(|w| (t_ms.saturating_sub(w.ms), t_ms)).collect();
        let (mut pipeline, mut window, mut activity, mut n) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (p, name, counts) in store.activity_counts(&ranges) {
            for (w, c) in self.windows.iter().zip(counts).filter(|(_, c)| *c > 0) {
                pipeline.push(self.pipelines[p as usize].id.clone());
                window.push(w.label.clone());
                activity.push(name.to_string());
                n.push(c as i64);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(pipeline)),
            Arc::new(StringArray::from(window)),
            Arc::new(StringArray::from(activity)),
            Arc::new(Int64Array::from(n)),
        ];
        let activities = RecordBatch::try_new(activity_counts_schema(), cols).expect("activity_counts schema");
        let events = self.needs_events.then(|| store.events(t_ms));
        Input { facts, activities, events }
    }

    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    /// Fills the base and parameter tables for `t_ms`.
    fn fill(&self, input: Input, t_ms: i64) {
        self.clock.set(t_ms, &self.widths);
        let slot = |name: &str| &self.inputs[name];
        slot("deals").set(std::slice::from_ref(&input.facts.deals));
        slot("reached").set(&input.facts.reached);
        slot("feedback").set(std::slice::from_ref(&input.facts.feedback));
        slot("ended_losses").set(std::slice::from_ref(&input.facts.ended_losses));
        slot("spend").set(std::slice::from_ref(&input.facts.spend));
        slot("segment_sets").set(std::slice::from_ref(&input.facts.segment_sets));
        slot("segments").set(std::slice::from_ref(&input.facts.segments));
        slot("activity_counts").set(&[input.activities]);
        slot("events").set(&input.events.unwrap_or_default());
        for (name, batch) in self.params(t_ms) {
            slot(name).set(&[batch]);
        }
    }

    /// The place of `width` among [`Engine::widths`].
    fn width_idx(&self, width: i64) -> Option<i32> {
        self.widths.binary_search(&width).ok().map(|i| i as i32)
    }

    /// The place of `2W` among the widths, if window `w` has a previous
    /// period: one that the retention holds.
    fn previous(&self, w: &Window) -> Option<i32> {
        let double = w.ms.saturating_mul(2);
        if double <= self.retention_ms { self.width_idx(double) } else { None }
    }

    /// The parameter tables for evaluation time `t_ms`.
    pub fn params(&self, t_ms: i64) -> Vec<(&'static str, RecordBatch)> {
        let col = |a: ArrayRef| a;
        let strs = |v: Vec<&str>| col(Arc::new(StringArray::from(v)));
        let ints = |v: Vec<i64>| col(Arc::new(Int64Array::from(v)));
        let i32s = |v: Vec<i32>| col(Arc::new(Int32Array::from(v)));
        let u16s = |v: Vec<u16>| col(Arc::new(UInt16Array::from(v)));
        let batch = |cols: Vec<(&str, ArrayRef)>| RecordBatch::try_from_iter(cols).expect("parameter table");
        // (pipeline index, stage index) of every stage.
        let stages: Vec<(u16, usize)> = (0..self.pipelines.len())
            .flat_map(|p| (0..self.pipelines[p].stages.len()).map(move |i| (p as u16, i)))
            .collect();
        let pipeline = |p: u16| &self.pipelines[usize::from(p)];
        vec![
            ("params", batch(vec![("t_ms", ints(vec![t_ms])), ("retention_ms", ints(vec![self.retention_ms]))])),
            (
                "windows",
                batch(vec![
                    ("window", strs(self.windows.iter().map(|w| w.label.as_str()).collect())),
                    ("width_ms", ints(self.windows.iter().map(|w| w.ms).collect())),
                    ("start_ms", ints(self.windows.iter().map(|w| t_ms.saturating_sub(w.ms)).collect())),
                    // The window's place among the widths: what `window_of` returns (see functions.rs).
                    (
                        "idx",
                        i32s(self.windows.iter().map(|w| self.width_idx(w.ms).expect("a window's width")).collect()),
                    ),
                    // The previous period (T − 2W, T − W]: its start, and the place of 2W
                    // (NULL where 2W is beyond the retention: no previous value).
                    (
                        "prev_start_ms",
                        col(Arc::new(Int64Array::from_iter(
                            self.windows.iter().map(|w| self.previous(w).map(|_| t_ms.saturating_sub(2 * w.ms))),
                        ))),
                    ),
                    ("prev_idx", col(Arc::new(Int32Array::from_iter(self.windows.iter().map(|w| self.previous(w)))))),
                ]),
            ),
            (
                "pipelines",
                batch(vec![
                    ("pipeline", strs(self.pipelines.iter().map(|p| p.id.as_str()).collect())),
                    ("pipeline_index", u16s((0..self.pipelines.len()).map(|i| i as u16).collect())),
                    ("currency", strs(self.pipelines.iter().map(|p| p.currency.as_str()).collect())),
                    ("won_index", i32s(self.pipelines.iter().map(|p| p.won as i32).collect())),
                    ("won_stage", strs(self.pipelines.iter().map(|p| p.stages[p.won].id.as_str()).collect())),
                ]),
            ),
            (
                "stages",
                batch(vec![
                    ("pipeline", strs(stages.iter().map(|&(p, _)| pipeline(p).id.as_str()).collect())),
                    ("pipeline_index", u16s(stages.iter().map(|(p, _)| *p).collect())),
                    ("stage_index", i32s(stages.iter().map(|(_, i)| *i as i32).collect())),
                    ("funnel_stage", strs(stages.iter().map(|&(p, i)| pipeline(p).stages[i].id.as_str()).collect())),
                    ("label", strs(stages.iter().map(|&(p, i)| pipeline(p).stages[i].label.as_str()).collect())),
                    (
                        "won",
                        col(Arc::new(BooleanArray::from(
                            stages.iter().map(|&(p, i)| pipeline(p).won == i).collect::<Vec<_>>(),
                        ))),
                    ),
                    (
                        "post_sale",
                        col(Arc::new(BooleanArray::from(
                            stages.iter().map(|&(p, i)| i > pipeline(p).won).collect::<Vec<_>>(),
                        ))),
                    ),
                    (
                        "sla_ms",
                        col(Arc::new(Int64Array::from(
                            stages.iter().map(|&(p, i)| pipeline(p).stages[i].sla_ms).collect::<Vec<_>>(),
                        ))),
                    ),
                ]),
            ),
            (
                "buckets",
                batch(vec![
                    (
                        "le",
                        col(Arc::new(StringArray::from_iter_values(
                            BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_string()]),
                        ))),
                    ),
                    (
                        "le_seconds",
                        col(Arc::new(Float64Array::from_iter_values(
                            BUCKETS.iter().map(|&b| b as f64).chain([f64::INFINITY]),
                        ))),
                    ),
                    ("idx", i32s((0..=BUCKETS.len() as i32).collect())),
                ]),
            ),
            (
                "quantiles",
                batch(vec![
                    ("quantile", strs(QUANTILES.iter().map(|q| q.0).collect())),
                    ("numerator", ints(QUANTILES.iter().map(|q| q.1).collect())),
                    ("denominator", ints(QUANTILES.iter().map(|q| q.2).collect())),
                    ("idx", i32s((0..QUANTILES.len() as i32).collect())),
                ]),
            ),
            ("surveys", batch(vec![("survey", strs(Survey::ALL.iter().map(|s| s.as_str()).collect()))])),
            (
                // The bands of the segment feedback responses (docs/metrics.md §5.4).
                "bands",
                batch(vec![
                    ("survey", strs(BANDS.iter().map(|b| b.0.as_str()).collect())),
                    ("band", strs(BANDS.iter().map(|b| b.1).collect())),
                    ("low", ints(BANDS.iter().map(|b| b.2).collect())),
                    ("high", ints(BANDS.iter().map(|b| b.3).collect())),
                ]),
            ),
            (
                // The buckets of the feedback score histogram (docs/metrics.md §5.3): 0 … 10, +Inf.
                "score_buckets",
                batch(vec![
                    (
                        "le",
                        col(Arc::new(StringArray::from_iter_values(
                            (0..=10).map(|b: i64| b.to_string()).chain(["+Inf".to_string()]),
                        ))),
                    ),
                    ("bound", ints((0..=11).collect())),
                ]),
            ),
        ]
    }

    /// Runs every query over `input` at `t_ms`. A failing query is reported
    /// in [`Snapshot::queries`] and its family left out; the rest go on.
    pub async fn refresh(&self, input: Input, t_ms: i64) -> Result<Snapshot, String> {
        let mut plans = self.plans.lock().await;
        self.fill(input, t_ms);
        // Size classes of a factor of 4: a few new plans from empty to millions of rows.
        let sizes: Vec<u32> = self.inputs.values().map(|s| (usize::BITS - s.num_rows().leading_zeros()) / 2).collect();
        if sizes != plans.sizes {
            plans.by_query.fill(None);
            plans.sizes = sizes;
        }
        // A query starts as soon as the tables it reads are made, each as its
        // own task: two at a time, so both cores stay busy (a long query does
        // not hold back the ones that do not need it) and no more
        // intermediate rows are held than that.
        let n = self.queries.len();
        let mut done: Vec<Option<Ran>> = (0..n).map(|_| None).collect();
        let mut started = vec![false; n];
        let mut running = futures_util::stream::FuturesUnordered::new();
        loop {
            while running.len() < 2 {
                // The first query not started is ready once all before it are done: it reads only earlier tables.
                let ready = (0..n).find(|&i| !started[i] && self.inputs_of[i].iter().all(|&j| done[j].is_some()));
                let Some(i) = ready else { break };
                started[i] = true;
                let plan = self.plan(&mut plans, i).await;
                let ctx = self.ctx.task_ctx();
                let task = tokio::spawn(async move {
                    let start = Instant::now();
                    let batches = match plan {
                        Ok(plan) => collect(plan, ctx).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    (batches, start.elapsed().as_secs_f64())
                });
                running.push(async move { (i, task.await) });
            }
            let Some((i, run)) = running.next().await else { break };
            let (batches, secs) = run.unwrap_or_else(|e| (Err(format!("the query's task failed: {e}")), 0.0));
            let q = &self.queries[i];
            if let Output::Table(name) = &q.output
                && let Some(slot) = plans.outputs.get(name)
            {
                match &batches {
                    Ok(b) => slot.set(b),
                    Err(e) => slot.fail(format!("{} failed: {e}", q.file)),
                }
            }
            done[i] = Some((batches, secs));
        }
        let mut snap = Snapshot { t_ms, ..Default::default() };
        for (q, d) in self.queries.iter().zip(done) {
            let (batches, secs) = d.expect("every query ran");
            let result = match (&q.output, batches) {
                (Output::Table(_), Ok(_)) => Ok(()),
                (Output::Metric(spec), Ok(b)) => export::family(spec, &b).map(|f| snap.families.push(f)),
                (_, Err(e)) => Err(e),
            };
            snap.queries.push((q.file.clone(), result.map(|()| secs)));
        }
        snap.text = export::render(&snap.families);
        Ok(snap)
    }

    /// Query `i`'s plan, ready to run: made first if it has none (then a
    /// `-- table:` query's slot is registered, for the queries after it).
    async fn plan(&self, plans: &mut Plans, i: usize) -> Result<Arc<dyn ExecutionPlan>, String> {
        if let Some(plan) = &plans.by_query[i] {
            return reset_plan_states(plan.clone()).map_err(|e| e.to_string());
        }
        let q = &self.queries[i];
        let plan = match self.ctx.sql(&q.sql).await {
            Ok(df) => df.create_physical_plan().await.map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        if let Output::Table(name) = &q.output {
            self.output(plans, name, plan.schema())?;
        }
        plans.by_query[i] = Some(plan.clone());
        Ok(plan)
    }

    /// The slot of a `-- table:` query's result, registered on first use.
    fn output<'a>(&self, plans: &'a mut Plans, name: &str, schema: SchemaRef) -> Result<&'a Slot, String> {
        if !plans.outputs.contains_key(name) {
            let slot = Slot::new(name, schema, false);
            self.ctx.register_table(name, Arc::new(slot.clone())).map_err(|e| e.to_string())?;
            plans.outputs.insert(name.to_string(), slot);
        }
        Ok(&plans.outputs[name])
    }

    /// Plans every query against empty tables: the check behind `funnelwatch check`.
    pub async fn check(&self) -> Vec<String> {
        let mut plans = self.plans.lock().await;
        let mut store = Store::new(&self.pipelines, self.retention_ms, &self.breakdowns);
        let input = self.gather(&mut store, 0);
        self.fill(input, 0);
        let mut errs = Vec::new();
        for q in &self.queries {
            let schema: SchemaRef = match self.ctx.sql(&q.sql).await {
                Ok(df) => Arc::new(df.schema().as_arrow().clone()),
                Err(e) => {
                    errs.push(format!("{}: {e}", q.file));
                    continue;
                }
            };
            match &q.output {
                Output::Table(name) => {
                    if let Err(e) = self.output(&mut plans, name, schema) {
                        errs.push(format!("{}: {e}", q.file));
                    }
                }
                Output::Metric(spec) => {
                    let mut needed: Vec<&str> = spec.labels.iter().map(String::as_str).collect();
                    needed.push(&spec.value);
                    if spec.kind == Kind::Histogram {
                        needed.extend(export::HISTOGRAM_COLUMNS);
                    }
                    for c in needed {
                        if schema.field_with_name(c).is_err() {
                            errs.push(format!("{}: the result has no column {c:?} (declared in the header)", q.file));
                        }
                    }
                }
            }
        }
        errs
    }
}

/// The tables a query's SQL reads (its CTEs aside), or `None` if it does not parse.
fn tables_read(sql: &str) -> Option<Vec<String>> {
    let ctx = SessionContext::new();
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let tables = state.sql_to_statement(sql, &dialect).and_then(|st| state.resolve_table_references(&st)).ok()?;
    Some(tables.iter().map(|t| t.table().to_string()).collect())
}
