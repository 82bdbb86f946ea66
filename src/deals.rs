//! Per-deal facts of docs/metrics.md §4, kept up to date at ingest: for
//! every deal its state, current stage and since when, loss, amount,
//! currency, attributes, `R(d, i)` for every stage it reached, its
//! feedback answers up to `T` (§5.3), and the losses that a later event
//! ended (what the deal's state was at an earlier `T`, §5.5).
//!
//! [`Replayed::add`] is the one place that replays a deal's events (from its
//! own log, in (`occurred_at`, `event_id`) order, up to `T`); the store calls
//! it for exactly the deals an insert, an eviction or a dropped partition
//! touched (the two shards' deals on two threads), and stores the results
//! with [`Facts::set`]. [`Facts::tables`] turns the facts into the `deals` and `reached`
//! tables the queries read, so a refresh never replays events.
//!
//! The facts are columns indexed by the store's deal slot; a free slot
//! (a deal that lost all its events) is marked dead and left out of the tables.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, PrimitiveArray, RecordBatch, UInt16Array,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int64Type, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type,
};

use crate::config::Pipeline;
use crate::event::{Answer, EventType, Survey};
use crate::segments::Segments;
use crate::store::log::Ev;
use crate::store::{dict, dictionary};

/// The attribute columns of `deals` (and of `spend`), by name, and their place in an event's attribute set.
pub(crate) const ATTRIBUTES: [(&str, usize); 4] = [("owner", 1), ("team", 2), ("region", 3), ("source", 4)];
/// Place of the currency and the lost reason in an event's attribute set.
pub(crate) const CURRENCY: usize = 0;
const LOST_REASON: usize = 5;

const NONE_I64: i64 = i64::MIN;
const NONE_U32: u32 = u32::MAX;
const NONE_U16: u16 = u16::MAX;

pub fn deals_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("deal_id", dict(DataType::UInt32), false),
        Field::new("created_ms", DataType::Int64, true),
        Field::new("won_ms", DataType::Int64, true),
        Field::new("state", dict(DataType::UInt8), true),
        Field::new("stage", dict(DataType::UInt16), true),
        Field::new("stage_index", DataType::Int32, true),
        Field::new("stage_since_ms", DataType::Int64, true),
        Field::new("lost_ms", DataType::Int64, true),
        Field::new("lost_reason", dict(DataType::UInt32), true),
        Field::new("amount", DataType::Float64, true),
        Field::new("currency", dict(DataType::UInt32), false),
    ];
    fields.extend(ATTRIBUTES.iter().map(|(a, _)| Field::new(*a, dict(DataType::UInt32), true)));
    fields.push(Field::new("segment_set", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

pub fn feedback_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("occurred_at_ms", DataType::Int64, false),
        Field::new("survey", dict(DataType::UInt8), false),
        Field::new("score", DataType::Int64, false),
        Field::new("segment_set", DataType::UInt64, false),
    ]))
}

/// A loss that a later stage-bearing event or loss ended: the deal was
/// lost from `lost_ms` until (not including) `ended_ms` (docs/metrics.md §5.5).
pub fn ended_losses_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("lost_ms", DataType::Int64, false),
        Field::new("ended_ms", DataType::Int64, false),
        Field::new("segment_set", DataType::UInt64, false),
    ]))
}

pub fn reached_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("stage_index", DataType::Int32, false),
        Field::new("funnel_stage", dict(DataType::UInt16), false),
        Field::new("reached_ms", DataType::Int64, false),
        Field::new("prev_reached_ms", DataType::Int64, true),
        Field::new("created_ms", DataType::Int64, false),
        Field::new("segment_set", DataType::UInt64, false),
    ]))
}

/// Deal states, as keys of the `state` dictionary.
const OPEN: u8 = 0;
const WON: u8 = 1;
const LOST: u8 = 2;
const NO_STATE: u8 = u8::MAX;

/// The dictionary values the tables need from the store.
pub struct Values<'a> {
    pub pipelines: &'a ArrayRef,
    pub stages: &'a ArrayRef,
    /// Offset of each pipeline's stages in `stages`.
    pub stage_offsets: &'a [u16],
    pub deal_ids: &'a ArrayRef,
    /// The dictionaries of an attribute set's seven strings (currency first).
    pub strings: &'a [ArrayRef],
}

