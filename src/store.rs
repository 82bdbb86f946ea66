//! The in-memory event store: accepted events of each source partition as
//! Arrow record batches, deduplicated by `event_id`, evicted past retention.
//!
//! Invariants:
//! - an `event_id` is held at most once across all partitions (first wins);
//! - every stored event has `occurred_at > T − retention` after [`Store::snapshot`];
//! - memory is proportional to the events held: dictionaries and the deal
//!   interner give back what eviction and dropped partitions free.
//!
//! Low-cardinality strings are dictionary-encoded with store-wide
//! dictionaries. An event's seven optional strings are interned together as
//! one *attribute set* key (few distinct combinations occur, and most events
//! carry none), so a batch row holds one integer for all seven;
//! [`Store::snapshot`] expands it into one dictionary column per string.
//! Deals are interned to a dense `deal_key`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Builder, Int64Builder, PrimitiveArray,
    RecordBatch, StringArray, StringBuilder, UInt8Builder, UInt16Builder, UInt32Array, UInt32Builder,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Field, Int64Type, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type,
};

use crate::config::Pipeline;
use crate::event::{Event, EventType, Reason, Rejection};

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
/// Batches are compacted up to this many rows.
const BATCH_ROWS: usize = 64 * 1024;

/// Schema of the batches as stored (keys only).
fn stored_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("deal_key", DataType::UInt32, false),
        Field::new("type", DataType::UInt8, false),
        Field::new("occurred_at_ms", DataType::Int64, false),
        Field::new("pipeline", DataType::UInt16, false),
        Field::new("stage", DataType::UInt16, true),
        Field::new("amount", DataType::Float64, true),
    ];
    fields.push(Field::new("attrs", DataType::UInt32, false));
    Arc::new(Schema::new(fields))
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

/// Column indexes of the stored schema, for readers of raw batches.
pub mod col {
    pub const EVENT_ID: usize = 0;
    pub const DEAL_KEY: usize = 1;
    pub const TYPE: usize = 2;
    pub const OCCURRED_AT: usize = 3;
    pub const PIPELINE: usize = 4;
    pub const STAGE: usize = 5;
    pub const AMOUNT: usize = 6;
    /// The attribute-set key: the `DICT_COLUMNS` strings of the row.
    pub const ATTRS: usize = 7;
}

/// A string interner with reusable keys: the values of one dictionary column.
#[derive(Default)]
pub(crate) struct Interner {
    keys: HashMap<Arc<str>, u32>,
    values: Vec<Option<Arc<str>>>,
    refs: Vec<u32>,
    free: Vec<u32>,
    /// The values as an Arrow array, rebuilt only after a change.
    array: Option<ArrayRef>,
    /// Deal keys carry their pipeline after a NUL; the array shows the deal_id only.
    strip_pipeline: bool,
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

    pub(crate) fn get(&self, key: u32) -> Option<&str> {
        self.values.get(key as usize)?.as_deref()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn array(&mut self) -> ArrayRef {
        self.array
            .get_or_insert_with(|| {
                let strip = self.strip_pipeline;
                Arc::new(self.values.iter().map(|v| Some(shown(v.as_deref(), strip))).collect::<StringArray>())
            })
            .clone()
    }

    fn bytes(&self) -> usize {
        let strings: usize = self.keys.keys().map(|k| k.len() + 16).sum();
        strings + self.keys.capacity() * 24 + self.values.capacity() * 16 + self.refs.capacity() * 4
    }
}

fn shown(v: Option<&str>, strip_pipeline: bool) -> &str {
    match v {
        Some(s) if strip_pipeline => s.rsplit_once('\0').map_or(s, |(id, _)| id),
        Some(s) => s,
        None => "",
    }
}

/// Rows not yet sealed into a batch.
struct Builder {
    event_id: StringBuilder,
    deal_key: UInt32Builder,
    kind: UInt8Builder,
    occurred_at: Int64Builder,
    pipeline: UInt16Builder,
    stage: UInt16Builder,
    amount: Float64Builder,
    attrs: UInt32Builder,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            event_id: StringBuilder::new(),
            deal_key: UInt32Builder::new(),
            kind: UInt8Builder::new(),
            occurred_at: Int64Builder::new(),
            pipeline: UInt16Builder::new(),
            stage: UInt16Builder::new(),
            amount: Float64Builder::new(),
            attrs: UInt32Builder::new(),
        }
    }

    fn len(&self) -> usize {
        self.deal_key.len()
    }

    fn finish(&mut self, schema: &SchemaRef) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.deal_key.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.pipeline.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.amount.finish()),
        ];
        cols.push(Arc::new(self.attrs.finish()));
        RecordBatch::try_new(schema.clone(), cols).expect("builder matches schema")
    }
}

