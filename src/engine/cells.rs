//! Counts and sums of every window in one pass (docs/metrics.md §5), as
//! DataFusion aggregates that keep a few integer cells per group:
//!
//! - `count_by_window(w)`: a list with one element per window, element `k`
//!   being the number of rows whose `w` (a `window_of` index) is `<= k`;
//! - `sum_by_window(w, x)`: likewise the sum of the BIGINT `x`;
//! - `histogram_by_window(w, ms)`: a list per window of one element per
//!   histogram bucket, element `[k][j]` being the number of rows with
//!   `w <= k` whose duration `ms` is at most bucket `j`'s bound
//!   (cumulative, as a Prometheus histogram counts).
//!
//! The windows all end at T, so a row counts in its smallest window and
//! every wider one: a row adds to one cell, and the cells are summed upward
//! once per group at the end. A row without a window adds nothing. The
//! cells are integers, so the result does not depend on how the rows are
//! split or ordered.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, Int64Builder, ListArray, ListBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::BUCKETS;
use super::single::{self, Single};

/// For every value, the number of `thresholds` it is at or below: one
/// plain pass over the values per threshold, so it vectorises.
pub fn at_or_below(values: &[i64], thresholds: impl Iterator<Item = i64>) -> Vec<i32> {
    let mut n = vec![0; values.len()];
    for t in thresholds {
        n.iter_mut().zip(values).for_each(|(n, &v)| *n += i32::from(v <= t));
    }
    n
}

/// For every duration in milliseconds, the index (in `buckets`) of the
/// narrowest histogram bucket that holds it: the number of bounds below it.
pub fn buckets(ms: &[i64]) -> Vec<i32> {
    let mut idx = at_or_below(ms, BUCKETS.iter().map(|&b| i64::from(b) * 1000));
    idx.iter_mut().for_each(|i| *i = BUCKETS.len() as i32 - *i);
    idx
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Count,
    Sum,
    Histogram,
}

/// The three functions, for `windows` windows.
pub fn functions(windows: usize) -> [AggregateUDF; 3] {
    let udf = |kind, args: Vec<DataType>| {
        AggregateUDF::from(ByWindow { kind, signature: Signature::exact(args, Volatility::Immutable), windows })
    };
    [
        udf(Kind::Count, vec![DataType::Int32]),
        udf(Kind::Sum, vec![DataType::Int32, DataType::Int64]),
        udf(Kind::Histogram, vec![DataType::Int32, DataType::Int64]),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ByWindow {
    kind: Kind,
    signature: Signature,
    windows: usize,
}

fn list_of(item: DataType) -> DataType {
    DataType::new_list(item, true)
}

impl AggregateUDFImpl for ByWindow {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Count => "count_by_window",
            Kind::Sum => "sum_by_window",
            Kind::Histogram => "histogram_by_window",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Histogram => list_of(list_of(DataType::Int64)),
            Kind::Count | Kind::Sum => list_of(DataType::Int64),
        })
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single(Cells::new(self.kind, self.windows))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "cells"), list_of(DataType::Int64), true))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Cells::new(self.kind, self.windows)))
    }
}

/// The cells of every group, `width` per group: one per window, or (for
/// a histogram) one per window and bucket, window-major.
#[derive(Debug)]
struct Cells {
    kind: Kind,
    windows: usize,
    width: usize,
    cells: Vec<i64>,
}

impl Cells {
    fn new(kind: Kind, windows: usize) -> Cells {
        let per_window = if kind == Kind::Histogram { BUCKETS.len() + 1 } else { 1 };
        Cells { kind, windows, width: windows * per_window, cells: Vec::new() }
    }

    fn groups(&self) -> usize {
        self.cells.len() / self.width.max(1)
    }

    /// Adds the rows of `values` (those `filter` keeps) to their groups,
    /// `group(row)` naming each row's group.
    fn add_rows(&mut self, values: &[ArrayRef], group: impl Fn(usize) -> usize, filter: Option<&BooleanArray>) {
        let w = values[0].as_primitive::<Int32Type>();
        let x = values.get(1).map(|x| x.as_primitive::<Int64Type>());
        let buckets = match (self.kind, x) {
            (Kind::Histogram, Some(x)) => buckets(x.values()),
            _ => Vec::new(),
        };
        let bucket = |i: usize| buckets[i] as usize;
        for i in 0..w.len() {
            if !single::keeps(filter, i) || !w.is_valid(i) {
                continue;
            }
            let Ok(k) = usize::try_from(w.value(i)) else { continue };
            if k >= self.windows {
                continue;
            }
            let (cell, amount) = match (self.kind, x) {
                (Kind::Count, _) => (k, 1),
                (_, Some(x)) if x.is_valid(i) => match self.kind {
                    Kind::Sum => (k, x.value(i)),
                    _ => (k * (BUCKETS.len() + 1) + bucket(i), 1),
                },
                _ => continue,
            };
            let c = &mut self.cells[group(i) * self.width + cell];
            *c = c.wrapping_add(amount);
        }
    }

    /// The cells of the groups `emit_to` names, taken out.
    fn take(&mut self, emit_to: EmitTo) -> Vec<i64> {
        match emit_to {
            EmitTo::All => std::mem::take(&mut self.cells),
            EmitTo::First(n) => self.cells.drain(..n * self.width).collect(),
        }
    }
}