/// The facts of every deal slot, as columns.
#[derive(Default)]
pub struct Facts {
    live: Vec<bool>,
    pipeline: Vec<u16>,
    state: Vec<u8>,
    stage: Vec<u16>,
    stage_since: Vec<i64>,
    lost: Vec<i64>,
    lost_reason: Vec<u32>,
    amount: Vec<f64>,
    currency: Vec<u32>,
    attrs: [Vec<u32>; 4],
    /// `R(d, i)` by stage index, then slot.
    reach: Vec<Vec<i64>>,
    /// The feedback answers up to `T` (time, answer) of the slots that have any.
    answers: hashbrown::HashMap<u32, Box<[(i64, Answer)]>>,
    /// The ended losses up to `T` (lost, ended) of the slots that have any.
    ended: hashbrown::HashMap<u32, Box<[(i64, i64)]>>,
}

impl Facts {
    pub fn new(pipelines: &[Pipeline]) -> Facts {
        let stages = pipelines.iter().map(|p| p.stages.len()).max().unwrap_or(0);
        Facts { reach: vec![Vec::new(); stages], ..Default::default() }
    }

    /// Makes room for slots `0..n`; the columns grow by at least an
    /// eighth of their length at a time (the first rebuild of many deals
    /// takes no more than it needs).
    pub fn make_room(&mut self, n: usize) {
        if n <= self.live.len() {
            return;
        }
        fn to<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
            if n > v.capacity() {
                v.reserve_exact(n.max(v.len() + v.len() / 8) - v.len());
            }
            v.resize(n, fill);
        }
        to(&mut self.live, n, false);
        to(&mut self.pipeline, n, 0);
        to(&mut self.state, n, NO_STATE);
        to(&mut self.stage, n, NONE_U16);
        to(&mut self.stage_since, n, NONE_I64);
        to(&mut self.lost, n, NONE_I64);
        to(&mut self.lost_reason, n, NONE_U32);
        to(&mut self.amount, n, f64::NAN);
        to(&mut self.currency, n, NONE_U32);
        for a in &mut self.attrs {
            to(a, n, NONE_U32);
        }
        for r in &mut self.reach {
            to(r, n, NONE_I64);
        }
    }

    /// Marks a slot free: its deal holds no events any more.
    pub fn kill(&mut self, slot: u32) {
        if let Some(l) = self.live.get_mut(slot as usize) {
            *l = false;
        }
        self.answers.remove(&slot);
        self.ended.remove(&slot);
    }

    /// The number of `R(d, i)` columns (the longest pipeline's stages).
    pub fn stages(&self) -> usize {
        self.reach.len()
    }

    /// Stores the facts of every deal `replayed` holds.
    pub fn set(&mut self, replayed: &Replayed) {
        let stages = self.reach.len();
        self.make_room(replayed.rows.iter().map(|r| r.slot as usize + 1).max().unwrap_or(0));
        for (row, reach) in replayed.rows.iter().zip(replayed.reach.chunks_exact(stages.max(1))) {
            let s = row.slot as usize;
            self.live[s] = row.live;
            self.pipeline[s] = row.pipeline;
            self.state[s] = row.state;
            self.stage[s] = row.stage;
            self.stage_since[s] = row.stage_since;
            self.lost[s] = row.lost;
            self.lost_reason[s] = row.lost_reason;
            self.amount[s] = row.amount;
            self.currency[s] = row.currency;
            for (col, a) in self.attrs.iter_mut().zip(row.attrs) {
                col[s] = a;
            }
            for (col, &r) in self.reach.iter_mut().zip(reach) {
                col[s] = r;
            }
            sparse(&mut self.answers, row.slot, &replayed.answers[row.answers.clone()]);
            sparse(&mut self.ended, row.slot, &replayed.ended[row.ended.clone()]);
        }
    }

    /// The pipeline and attribute keys (in [`ATTRIBUTES`] order, `u32::MAX`
    /// for none) of every live deal: what its segments are ranked by.
    pub fn attributes(&self) -> impl Iterator<Item = (u16, [u32; 4])> + Clone + '_ {
        (0..self.live.len())
            .filter(|&s| self.live[s])
            .map(|s| (self.pipeline[s], std::array::from_fn(|a| self.attrs[a][s])))
    }

    /// The segment set of every slot (0 for a free one).
    pub fn segment_sets(&self, segments: &mut Segments) -> Vec<u64> {
        (0..self.live.len())
            .map(|s| match self.live[s] {
                true => segments.set_of(self.pipeline[s], std::array::from_fn(|a| self.attrs[a][s])),
                false => 0,
            })
            .collect()
    }

    /// The `feedback` table: a row per answer of a live deal, up to `T`;
    /// `sets` is [`Facts::segment_sets`].
    pub fn feedback(&self, v: &Values, sets: &[u64]) -> RecordBatch {
        let (mut slots, mut pipeline, mut at, mut survey, mut score, mut set) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (&slot, answers) in &self.answers {
            for (t, a) in answers.iter() {
                slots.push(slot);
                pipeline.push(self.pipeline[slot as usize]);
                at.push(*t);
                survey.push(a.survey as u8);
                score.push(i64::from(a.score));
                set.push(sets[slot as usize]);
            }
        }
        let surveys: ArrayRef =
            Arc::new(datafusion::arrow::array::StringArray::from_iter_values(Survey::ALL.iter().map(|s| s.as_str())));
        let pipeline = UInt16Array::from(pipeline);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(slots)),
            dictionary(pipeline.clone(), v.pipelines),
            Arc::new(pipeline),
            Arc::new(Int64Array::from(at)),
            dictionary(PrimitiveArray::<UInt8Type>::from(survey), &surveys),
            Arc::new(Int64Array::from(score)),
            Arc::new(UInt64Array::from(set)),
        ];
        RecordBatch::try_new(feedback_schema(), cols).expect("feedback schema")
    }

    /// The `ended_losses` table: a row per ended loss of a live deal, up to
    /// `T`; `sets` is [`Facts::segment_sets`].
    pub fn ended_losses(&self, sets: &[u64]) -> RecordBatch {
        let rows = self.ended.iter().flat_map(|(&slot, losses)| losses.iter().map(move |&l| (slot, l)));
        let (slots, losses): (Vec<u32>, Vec<(i64, i64)>) = rows.unzip();
        let (lost, ended): (Vec<i64>, Vec<i64>) = losses.into_iter().unzip();
        let pipeline = UInt16Array::from_iter_values(slots.iter().map(|&s| self.pipeline[s as usize]));
        let set = UInt64Array::from_iter_values(slots.iter().map(|&s| sets[s as usize]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(slots)),
            Arc::new(pipeline),
            Arc::new(Int64Array::from(lost)),
            Arc::new(Int64Array::from(ended)),
            Arc::new(set),
        ];
        RecordBatch::try_new(ended_losses_schema(), cols).expect("ended_losses schema")
    }

    /// The `deals` table and the `reached` table (one batch per stage index);
    /// `sets` is [`Facts::segment_sets`].
    pub fn tables(&self, pipelines: &[Pipeline], v: &Values, sets: &[u64]) -> (RecordBatch, Vec<RecordBatch>) {
        let n = self.live.len();
        let slots = UInt32Array::from_iter_values(0..n as u32);
        let pipeline = UInt16Array::from(self.pipeline.clone());
        let created = &self.reach.first().map(Vec::as_slice).unwrap_or(&[]);
        let won: Vec<i64> = (0..n).map(|s| self.reach[pipelines[self.pipeline[s] as usize].won][s]).collect();
        let stage_key: Vec<u16> = (0..n)
            .map(|s| match self.stage[s] {
                NONE_U16 => NONE_U16,
                i => v.stage_offsets[self.pipeline[s] as usize] + i,
            })
            .collect();
        let states: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["open", "won", "lost"]));
        // Lost reasons: the dictionary's values plus "unspecified" (docs/metrics.md §5).
        let reasons = with_extras(&v.strings[LOST_REASON], &["unspecified"]);
        let unspecified = (reasons.len() - 1) as u32;
        let lost_reason: Vec<u32> = (0..n)
            .map(|s| match (self.state[s], self.lost_reason[s]) {
                (LOST, NONE_U32) => unspecified,
                (LOST, k) => k,
                _ => NONE_U32,
            })
            .collect();
        // Currencies: the dictionary's values plus each pipeline's default.
        let base = v.strings[CURRENCY].len() as u32;
        let defaults: Vec<&str> = pipelines.iter().map(|p| p.currency.as_str()).collect();
        let currency_values = with_extras(&v.strings[CURRENCY], &defaults);
        let currencies: Vec<u32> = (0..n)
            .map(|s| match self.currency[s] {
                NONE_U32 => base + u32::from(self.pipeline[s]),
                k => k,
            })
            .collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(slots.clone()),
            dictionary(pipeline.clone(), v.pipelines),
            Arc::new(pipeline.clone()),
            dictionary(slots.clone(), v.deal_ids),
            Arc::new(opt::<Int64Type>(created, NONE_I64)),
            Arc::new(opt::<Int64Type>(&won, NONE_I64)),
            dictionary(opt::<UInt8Type>(&self.state, NO_STATE), &states),
            dictionary(opt::<UInt16Type>(&stage_key, NONE_U16), v.stages),
            Arc::new(Int32Array::from_iter(self.stage.iter().map(|&i| (i != NONE_U16).then_some(i32::from(i))))),
            Arc::new(opt::<Int64Type>(&self.stage_since, NONE_I64)),
            Arc::new(opt::<Int64Type>(&self.lost, NONE_I64)),
            dictionary(opt::<UInt32Type>(&lost_reason, NONE_U32), &reasons),
            Arc::new(Float64Array::from_iter(self.amount.iter().map(|a| (!a.is_nan()).then_some(*a)))),
            dictionary(UInt32Array::from(currencies), &currency_values),
        ];
        for (col, (_, at)) in self.attrs.iter().zip(ATTRIBUTES) {
            cols.push(dictionary(opt::<UInt32Type>(col, NONE_U32), &v.strings[at]));
        }
        let sets = UInt64Array::from(sets.to_vec());
        cols.push(Arc::new(sets.clone()));
        let live = BooleanArray::from(self.live.clone());
        let deals = RecordBatch::try_new(deals_schema(), cols).expect("deals schema");
        let deals = filter_record_batch(&deals, &live).expect("live mask");

        let funnel_base: Vec<u16> = self.pipeline.iter().map(|&p| v.stage_offsets[p as usize]).collect();
        let mut reached = Vec::with_capacity(self.reach.len());
        for (i, r) in self.reach.iter().enumerate() {
            let mask = BooleanArray::from_iter((0..n).map(|s| Some(self.live[s] && r[s] != NONE_I64)));
            // Stage i of the deal's pipeline; 0 where the row is left out (a shorter pipeline).
            let funnel = UInt16Array::from_iter_values(
                (0..n).map(|s| if r[s] == NONE_I64 { 0 } else { funnel_base[s] + i as u16 }),
            );
            let prev: ArrayRef = match i {
                0 => Arc::new(Int64Array::new_null(n)),
                _ => Arc::new(opt::<Int64Type>(&self.reach[i - 1], NONE_I64)),
            };
            let cols: Vec<ArrayRef> = vec![
                Arc::new(slots.clone()),
                dictionary(pipeline.clone(), v.pipelines),
                Arc::new(pipeline.clone()),
                Arc::new(Int32Array::from_value(i as i32, n)),
                dictionary(funnel, v.stages),
                Arc::new(Int64Array::from(r.clone())),
                prev,
                Arc::new(Int64Array::from(created.to_vec())),
                Arc::new(sets.clone()),
            ];
            let batch = RecordBatch::try_new(reached_schema(), cols).expect("reached schema");
            let batch = filter_record_batch(&batch, &mask).expect("reached mask");
            if batch.num_rows() > 0 {
                reached.push(batch);
            }
        }
        (deals, reached)
    }

    /// Bytes held by the columns.
    pub fn bytes(&self) -> usize {
        let n = self.live.capacity();
        let answers: usize = self.answers.values().map(|a| a.len() * 16).sum();
        let ended: usize = self.ended.values().map(|a| a.len() * 16).sum();
        n * (1 + 2 + 1 + 2 + 8 + 8 + 4 + 8 + 4 + 4 * 4 + 8 * self.reach.len())
            + answers
            + ended
            + (self.answers.capacity() + self.ended.capacity()) * 24
    }
}