struct Partition {
    batches: Vec<RecordBatch>,
    builder: Builder,
}

/// Counts for the service metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub rows: usize,
    pub bytes: usize,
    pub deals: usize,
    pub partitions: usize,
}

pub struct Store {
    schema: SchemaRef,
    retention_ms: i64,
    partitions: BTreeMap<PartitionKey, Partition>,
    /// 128-bit hashes of held event ids: collisions are practically impossible
    /// (p ≈ n²/2¹²⁹) and the set costs a fraction of the strings.
    seen: HashSet<u128>,
    /// (pipeline, deal_id) as "deal_id \0 pipeline index" → dense deal key.
    deals: Interner,
    dicts: [Interner; DICT_COLUMNS.len()],
    /// Attribute sets: an unambiguous encoding of the seven strings → key.
    attr_sets: Interner,
    /// The `dicts` keys of each attribute set, by its key.
    attr_parts: Vec<[Option<u32>; DICT_COLUMNS.len()]>,
    pipeline_values: ArrayRef,
    stage_values: ArrayRef,
    /// Offset of each pipeline's stages in `stage_values`.
    stage_offsets: Vec<u16>,
    type_values: ArrayRef,
    max_occurred_at: Option<i64>,
    rows: usize,
}

impl Store {
    pub fn new(pipelines: &[Pipeline], retention_ms: i64) -> Store {
        let mut offsets = Vec::new();
        let mut stage_ids = Vec::new();
        for p in pipelines {
            offsets.push(stage_ids.len() as u16);
            stage_ids.extend(p.stages.iter().map(|s| s.id.as_str()));
        }
        Store {
            schema: stored_schema(),
            retention_ms,
            partitions: BTreeMap::new(),
            seen: HashSet::new(),
            deals: Interner { strip_pipeline: true, ..Default::default() },
            dicts: Default::default(),
            attr_sets: Interner::default(),
            attr_parts: Vec::new(),
            pipeline_values: Arc::new(StringArray::from_iter_values(pipelines.iter().map(|p| p.id.as_str()))),
            stage_values: Arc::new(StringArray::from_iter_values(stage_ids)),
            stage_offsets: offsets,
            type_values: Arc::new(StringArray::from_iter_values(EventType::ALL.iter().map(|t| t.as_str()))),
            max_occurred_at: None,
            rows: 0,
        }
    }

    /// The largest `occurred_at` held: `T` for `clock = "event"`.
    pub fn max_occurred_at(&self) -> Option<i64> {
        self.max_occurred_at
    }

