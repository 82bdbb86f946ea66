//! The in-memory event store: every accepted event, once, in its deal's
//! log; the per-deal facts kept up to date from those logs; retention.
//!
//! Invariants:
//! - an `event_id` is held at most once across all partitions (first wins);
//! - after [`Store::refresh`] at `T`, every held event has
//!   `occurred_at > T − retention`, and the facts of every deal equal a
//!   replay of its held events up to `T` (docs/metrics.md §4): an insert,
//!   an eviction or a dropped partition marks exactly the deals it touched,
//!   and only those are derived again;
//! - memory is proportional to the events held: dictionaries, attribute
//!   sets and deal slots are given back when their last event goes.
//!
//! An event's seven optional strings are interned together as one
//! *attribute set* key (few combinations occur), each string in a
//! store-wide dictionary. The `events` table is not kept as such: it is
//! rebuilt from the logs for the queries that read it ([`Store::events`]).

mod ids;
mod index;
pub(crate) mod log;
mod shard;
mod spend;
mod times;

use std::collections::BTreeSet;

use hashbrown::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, DictionaryArray, Float64Builder, Int64Builder, PrimitiveArray, RecordBatch, StringArray,
    StringBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
};
use datafusion::arrow::datatypes::{ArrowDictionaryKeyType, DataType, Field, Schema, SchemaRef};

use crate::config::{Breakdowns, Pipeline};
use crate::deals::{self, Facts, Replayed};
use crate::event::{Event, EventType, Reason, Rejection};
use crate::segments::Segments;
use ids::IdSet;
use log::{Ev, Id, Removed};
use shard::{Append, Deals};
pub use spend::spend_schema;
use spend::{Spend, SpendLog};
use times::TimeCounts;

/// A source partition: a Kafka topic/partition, a file, the generator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl PartitionKey {
    pub fn new(topic: &str, partition: i32) -> PartitionKey {
        PartitionKey { topic: topic.into(), partition }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Accepted,
    Duplicate,
}

/// The string columns kept as store-wide dictionaries, in schema order.
const DICT_COLUMNS: [&str; 7] = ["currency", "owner", "team", "region", "source", "lost_reason", "activity"];
const ACTIVITY: usize = 6;

/// Asks the CPU to bring `x`'s cache line in: a hint, with no effect on
/// any result, for lookups in a large store whose next keys are known.
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing and cannot fault; sse is in every x86_64 target.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Runs `first` and `second`, with `parallel` on two threads (`second`
/// on a new one): the store's way of giving a large push both cores.
fn both<F, S: Send>(parallel: bool, first: impl FnOnce() -> F, second: impl FnOnce() -> S + Send) -> (F, S) {
    if parallel {
        std::thread::scope(|s| {
            let other = s.spawn(second);
            (first(), other.join().expect("the store's work does not panic"))
        })
    } else {
        (first(), second())
    }
}

/// Makes room for one more element in a full `v`: an eighth of its length
/// (at least `min`), not double, so a large vector holds little spare room.
fn grow_by_eighth<T>(v: &mut Vec<T>, min: usize) {
    if v.len() == v.capacity() {
        v.reserve_exact(min.max(v.len() / 8));
    }
}

/// A dictionary-of-strings type with `key` keys.
pub(crate) fn dict(key: DataType) -> DataType {
    DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8))
}

/// Schema of the `events` table the queries see.
pub fn events_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("deal_id", dict(DataType::UInt32), false),
        Field::new("type", dict(DataType::UInt8), false),
        Field::new("occurred_at_ms", DataType::Int64, false),
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("stage", dict(DataType::UInt16), true),
        Field::new("amount", DataType::Float64, true),
    ];
    fields.extend(DICT_COLUMNS.iter().map(|c| Field::new(*c, dict(DataType::UInt32), true)));
    Arc::new(Schema::new(fields))
}

/// A string interner with reusable, reference-counted keys: the values of one dictionary column.
#[derive(Default)]
struct Interner {
    keys: HashMap<Arc<str>, u32>,
    values: Vec<Option<Arc<str>>>,
    refs: Vec<u32>,
    free: Vec<u32>,
    /// The values as an Arrow array, rebuilt only after a change.
    array: Option<ArrayRef>,
}

impl Interner {
    /// The key of `s`, and whether `s` is new to the interner.
    fn intern(&mut self, s: &str) -> (u32, bool) {
        let (key, new) = match self.keys.get(s) {
            Some(&k) => (k, false),
            None => {
                let s: Arc<str> = s.into();
                let k = match self.free.pop() {
                    Some(k) => {
                        self.values[k as usize] = Some(s.clone());
                        k
                    }
                    None => {
                        self.values.push(Some(s.clone()));
                        self.refs.push(0);
                        (self.values.len() - 1) as u32
                    }
                };
                self.keys.insert(s, k);
                self.array = None;
                (k, true)
            }
        };
        self.refs[key as usize] += 1;
        (key, new)
    }

    /// Drops one reference; true when that freed the key.
    fn release(&mut self, key: u32) -> bool {
        let r = &mut self.refs[key as usize];
        *r -= 1;
        if *r == 0 {
            let s = self.values[key as usize].take().expect("live key");
            self.keys.remove(&s);
            self.free.push(key);
            self.array = None;
        }
        *r == 0
    }