/// The facts of some deals, replayed from their events ([`Replayed::add`])
/// apart from [`Facts`], so that the two shards' deals can be replayed on
/// two threads and then stored ([`Facts::set`]).
#[derive(Default)]
pub struct Replayed {
    rows: Vec<Row>,
    /// Each row's `R(d, i)`, `stages` values a row.
    reach: Vec<i64>,
    /// The rows' feedback answers (each row's a range of them).
    answers: Vec<(i64, Answer)>,
    /// The rows' ended losses, (lost, ended) (each row's a range of them).
    ended: Vec<(i64, i64)>,
    /// Scratch: first entry into each stage while replaying.
    entered: Vec<i64>,
}

struct Row {
    slot: u32,
    live: bool,
    pipeline: u16,
    state: u8,
    stage: u16,
    stage_since: i64,
    lost: i64,
    lost_reason: u32,
    amount: f64,
    currency: u32,
    attrs: [u32; 4],
    /// Its answers in [`Replayed::answers`].
    answers: std::ops::Range<usize>,
    /// Its ended losses in [`Replayed::ended`].
    ended: std::ops::Range<usize>,
    /// The first `occurred_at` after `T`, when the deal has events after it.
    next: Option<i64>,
}

impl Replayed {
    /// Replays deal `slot` of pipeline `p_idx` from its events in order,
    /// ignoring those after `t_ms` (a deal with none up to `t_ms` is left
    /// out of the tables); `stages` is [`Facts::stages`]. `parts` gives the
    /// dictionary keys of each attribute set.
    #[allow(clippy::too_many_arguments)]
    pub fn add<'a>(
        &mut self,
        slot: u32,
        p_idx: u16,
        p: &Pipeline,
        events: impl Iterator<Item = Ev<'a>>,
        parts: &[[Option<u32>; 7]],
        t_ms: i64,
        stages: usize,
    ) {
        self.entered.clear();
        self.entered.resize(p.stages.len(), NONE_I64);
        let (mut state, mut stage, mut stage_since) = (NO_STATE, NONE_U16, NONE_I64);
        let (mut lost, mut lost_reason) = (NONE_I64, NONE_U32);
        let mut amount = f64::NAN;
        let mut currency = NONE_U32;
        let mut attrs = [NONE_U32; 4];
        let (mut any, mut next) = (false, None);
        let (first_answer, first_ended) = (self.answers.len(), self.ended.len());
        for e in events {
            if e.at > t_ms {
                next = Some(e.at);
                break;
            }
            any = true;
            let strings = &parts[e.attrs as usize];
            // A stage-bearing event or another loss ends a loss.
            if state == LOST && (e.kind.bears_stage() || e.kind == EventType::DealLost) {
                self.ended.push((lost, e.at));
            }
            if e.kind.bears_stage() {
                let i = e.stage.expect("stage-bearing events have a stage");
                let first = &mut self.entered[usize::from(i)];
                if *first == NONE_I64 {
                    *first = e.at;
                }
                state = if usize::from(i) >= p.won { WON } else { OPEN };
                stage = i;
                stage_since = e.at;
            } else if e.kind == EventType::DealLost {
                state = LOST;
                lost = e.at;
                lost_reason = strings[LOST_REASON].unwrap_or(NONE_U32);
            } else if let Some(a) = e.answer {
                self.answers.push((e.at, a));
            }
            if let Some(a) = e.amount {
                amount = a;
            }
            if let Some(c) = strings[CURRENCY] {
                currency = c;
            }
            for (a, (_, at)) in attrs.iter_mut().zip(ATTRIBUTES) {
                if let Some(k) = strings[at] {
                    *a = k;
                }
            }
        }
        // R(d, i) = min over j >= i of E(d, s_j): a suffix minimum.
        let at = self.reach.len();
        self.reach.resize(at + stages.max(1), NONE_I64);
        let mut min = NONE_I64;
        for i in (0..stages).rev() {
            let e = self.entered.get(i).copied().unwrap_or(NONE_I64);
            if e != NONE_I64 && (min == NONE_I64 || e < min) {
                min = e;
            }
            self.reach[at + i] = min;
        }
        let is_lost = state == LOST;
        self.rows.push(Row {
            slot,
            // A deal whose events all lie after T is not a deal yet.
            live: any,
            pipeline: p_idx,
            state,
            stage,
            stage_since,
            lost: if is_lost { lost } else { NONE_I64 },
            lost_reason: if is_lost { lost_reason } else { NONE_U32 },
            amount,
            currency,
            attrs,
            answers: first_answer..self.answers.len(),
            ended: first_ended..self.ended.len(),
            next,
        });
    }

    /// (first `occurred_at` after `T`, slot) of each deal that has events after `T`.
    pub fn next_events(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.rows.iter().filter_map(|r| Some((r.next?, r.slot)))
    }
}

/// Keeps `items` under `slot` in `map`, or no entry if there are none.
fn sparse<T: Copy>(map: &mut hashbrown::HashMap<u32, Box<[T]>>, slot: u32, items: &[T]) {
    if items.is_empty() {
        map.remove(&slot);
    } else {
        map.insert(slot, items.into());
    }
}

/// A primitive array with `none` read as null.
fn opt<T: ArrowPrimitiveType>(values: &[T::Native], none: T::Native) -> PrimitiveArray<T> {
    let nulls = NullBuffer::new(BooleanBuffer::collect_bool(values.len(), |i| values[i] != none));
    PrimitiveArray::new(ScalarBuffer::from(values.to_vec()), Some(nulls))
}

/// String values followed by `extras`.
fn with_extras(values: &ArrayRef, extras: &[&str]) -> ArrayRef {
    use datafusion::arrow::array::AsArray;
    let v = values.as_string::<i32>();
    Arc::new(
        v.iter()
            .map(|s| Some(s.unwrap_or("")))
            .chain(extras.iter().map(|e| Some(*e)))
            .collect::<datafusion::arrow::array::StringArray>(),
    )
}
