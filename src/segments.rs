//! Segment breakdowns (docs/metrics.md §5.4): the segments of each pipeline
//! and dimension at `T`, and which of them a deal or a spend event falls in.
//!
//! A *segment set* is one pipeline with one segment of every configured
//! dimension. Deals, their `reached` rows and feedback, and spend events carry
//! the key of their set (`segment_set`), so a query groups by that one key
//! and then fans out to the dimensions through the small `segment_sets`
//! table: one pass over the facts, whatever the number of dimensions. The
//! key is the set written as a number (its segments' places as digits, the
//! pipeline last), so equal states of the store give equal tables.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt16Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use hashbrown::HashMap;

use crate::config::{Breakdowns, Dimension};
use crate::deals::ATTRIBUTES;

/// No value: the key of an absent attribute.
const NONE: u32 = u32::MAX;

/// `segment_sets`: the (dimension, segment) of every set, a row per dimension.
pub fn segment_sets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment_set", DataType::UInt64, false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
    ]))
}

/// `segments`: the segments that exist (docs/metrics.md §5.4): every listed
/// one, and `other` and `unspecified` where a deal or spend event falls in them.
pub fn segments_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("pipeline_index", DataType::UInt16, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
    ]))
}

/// One pipeline's segments of one dimension.
struct Listed {
    /// The listed segments, then `other`, then `unspecified`.
    names: Vec<Arc<str>>,
    /// The segment of each dictionary key of the dimension's attribute.
    of_key: Vec<u16>,
    /// Whether a deal or spend event fell in each segment.
    used: Vec<bool>,
}

impl Listed {
    fn other(&self) -> u16 {
        (self.names.len() - 2) as u16
    }

    fn unspecified(&self) -> u16 {
        (self.names.len() - 1) as u16
    }

    fn of(&self, key: u32) -> u16 {
        match key {
            NONE => self.unspecified(),
            k => self.of_key.get(k as usize).copied().unwrap_or(self.other()),
        }
    }
}

/// The segments of one state of the store, and the sets handed out so far.
pub struct Segments {
    /// The configured dimensions, each with its place in [`ATTRIBUTES`].
    dims: Vec<(Dimension, usize)>,
    /// By pipeline, then dimension.
    listed: Vec<Vec<Listed>>,
    /// The place value of each dimension's digit in a key, then the pipeline's.
    radix: Vec<u64>,
    /// The sets handed out: key → pipeline and segments.
    sets: HashMap<u64, (u16, [u16; 4])>,
}