    fn get(&self, key: u32) -> Option<&str> {
        self.values.get(key as usize)?.as_deref()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn array(&mut self) -> ArrayRef {
        self.array
            .get_or_insert_with(|| {
                Arc::new(self.values.iter().map(|v| Some(v.as_deref().unwrap_or(""))).collect::<StringArray>())
            })
            .clone()
    }

    fn bytes(&self) -> usize {
        let strings: usize = self.keys.keys().map(|k| k.len() + 16).sum();
        strings + self.keys.capacity() * 24 + self.values.capacity() * 16 + self.refs.capacity() * 4
    }
}

/// Counts for the service metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub rows: usize,
    pub bytes: usize,
    pub deals: usize,
    pub partitions: usize,
}

/// The tables of one state of the store: the per-deal facts
/// (docs/metrics.md §4), the spend events, and the segments (§5.4).
pub struct FactTables {
    pub deals: RecordBatch,
    /// One batch per stage index.
    pub reached: Vec<RecordBatch>,
    pub feedback: RecordBatch,
    pub ended_losses: RecordBatch,
    pub spend: RecordBatch,
    pub segment_sets: RecordBatch,
    pub segments: RecordBatch,
}

pub struct Store {
    pipelines: Vec<Pipeline>,
    retention_ms: i64,
    breakdowns: Breakdowns,
    ids: IdSet,
    deals: Deals,
    facts: Facts,
    /// (time of a held event after the `T` its deal was derived at, slot).
    pending: BTreeSet<(i64, u32)>,
    /// `T` of the last refresh.
    derived_at: Option<i64>,
    parts: Vec<Option<(PartitionKey, usize)>>,
    part_index: HashMap<PartitionKey, u16>,
    dicts: [Interner; DICT_COLUMNS.len()],
    /// Attribute sets: an unambiguous encoding of the seven strings → key.
    attr_sets: Interner,
    /// A reused buffer: an attribute set's encoding.
    attr_key: String,
    /// The `dicts` keys of each attribute set, by its key.
    attr_parts: Vec<[Option<u32>; DICT_COLUMNS.len()]>,
    /// Activity events by (pipeline, activity key).
    activities: TimeCounts<(u16, u32)>,
    /// The spend events, which belong to no deal.
    spend: SpendLog,
    pipeline_values: ArrayRef,
    stage_values: ArrayRef,
    /// Offset of each pipeline's stages in `stage_values`.
    stage_offsets: Vec<u16>,
    type_values: ArrayRef,
    max_occurred_at: Option<i64>,
    rows: usize,
    /// The tables of the facts as they were last built; dropped by any change.
    tables: Option<Arc<FactTables>>,
    /// The deal_id of every slot, as an array; dropped when a deal comes or goes.
    deal_ids: Option<ArrayRef>,
}

/// Pushes at least this large take both cores for dedup and appending.
const PARALLEL: usize = 512;

impl Store {
    pub fn new(pipelines: &[Pipeline], retention_ms: i64, breakdowns: &Breakdowns) -> Store {
        let mut offsets = Vec::new();
        let mut stage_ids = Vec::new();
        for p in pipelines {
            offsets.push(stage_ids.len() as u16);
            stage_ids.extend(p.stages.iter().map(|s| s.id.as_str()));
        }
        Store {
            pipelines: pipelines.to_vec(),
            retention_ms,
            breakdowns: breakdowns.clone(),
            ids: IdSet::default(),
            deals: Deals::default(),
            facts: Facts::new(pipelines),
            pending: BTreeSet::new(),
            derived_at: None,
            parts: Vec::new(),
            part_index: HashMap::new(),
            attr_key: String::new(),
            dicts: Default::default(),
            attr_sets: Interner::default(),
            attr_parts: Vec::new(),
            activities: TimeCounts::default(),
            spend: SpendLog::default(),
            pipeline_values: Arc::new(StringArray::from_iter_values(pipelines.iter().map(|p| p.id.as_str()))),
            stage_values: Arc::new(StringArray::from_iter_values(stage_ids)),
            stage_offsets: offsets,
            type_values: Arc::new(StringArray::from_iter_values(EventType::ALL.iter().map(|t| t.as_str()))),
            max_occurred_at: None,
            rows: 0,
            tables: None,
            deal_ids: None,
        }
    }

    /// The largest `occurred_at` held: `T` for `clock = "event"`.
    pub fn max_occurred_at(&self) -> Option<i64> {
        self.max_occurred_at
    }

    /// Adds a decoded event. `now_ms` is `T` at arrival for the `too_old`
    /// check (for the event clock, pass `None` and the store uses its own).
    pub fn insert(&mut self, part: &PartitionKey, e: &Event, now_ms: Option<i64>) -> Result<Inserted, Rejection> {
        self.insert_all(part, &[Ok(e.clone())], now_ms).pop().expect("one result for one event")
    }

