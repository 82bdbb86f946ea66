//! Per-deal facts of METRICS.md §4, derived from the `events` table at `T`:
//! the `deals` table (state, current stage, age, attributes) and the
//! `reached` table (`R(d, i)` for every stage a deal reached).
//!
//! This is the one place that replays events in order; the SQL in
//! `queries/` only filters, joins and counts. Each deal's events are ordered
//! by (`occurred_at`, `event_id` byte-wise), never by arrival, so the result
//! is a pure function of the set of events and `T`. The cost is one sort of
//! the events plus a pass per deal; the queries then scale with deals.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Builder, Int32Builder, Int64Builder, PrimitiveArray, RecordBatch,
    StringArray, StringBuilder, UInt16Builder, UInt32Builder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type,
};

use crate::config::Pipeline;
use crate::event::EventType;
use crate::store::{dict, dictionary};

/// The attribute columns copied from events to deals, by name.
const ATTRIBUTES: [&str; 4] = ["owner", "team", "region", "source"];

pub fn deals_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("deal_id", dict(DataType::UInt32), false),
        Field::new("created_ms", DataType::Int64, true),
        Field::new("won_ms", DataType::Int64, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("stage", dict(DataType::UInt16), true),
        Field::new("stage_index", DataType::Int32, true),
        Field::new("stage_since_ms", DataType::Int64, true),
        Field::new("lost_ms", DataType::Int64, true),
        Field::new("lost_reason", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("currency", DataType::Utf8, false),
    ];
    fields.extend(ATTRIBUTES.iter().map(|a| Field::new(*a, dict(DataType::UInt32), true)));
    Arc::new(Schema::new(fields))
}

pub fn reached_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("stage_index", DataType::Int32, false),
        Field::new("funnel_stage", dict(DataType::UInt16), false),
        Field::new("reached_ms", DataType::Int64, false),
        Field::new("prev_reached_ms", DataType::Int64, true),
        Field::new("created_ms", DataType::Int64, false),
    ]))
}

/// The derived tables.
pub struct DealTables {
    pub deals: RecordBatch,
    pub reached: RecordBatch,
}

/// Read access to the columns of one `events` batch.
struct Cols<'a> {
    event_id: &'a StringArray,
    deal: &'a PrimitiveArray<UInt32Type>,
    kind: &'a PrimitiveArray<UInt8Type>,
    at: &'a PrimitiveArray<Int64Type>,
    pipeline: &'a PrimitiveArray<UInt16Type>,
    stage: &'a PrimitiveArray<UInt16Type>,
    amount: &'a PrimitiveArray<Float64Type>,
    currency: &'a DictionaryArray<UInt32Type>,
    lost_reason: &'a DictionaryArray<UInt32Type>,
    attrs: [&'a DictionaryArray<UInt32Type>; 4],
}