impl single::Groups for Cells {
    fn ensure_groups(&mut self, n: usize) {
        if self.groups() < n {
            self.cells.resize(n * self.width, 0);
        }
    }
}

/// Raw cells as a list per group (the state, which adds cell by cell).
fn lists(cells: Vec<i64>, width: usize) -> ArrayRef {
    let groups = cells.len() / width.max(1);
    let field = Arc::new(Field::new_list_field(DataType::Int64, true));
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, groups));
    Arc::new(ListArray::new(field, offsets, Arc::new(Int64Array::from(cells)), None))
}

impl GroupsAccumulator for Cells {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        single::Groups::ensure_groups(self, total_num_groups);
        self.add_rows(values, |i| group_indices[i], opt_filter);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut cells = self.take(emit_to);
        let per_window = self.width / self.windows.max(1);
        for group in cells.chunks_exact_mut(self.width.max(1)) {
            // Up the windows: window k holds the rows of k and every narrower one.
            for k in 1..self.windows {
                for j in 0..per_window {
                    group[k * per_window + j] += group[(k - 1) * per_window + j];
                }
            }
            // Up the buckets: a bucket counts every shorter duration too.
            if self.kind == Kind::Histogram {
                for window in group.chunks_exact_mut(per_window) {
                    for j in 1..per_window {
                        window[j] += window[j - 1];
                    }
                }
            }
        }
        if self.kind != Kind::Histogram {
            return Ok(lists(cells, self.width));
        }
        let mut out = ListBuilder::new(ListBuilder::new(Int64Builder::new()));
        for group in cells.chunks_exact(self.width.max(1)) {
            for window in group.chunks_exact(per_window) {
                out.values().values().append_slice(window);
                out.values().append(true);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![lists(self.take(emit_to), self.width)])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        single::Groups::ensure_groups(self, total_num_groups);
        let states = values[0].as_list::<i32>();
        for (i, &g) in group_indices.iter().enumerate() {
            if !states.is_valid(i) {
                continue;
            }
            let state = states.value(i);
            let cells = &mut self.cells[g * self.width..(g + 1) * self.width];
            for (c, x) in cells.iter_mut().zip(state.as_primitive::<Int64Type>().values()) {
                *c = c.wrapping_add(*x);
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut rows = Cells::new(self.kind, self.windows);
        single::Groups::ensure_groups(&mut rows, values[0].len());
        rows.add_rows(values, |i| i, opt_filter);
        Ok(vec![lists(rows.cells, self.width)])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.cells.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int32Array;

    use super::*;

    fn lists_of(out: &ArrayRef) -> Vec<Vec<i64>> {
        let l = out.as_list::<i32>();
        (0..l.len()).map(|i| l.value(i).as_primitive::<Int64Type>().values().to_vec()).collect()
    }

    fn split_merge_convert(kind: Kind, args: Vec<ArrayRef>, groups: &[usize]) -> [ArrayRef; 2] {
        single::split_merge_convert(|| Cells::new(kind, 3), &args, groups)
    }

    /// Three windows. Group 0's rows by window: 0: {5 s}, 1: {}, 2: {1 s, 2 h},
    /// and a row without a window; group 1 has one row (10 s) in window 1
    /// and a row without a value. The last row (window 0) is filtered out.
    fn rows() -> (Vec<ArrayRef>, [usize; 7]) {
        let w: ArrayRef = Arc::new(Int32Array::from(vec![Some(2), Some(0), None, Some(1), Some(2), Some(1), Some(0)]));
        let ms: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1_000),
            Some(5_000),
            Some(3),
            Some(10_000),
            Some(7_200_000),
            None,
            Some(9),
        ]));
        (vec![w, ms], [0, 0, 0, 1, 0, 1, 1])
    }

    #[test]
    fn count_and_sum_by_window_count_a_row_in_its_window_and_every_wider_one() {
        let (args, groups) = rows();
        for out in split_merge_convert(Kind::Count, args[..1].to_vec(), &groups) {
            assert_eq!(lists_of(&out), vec![vec![1, 1, 3], vec![0, 2, 2]]);
        }
        for out in split_merge_convert(Kind::Sum, args, &groups) {
            assert_eq!(lists_of(&out), vec![vec![5_000, 5_000, 7_206_000], vec![0, 10_000, 10_000]]);
        }
    }

    #[test]
    fn histogram_by_window_is_cumulative_in_windows_and_buckets() {
        let (args, groups) = rows();
        for out in split_merge_convert(Kind::Histogram, args, &groups) {
            let groups = out.as_list::<i32>();
            let got: Vec<Vec<Vec<i64>>> = (0..groups.len()).map(|g| lists_of(&groups.value(g))).collect();
            let row = |first: i64, rest: i64| {
                let mut r = vec![rest; BUCKETS.len() + 1];
                r[0] = first;
                r
            };
            // 1 s and 5 s fall in the first bucket (≤ 1 h), 2 h in the second (≤ 4 h).
            assert_eq!(got[0], vec![row(1, 1), row(1, 1), row(2, 3)]);
            assert_eq!(got[1], vec![row(0, 0), row(1, 1), row(1, 1)]);
        }
        assert_eq!(buckets(&[3_600_000, 3_600_001, i64::MAX, i64::MIN]), vec![0, 1, BUCKETS.len() as i32, 0]);
    }
}