    /// Adds a push's decoded events (a decoding rejection stays as it is),
    /// with the outcome of one [`Store::insert`] after another; a large
    /// push takes both cores for dedup and for the deals' logs.
    pub fn insert_all(
        &mut self,
        part: &PartitionKey,
        events: &[Result<Event, Rejection>],
        now_ms: Option<i64>,
    ) -> Vec<Result<Inserted, Rejection>> {
        let mut out: Vec<Option<Result<Inserted, Rejection>>> = Vec::with_capacity(events.len());
        let mut decoded = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            match e {
                Ok(e) => {
                    decoded.push((i, e));
                    out.push(None);
                }
                Err(r) => out.push(Some(Err(r.clone()))),
            }
        }
        let mut rest = &decoded[..];
        while !rest.is_empty() {
            let (now, later) = rest.split_at(self.decided(rest, now_ms));
            for (i, r) in self.insert_decided(part, now, now_ms) {
                out[i] = Some(r);
            }
            rest = later;
        }
        out.into_iter().map(|r| r.expect("every event has its outcome")).collect()
    }

    /// How many of `events` have their `too_old` check decided by `T` as it
    /// is now. With the event clock, `T` grows as events are accepted; an
    /// event is decided when it is too old both under `T` now and under the
    /// largest `T` the events before it could make, or under neither. The
    /// first event is always decided, so the count is at least one.
    fn decided(&self, events: &[(usize, &Event)], now_ms: Option<i64>) -> usize {
        if now_ms.is_some() {
            return events.len();
        }
        let mut highest = self.max_occurred_at;
        for (n, (_, e)) in events.iter().enumerate() {
            let is_old = self.too_old(self.max_occurred_at, e.occurred_at);
            if is_old != self.too_old(highest, e.occurred_at) {
                return n;
            }
            if !is_old {
                highest = highest.max(Some(e.occurred_at));
            }
        }
        events.len()
    }

    /// Whether an event at `at` is `too_old` at evaluation time `t` (none yet: never).
    fn too_old(&self, t: Option<i64>, at: i64) -> bool {
        t.is_some_and(|t| at <= t.saturating_sub(self.retention_ms))
    }

    /// Inserts events whose `too_old` check `T` now decides; returns each
    /// one's index and outcome.
    fn insert_decided(
        &mut self,
        part: &PartitionKey,
        events: &[(usize, &Event)],
        now_ms: Option<i64>,
    ) -> Vec<(usize, Result<Inserted, Rejection>)> {
        let mut out = Vec::with_capacity(events.len());
        let t = now_ms.or(self.max_occurred_at);
        let mut fresh = Vec::with_capacity(events.len());
        for (i, e) in events {
            if self.too_old(t, e.occurred_at) {
                let detail = format!("occurred_at {} ms is at or before T - retention", e.occurred_at);
                out.push((*i, Err(Rejection { reason: Reason::TooOld, detail })));
            } else {
                fresh.push((*i, e));
            }
        }
        let parallel = fresh.len() >= PARALLEL;
        let ids: Vec<&[u8]> = fresh.iter().map(|(_, e)| e.event_id.as_bytes()).collect();
        let added = self.ids.insert_all(&ids, parallel);
        let mut part_index = None;
        let mut appends = Vec::with_capacity(fresh.len());
        let mut accepted = 0;
        for ((i, e), added) in fresh.into_iter().zip(added) {
            if !added {
                out.push((i, Ok(Inserted::Duplicate)));
                continue;
            }
            let part = *part_index.get_or_insert_with(|| self.part(part));
            let attrs = self.intern_attrs(
                [&e.currency, &e.owner, &e.team, &e.region, &e.source, &e.lost_reason, &e.activity]
                    .map(|s| s.as_deref()),
            );
            if e.kind == EventType::Activity
                && let Some(a) = self.attr_parts[attrs as usize][ACTIVITY]
            {
                self.activities.add((e.pipeline, a), e.occurred_at);
            }
            self.max_occurred_at = self.max_occurred_at.max(Some(e.occurred_at));
            out.push((i, Ok(Inserted::Accepted)));
            accepted += 1;
            if e.kind == EventType::Spend {
                let amount = e.amount.expect("a spend event has an amount");
                let id = e.event_id.as_bytes().into();
                self.spend.push(Spend { at: e.occurred_at, amount, pipeline: e.pipeline, attrs, part, id });
                self.tables = None;
                continue;
            }
            let ev = Ev {
                at: e.occurred_at,
                kind: e.kind,
                stage: e.stage,
                amount: e.amount,
                answer: e.answer,
                attrs,
                part,
                id: Id::new(e.event_id.as_bytes()),
            };
            appends.push(Append { pipeline: e.pipeline, name: &e.deal_id, ev });
        }
        if let Some(p) = part_index
            && let Some((_, rows)) = &mut self.parts[p as usize]
        {
            *rows += accepted;
        }
        self.rows += accepted;
        if !appends.is_empty() {
            self.tables = None;
        }
        if self.deals.append_all(&appends, parallel) {
            self.deal_ids = None;
        }
        out
    }

    /// The index of a partition, registered on first use.
    fn part(&mut self, key: &PartitionKey) -> u16 {
        if let Some(&p) = self.part_index.get(key) {
            return p;
        }
        let p = match self.parts.iter().position(Option::is_none) {
            Some(p) => p,
            None => {
                self.parts.push(None);
                self.parts.len() - 1
            }
        };
        self.parts[p] = Some((key.clone(), 0));
        self.part_index.insert(key.clone(), p as u16);
        p as u16
    }

    /// Drops a partition and everything it held (on Kafka revocation).
    pub fn drop_partition(&mut self, key: &PartitionKey) {
        let Some(p) = self.part_index.remove(key) else { return };
        self.parts[p as usize] = None;
        let bit = 1u32 << (p % 32);
        let slots: Vec<u32> = self.deals.iter().filter(|(_, d)| d.parts & bit != 0).map(|(s, _)| s).collect();
        for slot in slots {
            self.remove_events(slot, |e| e.part == p);
        }
        for s in self.spend.remove(|s| s.part == p) {
            self.release_spend(s);
            self.tables = None;
        }
        self.max_occurred_at = self.deals.iter().filter_map(|(_, d)| d.log.last_at()).chain(self.spend.last_at()).max();
    }

    /// Gives back what one removed spend event held.
    fn release_spend(&mut self, s: Spend) {
        let r = Removed { at: s.at, kind: EventType::Spend, attrs: s.attrs, part: s.part, id: s.id.into() };
        self.release(r, s.pipeline);
    }

    /// Removes the events of deal `slot` that `remove` selects, releases
    /// what they held, and marks the deal for derivation (or frees it).
    fn remove_events(&mut self, slot: u32, mut remove: impl FnMut(&Ev) -> bool) {
        let deal = self.deals.get_mut(slot).expect("live slot");
        let removed = deal.log.remove(&mut remove);
        if removed.is_empty() {
            return;
        }
        let pipeline = deal.pipeline;
        if deal.log.is_empty() {
            self.deals.remove(slot);
            self.facts.kill(slot);
            self.deal_ids = None;
        } else {
            self.deals.mark_dirty(slot);
        }
        self.tables = None;
        for r in removed {
            self.release(r, pipeline);
        }
    }

    /// Gives back what one removed event held.
    fn release(&mut self, r: Removed, pipeline: u16) {
        self.ids.remove(&r.id);
        if r.kind == EventType::Activity
            && let Some(a) = self.attr_parts[r.attrs as usize][ACTIVITY]
        {
            self.activities.remove((pipeline, a), r.at);
        }
        if self.attr_sets.release(r.attrs) {
            for (part, interner) in self.attr_parts[r.attrs as usize].iter().zip(self.dicts.iter_mut()) {
                if let Some(k) = part {
                    interner.release(*k);
                }
            }
        }
        if let Some(Some((_, rows))) = self.parts.get_mut(r.part as usize) {
            *rows -= 1;
        }
        self.rows -= 1;
    }

    /// The attribute-set key of an event's seven optional strings; a new set
    /// takes one reference on each of its strings in `dicts`.
    fn intern_attrs(&mut self, strings: [Option<&str>; DICT_COLUMNS.len()]) -> u32 {
        // Length-prefixed, so no string can be mistaken for a separator.
        let name = &mut self.attr_key;
        name.clear();
        for s in strings {
            match s {
                Some(s) => {
                    let _ = write!(name, "{}:{s}", s.len());
                }
                None => name.push('-'),
            }
        }
        let (key, new) = self.attr_sets.intern(&self.attr_key);
        if new {
            let parts = std::array::from_fn(|i| strings[i].map(|s| self.dicts[i].intern(s).0));
            let k = key as usize;
            if k == self.attr_parts.len() {
                self.attr_parts.push(parts);
            } else {
                self.attr_parts[k] = parts;
            }
        }
        key
    }

    /// Brings the store to evaluation time `t_ms`: evicts events at or
    /// before `T − retention`, derives again every deal touched since the
    /// last refresh (and those with events that `T` has now reached), and
    /// returns the per-deal tables. Nothing is rebuilt when nothing changed.
    pub fn refresh(&mut self, t_ms: i64) -> Arc<FactTables> {
        let cutoff = t_ms.saturating_sub(self.retention_ms);
        let old: Vec<u32> =
            self.deals.iter().filter(|(_, d)| d.log.first_at().is_some_and(|f| f <= cutoff)).map(|(s, _)| s).collect();
        for slot in old {
            self.remove_events(slot, |e| e.at <= cutoff);
        }
        if self.spend.first_at().is_some_and(|f| f <= cutoff) {
            for s in self.spend.remove(|s| s.at <= cutoff) {
                self.release_spend(s);
            }
            self.tables = None;
        }
        if self.rows == 0 {
            self.max_occurred_at = None;
        }
        // Deals derived at an earlier T that hold events T has reached (or,
        // if the clock went back, that hold events after T).
        let went_back = self.derived_at.is_some_and(|d| t_ms < d);
        // The spend table holds the events up to T: T passed one (either way).
        let (lo, hi) = self.derived_at.map_or((i64::MIN, t_ms), |d| (d.min(t_ms), d.max(t_ms)));
        if self.spend.any_in(lo, hi) {
            self.tables = None;
        }
        self.derived_at = Some(t_ms);
        let mut due: Vec<u32> = Vec::new();
        if went_back {
            self.pending.clear();
            due.extend(self.deals.iter().filter(|(_, d)| d.log.last_at().is_some_and(|l| l > t_ms)).map(|(s, _)| s));
        }
        while let Some(&(at, slot)) = self.pending.first() {
            if at > t_ms {
                break;
            }
            self.pending.pop_first();
            due.push(slot);
        }
        for slot in due {
            self.deals.mark_dirty(slot);
        }
        // Replayed in rounds of at most REPLAY deals a shard, so that what a
        // round holds stays small (a rebuild derives every deal at once).
        const REPLAY: usize = 8192;
        let (pipelines, parts, stages) = (&self.pipelines, &self.attr_parts, self.facts.stages());
        if self.deals.dirty() > 0 {
            // Room for every slot at once: the rounds take the highest slots
            // first, and growing round by round would leave more spare room.
            self.facts.make_room(self.deals.end() as usize);
        }
        while self.deals.dirty() > 0 {
            let parallel = self.deals.dirty() >= PARALLEL;
            let replayed = self.deals.drain_dirty(REPLAY, parallel, |out: &mut Replayed, slot, deal| {
                deal.log.shrink();
                let p = &pipelines[deal.pipeline as usize];
                out.add(slot, deal.pipeline, p, deal.log.events(), parts, t_ms, stages);
            });
            for r in &replayed {
                self.facts.set(r);
                self.pending.extend(r.next_events());
            }
            self.tables = None;
        }
        if let Some(t) = &self.tables {
            return t.clone();
        }
        let deal_ids = self.deal_ids().clone();
        let strings: Vec<ArrayRef> = self.dicts.iter_mut().map(Interner::array).collect();
        let values = deals::Values {
            pipelines: &self.pipeline_values,
            stages: &self.stage_values,
            stage_offsets: &self.stage_offsets,
            deal_ids: &deal_ids,
            strings: &strings,
        };
        let mut segments = Segments::rank(&self.breakdowns, self.pipelines.len(), &strings, self.facts.attributes());
        let sets = self.facts.segment_sets(&mut segments);
        let (deals, reached) = self.facts.tables(&self.pipelines, &values, &sets);
        let feedback = self.facts.feedback(&values, &sets);
        let ended_losses = self.facts.ended_losses(&sets);
        let spend =
            self.spend.table(t_ms, &self.pipelines, &self.pipeline_values, &self.attr_parts, &strings, &mut segments);
        let ids: Vec<&str> = self.pipelines.iter().map(|p| p.id.as_str()).collect();
        let (segment_sets, segments) = (segments.sets_table(), segments.segments_table(&ids));
        let t = Arc::new(FactTables { deals, reached, feedback, ended_losses, spend, segment_sets, segments });
        self.tables = Some(t.clone());
        t
    }

    fn deal_ids(&mut self) -> &ArrayRef {
        let deals = &self.deals;
        self.deal_ids.get_or_insert_with(|| {
            let names = (0..deals.end()).map(|s| Some(deals.get(s).map_or("", |d| d.log.name())));
            Arc::new(names.collect::<StringArray>())
        })
    }

    /// Activity events in `(start, end]` for each of `ranges`, by pipeline
    /// index and activity name; names with no event in any range are left out.
    pub fn activity_counts(&self, ranges: &[(i64, i64)]) -> Vec<(u16, &str, Vec<usize>)> {
        self.activities
            .counts(ranges)
            .into_iter()
            .map(|((p, a), n)| (p, self.dicts[ACTIVITY].get(a).expect("held activity"), n))
            .collect()
    }

    /// The `events` table: every held deal event up to `t_ms` (spend events
    /// are the `spend` table), rebuilt from the logs (its cost is a pass over every event: only for queries that read it).
    pub fn events(&mut self, t_ms: i64) -> Vec<RecordBatch> {
        const ROWS: usize = 64 * 1024;
        let deal_values = self.deal_ids().clone();
        let dict_values: Vec<ArrayRef> = self.dicts.iter_mut().map(Interner::array).collect();
        let schema = events_schema();
        let mut out = Vec::new();
        let mut b = EventsBuilder::default();
        let mut id = Vec::new();
        for (slot, deal) in self.deals.iter() {
            let offset = self.stage_offsets[deal.pipeline as usize];
            for e in deal.log.events().take_while(|e| e.at <= t_ms) {
                id.clear();
                e.id.write(&mut id);
                b.event_id.append_value(std::str::from_utf8(&id).expect("ids are stored from str"));
                b.deal_key.append_value(slot);
                b.kind.append_value(e.kind as u8);
                b.at.append_value(e.at);
                b.pipeline.append_value(deal.pipeline);
                b.stage.append_option(e.stage.map(|s| offset + s));
                b.amount.append_option(e.amount);
                for (col, part) in b.strings.iter_mut().zip(&self.attr_parts[e.attrs as usize]) {
                    col.append_option(*part);
                }
                if b.deal_key.len() == ROWS {
                    out.push(b.finish(&schema, self, &deal_values, &dict_values));
                }
            }
        }
        if b.deal_key.len() > 0 {
            out.push(b.finish(&schema, self, &deal_values, &dict_values));
        }
        out
    }

    /// Bytes held, by part (estimates of the heap each structure holds).
    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        let logs: usize = self.deals.iter().map(|(_, d)| d.log.bytes() + 16).sum();
        let dicts: usize = self.dicts.iter().map(Interner::bytes).sum::<usize>()
            + self.attr_sets.bytes()
            + self.attr_parts.capacity() * std::mem::size_of::<[Option<u32>; DICT_COLUMNS.len()]>();
        vec![
            ("event logs (the events themselves, with ids)", logs),
            ("event-id dedup set", self.ids.bytes()),
            ("per-deal facts", self.facts.bytes()),
            ("deal slots and index", self.deals.bytes()),
            ("activity times", self.activities.bytes()),
            ("spend events", self.spend.bytes()),
            ("dictionaries and attribute sets", dicts),
        ]
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            rows: self.rows,
            bytes: self.memory().iter().map(|(_, b)| b).sum(),
            deals: self.deals.len(),
            partitions: self.parts.iter().flatten().filter(|(_, rows)| *rows > 0).count(),
        }
    }

    /// The deal_id of a deal key (for tests and diagnostics).
    pub fn deal_id(&self, key: u32) -> Option<&str> {
        self.deals.get(key).map(|d| d.log.name())
    }
}