    /// Adds a decoded event. `now_ms` is `T` at arrival for the `too_old`
    /// check (for the event clock, pass `None` and the store uses its own).
    pub fn insert(&mut self, part: &PartitionKey, e: &Event, now_ms: Option<i64>) -> Result<Inserted, Rejection> {
        if let Some(t) = now_ms.or(self.max_occurred_at)
            && e.occurred_at <= t.saturating_sub(self.retention_ms)
        {
            return Err(Rejection {
                reason: Reason::TooOld,
                detail: format!("occurred_at {} ms is at or before T - retention", e.occurred_at),
            });
        }
        if !self.seen.insert(xxhash_rust::xxh3::xxh3_128(e.event_id.as_bytes())) {
            return Ok(Inserted::Duplicate);
        }
        let deal = self.deals.intern(&deal_name(e.pipeline, &e.deal_id)).0;
        let attrs =
            self.intern_attrs([&e.currency, &e.owner, &e.team, &e.region, &e.source, &e.lost_reason, &e.activity]);
        let p = self
            .partitions
            .entry(part.clone())
            .or_insert_with(|| Partition { batches: Vec::new(), builder: Builder::new() });
        let b = &mut p.builder;
        b.event_id.append_value(&e.event_id);
        b.deal_key.append_value(deal);
        b.kind.append_value(e.kind as u8);
        b.occurred_at.append_value(e.occurred_at);
        b.pipeline.append_value(e.pipeline);
        b.stage.append_option(e.stage.map(|s| self.stage_offsets[e.pipeline as usize] + s));
        b.amount.append_option(e.amount);
        b.attrs.append_value(attrs);
        if b.len() >= BATCH_ROWS {
            // A full batch is never compacted again: copy it once so its
            // buffers are as large as the data (the builders grow by doubling).
            let full = b.finish(&self.schema);
            p.batches.push(concat_batches(&self.schema, [&full]).expect("same schema"));
        }
        self.rows += 1;
        self.max_occurred_at = self.max_occurred_at.max(Some(e.occurred_at));
        Ok(Inserted::Accepted)
    }

    /// Drops a partition and everything it held (on Kafka revocation).
    pub fn drop_partition(&mut self, part: &PartitionKey) {
        self.seal();
        if let Some(p) = self.partitions.remove(part) {
            for b in &p.batches {
                self.forget_rows(b, &BooleanArray::from(vec![true; b.num_rows()]));
            }
            self.max_occurred_at = self
                .stored_batches()
                .filter_map(|b| datafusion::arrow::compute::max(b.column(col::OCCURRED_AT).as_primitive::<Int64Type>()))
                .max();
        }
    }

    /// The attribute-set key of an event's seven optional strings; a new set
    /// takes one reference on each of its strings in `dicts`.
    fn intern_attrs(&mut self, strings: [&Option<String>; DICT_COLUMNS.len()]) -> u32 {
        // Length-prefixed, so no string can be mistaken for a separator.
        let mut name = String::with_capacity(64);
        for s in strings {
            match s {
                Some(s) => {
                    let _ = write!(name, "{}:{s}", s.len());
                }
                None => name.push('-'),
            }
        }
        let (key, new) = self.attr_sets.intern(&name);
        if new {
            let parts = std::array::from_fn(|i| strings[i].as_deref().map(|s| self.dicts[i].intern(s).0));
            let k = key as usize;
            if k == self.attr_parts.len() {
                self.attr_parts.push(parts);
            } else {
                self.attr_parts[k] = parts;
            }
        }
        key
    }

    /// Releases dedup entries, deal keys and attribute sets of the rows set in `mask`.
    fn forget_rows(&mut self, b: &RecordBatch, mask: &BooleanArray) {
        let ids = b.column(col::EVENT_ID).as_string::<i32>();
        let deals = b.column(col::DEAL_KEY).as_primitive::<UInt32Type>();
        let attrs = b.column(col::ATTRS).as_primitive::<UInt32Type>();
        for row in (0..b.num_rows()).filter(|&r| mask.value(r)) {
            self.seen.remove(&xxhash_rust::xxh3::xxh3_128(ids.value(row).as_bytes()));
            self.deals.release(deals.value(row));
            let set = attrs.value(row);
            if self.attr_sets.release(set) {
                for (part, interner) in self.attr_parts[set as usize].iter().zip(self.dicts.iter_mut()) {
                    if let Some(k) = part {
                        interner.release(*k);
                    }
                }
            }
            self.rows -= 1;
        }
    }

    fn seal(&mut self) {
        for p in self.partitions.values_mut() {
            if p.builder.len() > 0 {
                p.batches.push(p.builder.finish(&self.schema));
            }
        }
    }