impl<'a> Cols<'a> {
    fn new(b: &'a RecordBatch) -> Cols<'a> {
        let c = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("events has {n}"));
        Cols {
            event_id: c("event_id").as_string::<i32>(),
            deal: c("deal_key").as_primitive(),
            kind: c("type").as_dictionary::<UInt8Type>().keys(),
            at: c("occurred_at_ms").as_primitive(),
            pipeline: c("pipeline").as_dictionary::<UInt16Type>().keys(),
            stage: c("stage").as_dictionary::<UInt16Type>().keys(),
            amount: c("amount").as_primitive(),
            currency: c("currency").as_dictionary(),
            lost_reason: c("lost_reason").as_dictionary(),
            attrs: ATTRIBUTES.map(|a| c(a).as_dictionary()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Won,
    Lost,
}

/// Derives the deal tables from `events` (the store snapshot) at `t_ms`,
/// ignoring events after `t_ms`.
pub fn derive(events: &[RecordBatch], pipelines: &[Pipeline], t_ms: i64) -> DealTables {
    let cols: Vec<Cols> = events.iter().map(Cols::new).collect();
    // (deal, occurred_at, batch, row) of every event up to T, in deal order.
    let mut rows: Vec<(u32, i64, u32, u32)> = Vec::with_capacity(events.iter().map(|b| b.num_rows()).sum());
    for (bi, c) in cols.iter().enumerate() {
        for r in 0..c.at.len() {
            let at = c.at.value(r);
            if at <= t_ms {
                rows.push((c.deal.value(r), at, bi as u32, r as u32));
            }
        }
    }
    let event_id = |&(_, _, b, r): &(u32, i64, u32, u32)| cols[b as usize].event_id.value(r as usize);
    rows.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| event_id(a).cmp(event_id(b))));

    let mut stage_offsets = Vec::with_capacity(pipelines.len());
    let mut n = 0u16;
    for p in pipelines {
        stage_offsets.push(n);
        n += p.stages.len() as u16;
    }
    let values = |name: &str| -> ArrayRef {
        events
            .first()
            .map(|b| b.column_by_name(name).expect("column").as_any_dictionary().values().clone())
            .unwrap_or_else(|| Arc::new(StringArray::from(Vec::<&str>::new())))
    };

    // Deals in (pipeline, deal_id) order, not in deal-key (arrival) order:
    // floating-point sums over the tables then add in the same order
    // whatever order the events arrived in.
    let deal_ids = values("deal_id");
    let deal_ids = deal_ids.as_string::<i32>();
    let mut groups: Vec<&[(u32, i64, u32, u32)]> = rows.chunk_by(|a, b| a.0 == b.0).collect();
    groups.sort_by_cached_key(|g| {
        (cols[g[0].2 as usize].pipeline.value(g[0].3 as usize), deal_ids.value(g[0].0 as usize))
    });

    let mut d = DealsBuilder::default();
    let mut r = ReachedBuilder::default();
    let mut entered: Vec<Option<i64>> = Vec::new();
    for group in groups {
        let first = &cols[group[0].2 as usize];
        let p_idx = first.pipeline.value(group[0].3 as usize) as usize;
        let p = &pipelines[p_idx];
        let offset = stage_offsets[p_idx];
        entered.clear();
        entered.resize(p.stages.len(), None);
        let mut state = None;
        let mut stage: Option<u16> = None;
        let mut stage_since = 0;
        let mut lost: Option<(i64, Option<String>)> = None;
        let mut amount = None;
        let mut currency: Option<&str> = None;
        let mut attrs: [Option<u32>; 4] = [None; 4];
        for &(_, at, b, row) in group {
            let c = &cols[b as usize];
            let row = row as usize;
            let kind = EventType::ALL[c.kind.value(row) as usize];
            if kind.bears_stage() {
                let key = c.stage.value(row);
                let s = (key - offset) as usize;
                entered[s].get_or_insert(at);
                state = Some(if s >= p.won { State::Won } else { State::Open });
                stage = Some(key);
                stage_since = at;
            } else if kind == EventType::DealLost {
                state = Some(State::Lost);
                let reason = c.lost_reason.is_valid(row).then(|| dict_value(c.lost_reason, row).to_string());
                lost = Some((at, reason));
            }
            if c.amount.is_valid(row) {
                amount = Some(c.amount.value(row));
            }
            if c.currency.is_valid(row) {
                currency = Some(dict_value(c.currency, row));
            }
            for (a, col) in attrs.iter_mut().zip(&c.attrs) {
                if col.is_valid(row) {
                    *a = Some(col.keys().value(row));
                }
            }
        }

        // R(d, i) = min over j >= i of E(d, s_j): a suffix minimum.
        let mut reach = vec![None; entered.len()];
        let mut min: Option<i64> = None;
        for i in (0..entered.len()).rev() {
            min = match (min, entered[i]) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            reach[i] = min;
        }
        let created = reach.first().copied().flatten();
        let deal_key = group[0].0;
        if let Some(created) = created {
            for (i, at) in reach.iter().enumerate() {
                let Some(at) = *at else { break };
                r.deal_key.append_value(deal_key);
                r.pipeline.append_value(p_idx as u16);
                r.stage_index.append_value(i as i32);
                r.funnel_stage.append_value(offset + i as u16);
                r.reached.append_value(at);
                r.prev.append_option(i.checked_sub(1).and_then(|j| reach[j]));
                r.created.append_value(created);
            }
        }

        d.deal_key.append_value(deal_key);
        d.pipeline.append_value(p_idx as u16);
        d.created.append_option(created);
        d.won.append_option(reach.get(p.won).copied().flatten());
        d.state.append_option(state.map(|s| match s {
            State::Open => "open",
            State::Won => "won",
            State::Lost => "lost",
        }));
        d.stage.append_option(stage);
        d.stage_index.append_option(stage.map(|k| (k - offset) as i32));
        d.stage_since.append_option(stage.map(|_| stage_since));
        let lost = lost.filter(|_| state == Some(State::Lost));
        d.lost.append_option(lost.as_ref().map(|l| l.0));
        d.lost_reason.append_option(lost.map(|l| l.1.unwrap_or_else(|| "unspecified".into())));
        d.amount.append_option(amount);
        d.currency.append_value(currency.unwrap_or(&p.currency));
        for (b, a) in d.attrs.iter_mut().zip(attrs) {
            b.append_option(a);
        }
    }

    let stage_values = values("stage");
    let pipeline_values = values("pipeline");
    let deal_keys = d.deal_key.finish();
    let mut deal_cols: Vec<ArrayRef> = vec![
        Arc::new(deal_keys.clone()),
        dictionary(d.pipeline.finish(), &pipeline_values),
        dictionary(deal_keys, &values("deal_id")),
        Arc::new(d.created.finish()),
        Arc::new(d.won.finish()),
        Arc::new(d.state.finish()),
        dictionary(d.stage.finish(), &stage_values),
        Arc::new(d.stage_index.finish()),
        Arc::new(d.stage_since.finish()),
        Arc::new(d.lost.finish()),
        Arc::new(d.lost_reason.finish()),
        Arc::new(d.amount.finish()),
        Arc::new(d.currency.finish()),
    ];
    for (b, name) in d.attrs.iter_mut().zip(ATTRIBUTES) {
        deal_cols.push(dictionary(b.finish(), &values(name)));
    }
    let reached_cols: Vec<ArrayRef> = vec![
        Arc::new(r.deal_key.finish()),
        dictionary(r.pipeline.finish(), &pipeline_values),
        Arc::new(r.stage_index.finish()),
        dictionary(r.funnel_stage.finish(), &stage_values),
        Arc::new(r.reached.finish()),
        Arc::new(r.prev.finish()),
        Arc::new(r.created.finish()),
    ];
    DealTables {
        deals: RecordBatch::try_new(deals_schema(), deal_cols).expect("deals schema"),
        reached: RecordBatch::try_new(reached_schema(), reached_cols).expect("reached schema"),
    }
}

fn dict_value(a: &DictionaryArray<UInt32Type>, row: usize) -> &str {
    a.values().as_string::<i32>().value(a.keys().value(row) as usize)
}

#[derive(Default)]
struct DealsBuilder {
    deal_key: UInt32Builder,
    pipeline: UInt16Builder,
    created: Int64Builder,
    won: Int64Builder,
    state: StringBuilder,
    stage: UInt16Builder,
    stage_index: Int32Builder,
    stage_since: Int64Builder,
    lost: Int64Builder,
    lost_reason: StringBuilder,
    amount: Float64Builder,
    currency: StringBuilder,
    attrs: [UInt32Builder; 4],
}

#[derive(Default)]
struct ReachedBuilder {
    deal_key: UInt32Builder,
    pipeline: UInt16Builder,
    stage_index: Int32Builder,
    funnel_stage: UInt16Builder,
    reached: Int64Builder,
    prev: Int64Builder,
    created: Int64Builder,
}
