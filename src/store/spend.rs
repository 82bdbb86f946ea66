//! The `spend` events (docs/metrics.md §5.2): money spent to acquire
//! customers. They belong to no deal, so they are held apart from the
//! deals' logs, one entry each, and make the `spend` table the queries read.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{dict, dictionary};
use crate::config::Pipeline;
use crate::deals::{ATTRIBUTES, CURRENCY};
use crate::segments::Segments;

pub fn spend_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("pipeline", dict(DataType::UInt16), false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("occurred_at_ms", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("currency", DataType::Utf8, false),
    ];
    fields.extend(ATTRIBUTES.iter().map(|(a, _)| Field::new(*a, dict(DataType::UInt32), true)));
    fields.push(Field::new("segment_set", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// One accepted `spend` event.
pub struct Spend {
    pub at: i64,
    pub amount: f64,
    pub pipeline: u16,
    /// The store's attribute-set key and partition index.
    pub attrs: u32,
    pub part: u16,
    pub id: Box<[u8]>,
}

/// The held `spend` events, in arrival order.
#[derive(Default)]
pub struct SpendLog {
    entries: Vec<Spend>,
}

impl SpendLog {
    pub fn push(&mut self, s: Spend) {
        super::grow_by_eighth(&mut self.entries, 16);
        self.entries.push(s);
    }

    /// Takes out the entries `remove` selects.
    pub fn remove(&mut self, remove: impl FnMut(&mut Spend) -> bool) -> Vec<Spend> {
        let out: Vec<Spend> = self.entries.extract_if(.., remove).collect();
        if !out.is_empty() && self.entries.len() < self.entries.capacity() / 2 {
            self.entries.shrink_to_fit();
        }
        out
    }

    /// The largest `occurred_at` held.
    pub fn last_at(&self) -> Option<i64> {
        self.entries.iter().map(|s| s.at).max()
    }

    pub fn first_at(&self) -> Option<i64> {
        self.entries.iter().map(|s| s.at).min()
    }

    /// Whether an entry lies in `(lo, hi]`.
    pub fn any_in(&self, lo: i64, hi: i64) -> bool {
        self.entries.iter().any(|s| lo < s.at && s.at <= hi)
    }

    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Spend>() + self.entries.iter().map(|s| s.id.len()).sum::<usize>()
    }

    /// The `spend` table: every held entry up to `t_ms`; the currency is
    /// the event's, else its pipeline's (docs/metrics.md §7); each entry's
    /// segment set from its own attributes. `parts` gives the dictionary
    /// keys of each attribute set, `strings` the dictionaries.
    #[allow(clippy::too_many_arguments)]
    pub fn table(
        &self,
        t_ms: i64,
        pipelines: &[Pipeline],
        pipeline_values: &ArrayRef,
        parts: &[[Option<u32>; 7]],
        strings: &[ArrayRef],
        segments: &mut Segments,
    ) -> RecordBatch {
        use datafusion::arrow::array::AsArray;
        let held: Vec<&Spend> = self.entries.iter().filter(|s| s.at <= t_ms).collect();
        let currencies = strings[CURRENCY].as_string::<i32>();
        let pipeline = UInt16Array::from_iter_values(held.iter().map(|s| s.pipeline));
        let mut cols: Vec<ArrayRef> = vec![
            dictionary(pipeline.clone(), pipeline_values),
            Arc::new(pipeline),
            Arc::new(Int64Array::from_iter_values(held.iter().map(|s| s.at))),
            Arc::new(Float64Array::from_iter_values(held.iter().map(|s| s.amount))),
            Arc::new(StringArray::from_iter_values(held.iter().map(|s| match parts[s.attrs as usize][CURRENCY] {
                Some(k) => currencies.value(k as usize),
                None => pipelines[usize::from(s.pipeline)].currency.as_str(),
            }))),
        ];
        for (_, at) in ATTRIBUTES {
            let keys = UInt32Array::from_iter(held.iter().map(|s| parts[s.attrs as usize][at]));
            cols.push(dictionary(keys, &strings[at]));
        }
        let sets = held.iter().map(|s| {
            let keys = ATTRIBUTES.map(|(_, at)| parts[s.attrs as usize][at].unwrap_or(u32::MAX));
            segments.set_of(s.pipeline, keys)
        });
        cols.push(Arc::new(UInt64Array::from_iter_values(sets)));
        RecordBatch::try_new(spend_schema(), cols).expect("spend schema")
    }
}