    /// Evicts events at or before `cutoff_ms` (`T − retention`), compacts
    /// small batches, and returns the `events` table: every held event,
    /// including any after `T` (the engine filters those).
    pub fn snapshot(&mut self, cutoff_ms: i64) -> Vec<RecordBatch> {
        self.seal();
        let mut partitions = std::mem::take(&mut self.partitions);
        for p in partitions.values_mut() {
            let mut kept = Vec::with_capacity(p.batches.len());
            for b in p.batches.drain(..) {
                let ts = b.column(col::OCCURRED_AT).as_primitive::<Int64Type>();
                if datafusion::arrow::compute::min(ts).is_some_and(|m| m <= cutoff_ms) {
                    let evict: BooleanArray = ts.iter().map(|t| Some(t.is_some_and(|t| t <= cutoff_ms))).collect();
                    self.forget_rows(&b, &evict);
                    let keep = datafusion::arrow::compute::not(&evict).expect("not");
                    let b = filter_record_batch(&b, &keep).expect("filter matches schema");
                    if b.num_rows() > 0 {
                        kept.push(b);
                    }
                } else {
                    kept.push(b);
                }
            }
            p.batches = compact(&self.schema, kept);
        }
        partitions.retain(|_, p| !p.batches.is_empty());
        self.partitions = partitions;
        if self.rows == 0 {
            self.max_occurred_at = None;
        }

        let deal_values = self.deals.array();
        let dict_values: Vec<ArrayRef> = self.dicts.iter_mut().map(Interner::array).collect();
        // Per attribute set, its key in each dictionary (freed sets are never referenced).
        let parts: Vec<UInt32Array> =
            (0..DICT_COLUMNS.len()).map(|i| self.attr_parts.iter().map(|p| p[i]).collect()).collect();
        let schema = events_schema();
        self.partitions
            .values()
            .flat_map(|p| &p.batches)
            .map(|b| {
                let c = |i: usize| b.column(i).clone();
                let mut cols: Vec<ArrayRef> = vec![
                    c(col::EVENT_ID),
                    c(col::DEAL_KEY),
                    wrap::<UInt32Type>(&c(col::DEAL_KEY), &deal_values),
                    wrap::<UInt8Type>(&c(col::TYPE), &self.type_values),
                    c(col::OCCURRED_AT),
                    wrap::<UInt16Type>(&c(col::PIPELINE), &self.pipeline_values),
                    wrap::<UInt16Type>(&c(col::STAGE), &self.stage_values),
                    c(col::AMOUNT),
                ];
                let sets = b.column(col::ATTRS).as_primitive::<UInt32Type>();
                for (p, v) in parts.iter().zip(&dict_values) {
                    let keys: ArrayRef = Arc::new(take(p, sets, None).expect("set keys are in range"));
                    cols.push(wrap::<UInt32Type>(&keys, v));
                }
                RecordBatch::try_new(schema.clone(), cols).expect("events schema")
            })
            .collect()
    }

    /// The stored (key-only) batches, for readers that want the integer keys.
    pub fn stored_batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.partitions.values().flat_map(|p| &p.batches)
    }

    pub fn stats(&self) -> StoreStats {
        let arrow: usize =
            self.partitions.values().flat_map(|p| &p.batches).map(RecordBatch::get_array_memory_size).sum();
        // hashbrown: 16-byte slot plus one control byte per bucket, and
        // capacity() is 7/8 of the buckets.
        let seen = self.seen.capacity() * 8 / 7 * 17;
        let dicts: usize = self.dicts.iter().map(Interner::bytes).sum::<usize>()
            + self.attr_sets.bytes()
            + self.attr_parts.capacity() * std::mem::size_of::<[Option<u32>; DICT_COLUMNS.len()]>();
        StoreStats {
            rows: self.rows,
            bytes: arrow + seen + dicts + self.deals.bytes(),
            deals: self.deals.len(),
            partitions: self.partitions.len(),
        }
    }

    /// The deal_id of a deal key (for tests and diagnostics).
    pub fn deal_id(&self, key: u32) -> Option<&str> {
        self.deals.get(key).and_then(|s| s.rsplit_once('\0')).map(|(id, _)| id)
    }
}