impl Segments {
    /// Ranks the segments of every pipeline and dimension. `deals` yields
    /// the pipeline and the attribute keys (in [`ATTRIBUTES`] order, `u32::MAX`
    /// for none) of every deal with an event at or before `T`; `strings`
    /// are the attributes' dictionaries, by their place in an attribute set.
    pub fn rank<'a>(
        b: &Breakdowns,
        pipelines: usize,
        strings: &[ArrayRef],
        deals: impl Iterator<Item = (u16, [u32; 4])> + Clone + 'a,
    ) -> Segments {
        let dims: Vec<(Dimension, usize)> = b
            .dimensions
            .iter()
            .map(|&d| (d, ATTRIBUTES.iter().position(|(name, _)| *name == d.as_str()).expect("an attribute")))
            .collect();
        let mut listed: Vec<Vec<Listed>> = (0..pipelines).map(|_| Vec::with_capacity(dims.len())).collect();
        for &(d, a) in &dims {
            let values = strings[ATTRIBUTES[a].1].as_string::<i32>();
            // Values that are no named segment: none, other, unspecified (docs/metrics.md §7).
            let special = |k: usize| matches!(values.value(k), "" | "other" | "unspecified");
            let mut counts = vec![vec![0u32; values.len()]; pipelines];
            if !b.fixed.contains_key(&d) {
                for (p, keys) in deals.clone() {
                    if keys[a] != NONE {
                        counts[usize::from(p)][keys[a] as usize] += 1;
                    }
                }
            }
            for (p, counts) in counts.iter().enumerate() {
                let names: Vec<&str> = match b.fixed.get(&d) {
                    Some(fixed) => fixed.iter().map(String::as_str).collect(),
                    None => {
                        let mut ranked: Vec<usize> =
                            (0..values.len()).filter(|&k| counts[k] > 0 && !special(k)).collect();
                        // Most deals first, ties by value byte-wise.
                        ranked.sort_by(|&x, &y| counts[y].cmp(&counts[x]).then(values.value(x).cmp(values.value(y))));
                        ranked.truncate(b.limit);
                        ranked.into_iter().map(|k| values.value(k)).collect()
                    }
                };
                let index: HashMap<&str, u16> = names.iter().enumerate().map(|(i, n)| (*n, i as u16)).collect();
                let (other, unspecified) = (names.len() as u16, names.len() as u16 + 1);
                let of_key = (0..values.len())
                    .map(|k| match values.value(k) {
                        "" | "unspecified" => unspecified,
                        v => index.get(v).copied().unwrap_or(other),
                    })
                    .collect();
                let mut names: Vec<Arc<str>> = names.into_iter().map(Arc::from).collect();
                names.extend(["other".into(), "unspecified".into()]);
                let used = vec![false; names.len()];
                listed[p].push(Listed { names, of_key, used });
            }
        }
        // A digit per dimension, as wide as its most segments in any pipeline.
        let mut radix = vec![1u64];
        for d in 0..dims.len() {
            let width = listed.iter().map(|l| l[d].names.len() as u64).max().unwrap_or(1);
            radix.push(radix[d] * width);
        }
        Segments { dims, listed, radix, sets: HashMap::new() }
    }

    /// The set of a deal or spend event of pipeline `p` with attribute keys
    /// `keys` (in [`ATTRIBUTES`] order); its segments count as used.
    pub fn set_of(&mut self, p: u16, keys: [u32; 4]) -> u64 {
        let mut segs = [0u16; 4];
        let mut key = self.radix[self.dims.len()] * u64::from(p);
        for (i, (l, &(_, a))) in self.listed[usize::from(p)].iter_mut().zip(&self.dims).enumerate() {
            segs[i] = l.of(keys[a]);
            l.used[usize::from(segs[i])] = true;
            key += self.radix[i] * u64::from(segs[i]);
        }
        self.sets.entry(key).or_insert((p, segs));
        key
    }

    /// The `segment_sets` table: a row per set handed out and dimension.
    pub fn sets_table(&self) -> RecordBatch {
        let (mut set, mut pipeline, mut dimension, mut segment) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut sets: Vec<(&u64, &(u16, [u16; 4]))> = self.sets.iter().collect();
        sets.sort_unstable();
        for (key, (p, segs)) in sets {
            for (i, (l, (d, _))) in self.listed[usize::from(*p)].iter().zip(&self.dims).enumerate() {
                set.push(*key);
                pipeline.push(*p);
                dimension.push(d.as_str());
                segment.push(l.names[usize::from(segs[i])].to_string());
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(set)),
            Arc::new(UInt16Array::from(pipeline)),
            Arc::new(StringArray::from(dimension)),
            Arc::new(StringArray::from(segment)),
        ];
        RecordBatch::try_new(segment_sets_schema(), cols).expect("segment_sets schema")
    }

    /// The `segments` table: the listed segments of every pipeline and
    /// dimension, and `other` and `unspecified` where they were used.
    pub fn segments_table(&self, pipeline_ids: &[&str]) -> RecordBatch {
        let (mut pipeline, mut index, mut dimension, mut segment) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (p, dims) in self.listed.iter().enumerate() {
            for (l, (d, _)) in dims.iter().zip(&self.dims) {
                for (i, name) in l.names.iter().enumerate() {
                    if i < usize::from(l.other()) || l.used[i] {
                        pipeline.push(pipeline_ids[p]);
                        index.push(p as u16);
                        dimension.push(d.as_str());
                        segment.push(name.to_string());
                    }
                }
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(pipeline)),
            Arc::new(UInt16Array::from(index)),
            Arc::new(StringArray::from(dimension)),
            Arc::new(StringArray::from(segment)),
        ];
        RecordBatch::try_new(segments_schema(), cols).expect("segments schema")
    }
}