#[derive(Default)]
struct EventsBuilder {
    event_id: StringBuilder,
    deal_key: UInt32Builder,
    kind: UInt8Builder,
    at: Int64Builder,
    pipeline: UInt16Builder,
    stage: UInt16Builder,
    amount: Float64Builder,
    strings: [UInt32Builder; DICT_COLUMNS.len()],
}

impl EventsBuilder {
    fn finish(&mut self, schema: &SchemaRef, s: &Store, deals: &ArrayRef, strings: &[ArrayRef]) -> RecordBatch {
        let deal_key = self.deal_key.finish();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(deal_key.clone()),
            dictionary(deal_key, deals),
            dictionary(self.kind.finish(), &s.type_values),
            Arc::new(self.at.finish()),
            dictionary(self.pipeline.finish(), &s.pipeline_values),
            dictionary(self.stage.finish(), &s.stage_values),
            Arc::new(self.amount.finish()),
        ];
        for (b, v) in self.strings.iter_mut().zip(strings) {
            cols.push(dictionary(b.finish(), v));
        }
        RecordBatch::try_new(schema.clone(), cols).expect("events schema")
    }
}

/// Wraps keys with dictionary values: no copy of either.
pub(crate) fn dictionary<K: ArrowDictionaryKeyType>(keys: PrimitiveArray<K>, values: &ArrayRef) -> ArrayRef {
    Arc::new(DictionaryArray::<K>::try_new(keys, values.clone()).expect("keys within dictionary"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt32Type;

    fn event(id: &str, deal: &str, at: i64) -> Event<'static> {
        Event {
            event_id: id.to_string().into(),
            deal_id: deal.to_string().into(),
            kind: EventType::Activity,
            occurred_at: at,
            pipeline: 0,
            stage: None,
            amount: None,
            currency: None,
            owner: Some(format!("owner-{id}").into()),
            team: None,
            region: None,
            source: None,
            lost_reason: None,
            activity: Some("call".into()),
            answer: None,
        }
    }

    fn store() -> Store {
        let c = Config::from_toml("").unwrap();
        Store::new(&c.pipelines, 1000, &c.breakdowns)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<String> {
        let mut v: Vec<String> = batches
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dedup_is_store_wide_and_first_wins() {
        let mut s = store();
        let (a, b) = (PartitionKey::new("t", 0), PartitionKey::new("t", 1));
        assert_eq!(s.insert(&a, &event("e1", "d", 10), None), Ok(Inserted::Accepted));
        let mut changed = event("e1", "d2", 11);
        changed.owner = None;
        assert_eq!(s.insert(&b, &changed, None), Ok(Inserted::Duplicate));
        let snap = s.events(i64::MAX);
        assert_eq!(ids(&snap), ["e1"]);
        let deal = snap[0].column_by_name("deal_id").unwrap().as_dictionary::<UInt32Type>();
        let values = deal.values().as_string::<i32>();
        assert_eq!(values.value(deal.keys().value(0) as usize), "d");
        assert_eq!(s.stats().rows, 1);
    }

    /// (event_id, deal_id, occurred_at) of every held event, sorted.
    fn held(s: &mut Store) -> Vec<(String, String, i64)> {
        let mut rows = Vec::new();
        for b in s.events(i64::MAX) {
            let deal = b.column_by_name("deal_id").unwrap().as_dictionary::<UInt32Type>();
            let names = deal.values().as_string::<i32>();
            let at =
                b.column_by_name("occurred_at_ms").unwrap().as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                let id = b.column(0).as_string::<i32>().value(i).to_string();
                rows.push((id, names.value(deal.keys().value(i) as usize).to_string(), at.value(i)));
            }
        }
        rows.sort();
        rows
    }

    #[test]
    fn a_large_push_has_the_outcome_of_one_insert_after_another() {
        let p = PartitionKey::new("t", 0);
        let mut x: u64 = 7;
        let mut next = move |n: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        // Repeated ids (some with other content), 300 deals, times rising with
        // a jitter wider than the retention: some events are too old only
        // once the events before them in the same push are accepted.
        let mut events: Vec<Result<Event, Rejection>> = (0..4000i64)
            .map(|i| {
                let mut e = event(&format!("e{}", next(3000)), &format!("d{}", next(300)), i + next(1600) as i64);
                e.owner = Some(format!("o{}", next(5)).into());
                Ok(e)
            })
            .collect();
        events[10] = Err(Rejection { reason: Reason::InvalidJson, detail: "bad".into() });
        let mut one = store();
        let mut all = store();
        let want: Vec<_> = events.iter().map(|e| e.clone().and_then(|e| one.insert(&p, &e, None))).collect();
        let got = all.insert_all(&p, &events, None);
        assert_eq!(got, want);
        let count = |reason| want.iter().filter(|r| matches!(r, Err(e) if e.reason == reason)).count();
        assert!(count(Reason::TooOld) > 100, "the case is exercised: {}", count(Reason::TooOld));
        assert!(want.iter().filter(|r| r == &&Ok(Inserted::Duplicate)).count() > 100);
        assert_eq!(held(&mut all), held(&mut one));
        assert_eq!(all.stats(), one.stats());
        assert_eq!(all.max_occurred_at(), one.max_occurred_at());
    }

    #[test]
    fn too_old_uses_t_at_arrival() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        s.insert(&p, &event("new", "d", 5000), None).unwrap();
        let err = s.insert(&p, &event("old", "d", 4000), None).unwrap_err();
        assert_eq!(err.reason, Reason::TooOld);
        assert!(s.insert(&p, &event("ok", "d", 4001), None).is_ok());
        assert_eq!(s.insert(&p, &event("w", "d", 4001), Some(6000)).unwrap_err().reason, Reason::TooOld);
    }

    #[test]
    fn eviction_frees_dedup_deals_and_dictionaries() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        for i in 0..100 {
            s.insert(&p, &event(&format!("e{i}"), &format!("d{}", i % 10), i), None).unwrap();
        }
        s.refresh(49 + 1000);
        let snap = s.events(i64::MAX);
        assert_eq!(snap.iter().map(|b| b.num_rows()).sum::<usize>(), 50);
        assert_eq!(s.stats().rows, 50);
        assert_eq!(s.dicts[1].len(), 50, "owners of evicted rows are released");
        // An evicted id may come back (then it is a new event to the store).
        assert_eq!(s.insert(&p, &event("e0", "d0", 60), None), Ok(Inserted::Accepted));
        s.refresh(2000);
        let st = s.stats();
        assert_eq!((st.rows, st.deals, st.partitions), (0, 0, 0));
        assert_eq!(s.dicts[1].len(), 0);
    }

    #[test]
    fn attribute_sets_expand_to_their_own_columns() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        let mut a = event("a", "d", 10);
        (a.owner, a.team) = (Some("x".into()), None);
        let mut b = event("b", "d", 11);
        (b.owner, b.team) = (None, Some("x".into()));
        let mut c = event("c", "d", 12);
        (c.owner, c.team, c.activity) = (Some("2:x".into()), None, None);
        let mut a2 = a.clone();
        (a2.event_id, a2.occurred_at) = ("a2".into(), 13);
        for e in [&a, &b, &c, &a2] {
            s.insert(&p, e, None).unwrap();
        }
        let snap = s.events(i64::MAX);
        let column = |name: &str| -> Vec<Option<String>> {
            let d = snap[0].column_by_name(name).unwrap().as_dictionary::<UInt32Type>();
            let v = d.values().as_string::<i32>();
            d.keys().iter().map(|k| k.map(|k| v.value(k as usize).to_string())).collect()
        };
        let x = || Some("x".to_string());
        assert_eq!(column("owner"), [x(), None, Some("2:x".into()), x()]);
        assert_eq!(column("team"), [None, x(), None, None]);
        assert_eq!(column("activity"), [Some("call".into()), Some("call".into()), None, Some("call".into())]);
        assert_eq!(s.attr_sets.len(), 3, "a and a2 share one attribute set");
    }

    #[test]
    fn only_touched_deals_are_derived_again_and_tables_are_reused() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        for i in 0..10 {
            s.insert(&p, &event(&format!("e{i}"), &format!("d{i}"), 100 + i), None).unwrap();
        }
        let first = s.refresh(200);
        assert_eq!(first.deals.num_rows(), 10);
        assert!(Arc::ptr_eq(&first, &s.refresh(201)), "nothing changed: the same tables");
        s.insert(&p, &event("late", "d3", 50), None).unwrap();
        let take_dirty = |s: &mut Store| -> Vec<u32> {
            s.deals.drain_dirty(usize::MAX, false, |slots: &mut Vec<u32>, slot, _| slots.push(slot)).concat()
        };
        let dirty = take_dirty(&mut s);
        let names: Vec<&str> = dirty.iter().map(|&d| s.deal_id(d).unwrap()).collect();
        assert_eq!(names, ["d3"], "only the late event's deal waits to be derived");
        s.deals.mark_dirty(dirty[0]);
        let second = s.refresh(202);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(take_dirty(&mut s).is_empty());
    }

    /// A rebuild replays every deal at once, in rounds and on two threads;
    /// a store refreshed after every few events replays a handful at a
    /// time on one: the facts come out the same.
    #[test]
    fn replaying_many_deals_at_once_equals_replaying_few_at_a_time() {
        let (mut all, mut few) = (store(), store());
        let p = PartitionKey::new("t", 0);
        for i in 0..40_000i64 {
            // Within the test store's retention (1 s) of the last T.
            let mut e = event(&format!("e{i}"), &format!("d{}", i % 20_000), 100 + i / 50);
            if i % 3 != 0 {
                (e.kind, e.stage) = (EventType::StageChanged, Some((i % 5) as u16));
            }
            all.insert(&p, &e, None).unwrap();
            few.insert(&p, &e, None).unwrap();
            if i % 400 == 0 {
                // Fewer deals than the two-thread threshold are dirty.
                few.refresh(100 + i / 50);
            }
        }
        let (a, b) = (all.refresh(1_000), few.refresh(1_000));
        assert_eq!(a.deals.num_rows(), 20_000);
        assert_eq!(a.deals, b.deals);
        assert_eq!(a.reached, b.reached);
    }

    #[test]
    fn events_after_t_count_once_t_reaches_them() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        s.insert(&p, &event("now", "d", 100), None).unwrap();
        s.insert(&p, &event("later", "future", 150), None).unwrap();
        assert_eq!(s.refresh(120).deals.num_rows(), 1, "the deal with only a later event is not a deal yet");
        assert_eq!(ids(&s.events(120)), ["now"]);
        assert_eq!(s.refresh(150).deals.num_rows(), 2, "at T = its time the later event counts");
    }

    fn spend(id: &str, at: i64, amount: f64) -> Event<'static> {
        let mut e = event(id, "", at);
        (e.kind, e.amount, e.activity, e.source) = (EventType::Spend, Some(amount), None, Some("ads".into()));
        e
    }

    /// (occurred_at, amount) of the rows of the `spend` table at `t`.
    fn spent(s: &mut Store, t: i64) -> Vec<(i64, f64)> {
        use datafusion::arrow::datatypes::{Float64Type, Int64Type};
        let b = s.refresh(t).spend.clone();
        let at = b.column_by_name("occurred_at_ms").unwrap().as_primitive::<Int64Type>();
        let amount = b.column_by_name("amount").unwrap().as_primitive::<Float64Type>();
        let mut rows: Vec<(i64, f64)> = at.values().iter().copied().zip(amount.values().iter().copied()).collect();
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        rows
    }

    /// Spend events belong to no deal, but are deduplicated, evicted and
    /// dropped with their partition like every other event.
    #[test]
    fn spend_events_are_held_apart_from_the_deals() {
        let mut s = store();
        let (a, b) = (PartitionKey::new("t", 0), PartitionKey::new("t", 1));
        s.insert(&a, &event("e1", "d", 100), None).unwrap();
        assert_eq!(s.insert(&a, &spend("s1", 150, 9.5), None), Ok(Inserted::Accepted));
        assert_eq!(s.insert(&b, &spend("e1", 160, 1.0), None), Ok(Inserted::Duplicate), "dedup spans types");
        assert_eq!(s.insert(&b, &spend("s2", 900, 2.0), None), Ok(Inserted::Accepted));
        assert_eq!(s.refresh(900).deals.num_rows(), 1, "a spend event makes no deal");
        assert_eq!((s.stats().rows, s.stats().deals), (3, 1));
        assert_eq!(spent(&mut s, 899), [(150, 9.5)], "the table holds spend up to T");
        assert_eq!(spent(&mut s, 900), [(150, 9.5), (900, 2.0)]);
        s.drop_partition(&b);
        assert_eq!(s.max_occurred_at(), Some(150));
        assert_eq!(spent(&mut s, 900), [(150, 9.5)]);
        // Retention 1 s: at T = 1150 the events at or before 150 are evicted, ids and all.
        s.refresh(1150);
        assert_eq!(spent(&mut s, 1150), []);
        assert_eq!((s.stats().rows, s.stats().deals), (0, 0));
        assert_eq!(s.dicts[4].len(), 0, "the source of the evicted spend is released");
        assert_eq!(s.insert(&a, &spend("s1", 1100, 3.0), None), Ok(Inserted::Accepted));
    }

    #[test]
    fn dropping_a_partition_forgets_its_events() {
        let mut s = store();
        let (a, b) = (PartitionKey::new("t", 0), PartitionKey::new("t", 1));
        s.insert(&a, &event("a1", "d", 10), None).unwrap();
        s.insert(&b, &event("b1", "d", 20), None).unwrap();
        s.drop_partition(&b);
        assert_eq!(s.max_occurred_at(), Some(10));
        assert_eq!(ids(&s.events(i64::MAX)), ["a1"]);
        assert_eq!(s.insert(&a, &event("b1", "d", 20), None), Ok(Inserted::Accepted));
    }
}