fn deal_name(pipeline: u16, deal_id: &str) -> String {
    format!("{deal_id}\0{pipeline}")
}

/// Wraps keys with dictionary values: no copy of either.
pub(crate) fn dictionary<K: ArrowDictionaryKeyType>(keys: PrimitiveArray<K>, values: &ArrayRef) -> ArrayRef {
    Arc::new(DictionaryArray::<K>::try_new(keys, values.clone()).expect("keys within dictionary"))
}

/// [`dictionary`] for a stored key column.
fn wrap<K: ArrowDictionaryKeyType>(keys: &ArrayRef, values: &ArrayRef) -> ArrayRef {
    dictionary(keys.as_primitive::<K>().clone(), values)
}

/// Merges runs of small batches so a partition holds few, large batches.
fn compact(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
    let mut out: Vec<RecordBatch> = Vec::with_capacity(batches.len());
    for b in batches {
        match out.last_mut() {
            Some(last) if last.num_rows() + b.num_rows() <= BATCH_ROWS => {
                *last = concat_batches(schema, [&*last, &b]).expect("same schema");
            }
            _ => out.push(b),
        }
    }
    out
}

/// The deal keys of a stored batch (for the deal derivation).
pub fn deal_keys(b: &RecordBatch) -> &UInt32Array {
    b.column(col::DEAL_KEY).as_primitive::<UInt32Type>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn event(id: &str, deal: &str, at: i64) -> Event {
        Event {
            event_id: id.into(),
            deal_id: deal.into(),
            kind: EventType::Activity,
            occurred_at: at,
            pipeline: 0,
            stage: None,
            amount: None,
            currency: None,
            owner: Some(format!("owner-{id}")),
            team: None,
            region: None,
            source: None,
            lost_reason: None,
            activity: Some("call".into()),
        }
    }

    fn store() -> Store {
        Store::new(&Config::from_toml("").unwrap().pipelines, 1000)
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
        let snap = s.snapshot(0);
        assert_eq!(ids(&snap), ["e1"]);
        let deal = snap[0].column_by_name("deal_id").unwrap().as_dictionary::<UInt32Type>();
        let values = deal.values().as_string::<i32>();
        assert_eq!(values.value(deal.keys().value(0) as usize), "d");
        assert_eq!(s.stats().rows, 1);
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
        let snap = s.snapshot(49);
        assert_eq!(snap.iter().map(|b| b.num_rows()).sum::<usize>(), 50);
        assert_eq!(s.stats().rows, 50);
        assert_eq!(s.dicts[1].len(), 50, "owners of evicted rows are released");
        // An evicted id may come back (then it is a new event to the store).
        assert_eq!(s.insert(&p, &event("e0", "d0", 60), None), Ok(Inserted::Accepted));
        s.snapshot(1000);
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
        a2.event_id = "a2".into();
        for e in [&a, &b, &c, &a2] {
            s.insert(&p, e, None).unwrap();
        }
        let snap = s.snapshot(0);
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
    fn dropping_a_partition_forgets_its_events() {
        let mut s = store();
        let (a, b) = (PartitionKey::new("t", 0), PartitionKey::new("t", 1));
        s.insert(&a, &event("a1", "d", 10), None).unwrap();
        s.insert(&b, &event("b1", "d", 20), None).unwrap();
        s.drop_partition(&b);
        assert_eq!(s.max_occurred_at(), Some(10));
        assert_eq!(ids(&s.snapshot(0)), ["a1"]);
        assert_eq!(s.insert(&a, &event("b1", "d", 20), None), Ok(Inserted::Accepted));
    }

    #[test]
    fn many_small_snapshots_compact_into_few_batches() {
        let mut s = store();
        let p = PartitionKey::new("t", 0);
        for i in 0..500 {
            s.insert(&p, &event(&format!("e{i}"), "d", i), None).unwrap();
            s.snapshot(-1);
        }
        assert_eq!(s.snapshot(-1).len(), 1);
    }
}
