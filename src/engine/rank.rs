//! Exact nearest-rank quantiles by selection (docs/metrics.md §5), as
//! DataFusion aggregates that keep one vector of values per group:
//!
//! - `nearest_rank(ms, numerator, denominator)`: the quantile
//!   `numerator / denominator` (constant per group) of the group's values;
//! - `quantiles_by_window(w, ms)`: a list per window of one element per
//!   row of `quantiles`, element `[k][q]` being quantile `q` of the values
//!   whose `w` (a `window_of` index) is `<= k`, NULL where there are none.
//!   The windows all end at T, so a value counts in its smallest window and
//!   every wider one: one pass over the rows instead of a row per window
//!   and quantile;
//! - `previous_quantiles_by_window(w, ms)`: the same list, element `[k][q]`
//!   being quantile `q` of the values of the previous period of window `k`,
//!   `(T − 2W, T − W]`: those whose `w` is above `k` and at most the place
//!   of `2W` (NULL where `2W` is not a width, docs/metrics.md §5.5).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, Int64Builder, ListArray, ListBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::QUANTILES;
use super::single::{self, Single, keeps};

/// `nearest_rank`.
pub fn nearest_rank() -> AggregateUDF {
    AggregateUDF::from(Rank {
        name: "nearest_rank",
        signature: Signature::exact(vec![DataType::Int64; 3], Volatility::Immutable),
        by: By::Group,
    })
}

/// `quantiles_by_window` for `windows` windows.
pub fn quantiles_by_window(windows: usize) -> AggregateUDF {
    AggregateUDF::from(Rank {
        name: "quantiles_by_window",
        signature: Signature::exact(vec![DataType::Int32, DataType::Int64], Volatility::Immutable),
        by: By::Window(windows),
    })
}

/// `previous_quantiles_by_window`, given for each window the place of the
/// window twice as wide, if there is one.
pub fn previous_quantiles_by_window(doubles: Vec<Option<usize>>) -> AggregateUDF {
    AggregateUDF::from(Rank {
        name: "previous_quantiles_by_window",
        signature: Signature::exact(vec![DataType::Int32, DataType::Int64], Volatility::Immutable),
        by: By::Previous(doubles.into()),
    })
}

/// What a group's quantiles are taken over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum By {
    /// `nearest_rank`: all its values, one quantile.
    Group,
    /// `quantiles_by_window`: the values of each window and the narrower ones.
    Window(usize),
    /// `previous_quantiles_by_window`: the values of each window's previous period.
    Previous(Arc<[Option<usize>]>),
}

impl By {
    /// The number of windows, if the values come with one.
    fn windows(&self) -> Option<usize> {
        match self {
            By::Group => None,
            By::Window(n) => Some(*n),
            By::Previous(doubles) => Some(doubles.len()),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Rank {
    name: &'static str,
    signature: Signature,
    by: By,
}

fn list_of(item: DataType) -> DataType {
    DataType::new_list(item, true)
}

impl AggregateUDFImpl for Rank {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.by.windows().is_some() { list_of(list_of(DataType::Int64)) } else { DataType::Int64 })
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single(Groups::new(self.by.clone()))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, t: DataType| Arc::new(Field::new(format_state_name(args.name, name), t, true));
        Ok(vec![
            field("values", list_of(DataType::Int64)),
            field("windows", list_of(DataType::Int32)),
            field("numerator", DataType::Int64),
            field("denominator", DataType::Int64),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(self.by.clone())))
    }
}

/// The quantile `num/den` of `values` (reordered), `None` if there are none.
fn select(values: &mut [i64], fraction: Option<(i64, i64)>) -> Result<Option<i64>> {
    let (Some((num, den)), false) = (fraction, values.is_empty()) else {
        return Ok(None);
    };
    if den <= 0 || num < 0 || num > den {
        return plan_err!("nearest_rank: {num}/{den} is not a fraction in [0, 1]");
    }
    // Rank ceil(q·n) with exact integers (docs/metrics.md §5), at least 1.
    let n = values.len() as i64;
    let rank = ((num * n + den - 1) / den).max(1) as usize;
    let (_, v, _) = values.select_nth_unstable(rank - 1);
    Ok(Some(*v))
}

/// One group: its values (with their window, for `quantiles_by_window`)
/// and its fraction (for `nearest_rank`: the query may give each group another).
#[derive(Debug, Default)]
struct Group {
    values: Vec<i64>,
    windows: Vec<i32>,
    fraction: Option<(i64, i64)>,
}

impl Group {
    /// Takes row `i`'s fraction if the group has none yet.
    fn take_fraction(&mut self, num: &Int64Array, den: &Int64Array, i: usize) {
        if self.fraction.is_none() && num.is_valid(i) && den.is_valid(i) {
            self.fraction = Some((num.value(i), den.value(i)));
        }
    }

    /// Appends, for every window `k`, the quantiles of the values of `k`
    /// and the narrower windows (`doubles` is `None`), or of the values of
    /// `k`'s previous period: above `k`, up to `doubles[k]`.
    fn by_window(
        &self,
        windows: usize,
        doubles: Option<&[Option<usize>]>,
        out: &mut ListBuilder<ListBuilder<Int64Builder>>,
    ) -> Result<()> {
        let mut per: Vec<Vec<i64>> = vec![Vec::new(); windows];
        for (&w, &v) in self.windows.iter().zip(&self.values) {
            per[w as usize].push(v);
        }
        let mut held = Vec::with_capacity(self.values.len());
        for k in 0..windows {
            match doubles {
                // Selection only reorders, so the quantiles of one window share its values.
                None => held.extend_from_slice(&per[k]),
                Some(doubles) => {
                    held.clear();
                    for values in doubles[k].map_or(&per[..0], |outer| &per[k + 1..=outer]) {
                        held.extend_from_slice(values);
                    }
                }
            }
            for &(_, num, den) in &QUANTILES {
                out.values().values().append_option(select(&mut held, Some((num, den)))?);
            }
            out.values().append(true);
        }
        out.append(true);
        Ok(())
    }
}

#[derive(Debug)]
struct Groups {
    by: By,
    groups: Vec<Group>,
}

/// The arguments of a batch: windows and values (`quantiles_by_window`), or
/// values, numerators and denominators (`nearest_rank`).
struct Args<'a> {
    windows: Option<&'a Int32Array>,
    values: &'a Int64Array,
    fraction: Option<(&'a Int64Array, &'a Int64Array)>,
}

impl Groups {
    fn new(by: By) -> Groups {
        Groups { by, groups: Vec::new() }
    }

    fn args<'a>(&self, values: &'a [ArrayRef]) -> Args<'a> {
        let int = |a: &'a ArrayRef| a.as_primitive::<Int64Type>();
        match self.by.windows() {
            Some(_) => {
                Args { windows: Some(values[0].as_primitive::<Int32Type>()), values: int(&values[1]), fraction: None }
            }
            None => Args { windows: None, values: int(&values[0]), fraction: Some((int(&values[1]), int(&values[2]))) },
        }
    }

    /// Adds row `i` of `args` to group `g`. A row without a value, or (by
    /// window) without a window or outside the windows, adds nothing.
    fn add(&mut self, g: usize, args: &Args, i: usize) {
        let group = &mut self.groups[g];
        if let Some((num, den)) = args.fraction {
            group.take_fraction(num, den, i);
        }
        if !args.values.is_valid(i) {
            return;
        }
        if let (Some(windows), Some(n)) = (args.windows, self.by.windows()) {
            if !windows.is_valid(i) || !(0..n as i32).contains(&windows.value(i)) {
                return;
            }
            group.windows.push(windows.value(i));
        }
        group.values.push(args.values.value(i));
    }
}

/// The state of `groups`: values and windows as lists, and the fractions.
fn state_of(groups: &[Group]) -> Vec<ArrayRef> {
    fn list<T: Copy>(groups: &[Group], items: impl Fn(&Group) -> &[T], array: impl Fn(Vec<T>) -> ArrayRef) -> ArrayRef {
        let values = array(groups.iter().flat_map(|g| items(g).iter().copied()).collect());
        let offsets = OffsetBuffer::from_lengths(groups.iter().map(|g| items(g).len()));
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        Arc::new(ListArray::new(field, offsets, values, None))
    }
    let (num, den): (Vec<_>, Vec<_>) = groups.iter().map(|g| g.fraction.unzip()).unzip();
    vec![
        list(groups, |g| &g.values, |v| Arc::new(Int64Array::from(v))),
        list(groups, |g| &g.windows, |v| Arc::new(Int32Array::from(v))),
        Arc::new(Int64Array::from(num)),
        Arc::new(Int64Array::from(den)),
    ]
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let args = self.args(values);
        for (i, &g) in group_indices.iter().enumerate() {
            if keeps(opt_filter, i) {
                self.add(g, &args, i);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        let doubles = match &self.by {
            By::Group => {
                let out: Result<Int64Array> = groups.iter_mut().map(|g| select(&mut g.values, g.fraction)).collect();
                return Ok(Arc::new(out?));
            }
            By::Window(_) => None,
            By::Previous(doubles) => Some(&doubles[..]),
        };
        let n = self.by.windows().expect("by window");
        let mut out = ListBuilder::new(ListBuilder::new(Int64Builder::new()));
        for g in &groups {
            g.by_window(n, doubles, &mut out)?;
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_of(&emit_to.take_needed(&mut self.groups)))
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let (lists, windows) = (values[0].as_list::<i32>(), values[1].as_list::<i32>());
        let (num, den) = (values[2].as_primitive::<Int64Type>(), values[3].as_primitive::<Int64Type>());
        for (i, &g) in group_indices.iter().enumerate() {
            let group = &mut self.groups[g];
            group.take_fraction(num, den, i);
            if lists.is_valid(i) {
                group.values.extend_from_slice(lists.value(i).as_primitive::<Int64Type>().values());
            }
            if windows.is_valid(i) {
                group.windows.extend_from_slice(windows.value(i).as_primitive::<Int32Type>().values());
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut rows = Groups::new(self.by.clone());
        rows.groups.resize_with(values[0].len(), Group::default);
        let args = self.args(values);
        for i in 0..values[0].len() {
            if keeps(opt_filter, i) {
                rows.add(i, &args, i);
            }
        }
        Ok(state_of(&rows.groups))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.iter().map(|g| g.values.capacity() * 8 + g.windows.capacity() * 4).sum::<usize>()
            + self.groups.capacity() * std::mem::size_of::<Group>()
    }
}

impl single::Groups for Groups {
    fn ensure_groups(&mut self, n: usize) {
        if self.groups.len() < n {
            self.groups.resize_with(n, Group::default);
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;

    use super::*;

    fn ints(v: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    #[test]
    fn nearest_rank_selects_ceil_q_n() {
        let q = |num: i64, den: i64, xs: &[i64]| {
            let mut r = Single(Groups::new(By::Group));
            let n = xs.len();
            r.update_batch(&[ints(xs), ints(&vec![num; n]), ints(&vec![den; n])]).unwrap();
            r.evaluate().unwrap()
        };
        let xs = [50, 10, 40, 20, 30];
        assert_eq!(q(1, 2, &xs), ScalarValue::Int64(Some(30)), "rank ceil(2.5) = 3");
        assert_eq!(q(9, 10, &xs), ScalarValue::Int64(Some(50)), "rank ceil(4.5) = 5");
        assert_eq!(q(1, 2, &[7, 3]), ScalarValue::Int64(Some(3)), "rank ceil(1) = 1");
        assert_eq!(q(1, 2, &[]), ScalarValue::Int64(None));
    }

    fn split_merge_convert(by: By, args: Vec<ArrayRef>, groups: &[usize]) -> [ArrayRef; 2] {
        single::split_merge_convert(|| Groups::new(by.clone()), &args, groups)
    }

    #[test]
    fn nearest_rank_groups_split_merge_and_filter_like_one_accumulator() {
        // Group 0 asks for the median, group 1 for the 0.9 quantile; the 99 is filtered out.
        let args = vec![ints(&[50, 10, 40, 20, 30, 99]), ints(&[1, 9, 1, 9, 1, 9]), ints(&[2, 10, 2, 10, 2, 10])];
        for out in split_merge_convert(By::Group, args, &[0, 1, 0, 1, 0, 1]) {
            // Group 0: {50, 40, 30} → rank ceil(1.5) = 2: 40; group 1: {10, 20} → rank ceil(1.8) = 2: 20.
            assert_eq!(out.as_primitive::<Int64Type>().values().to_vec(), vec![40, 20]);
        }
    }

    #[test]
    fn quantiles_by_window_count_a_value_in_its_window_and_every_wider_one() {
        // Three windows; group 0's values by window: 0: {5}, 1: {}, 2: {1, 9}, and a row
        // without a window; group 1 has only {7} in window 1. The last row is filtered out.
        let w: ArrayRef = Arc::new(Int32Array::from(vec![Some(2), Some(0), None, Some(1), Some(2), Some(0)]));
        let args = vec![w, ints(&[1, 5, 3, 7, 9, 100])];
        for out in split_merge_convert(By::Window(3), args, &[0, 0, 0, 1, 0, 1]) {
            let got = lists(&out);
            // Group 0: {5}, {5}, {1, 5, 9}: medians 5, 5, 5 and 0.9 quantiles 5, 5, 9 (rank ceil(2.7) = 3).
            assert_eq!(got[0], vec![vec![Some(5), Some(5)], vec![Some(5), Some(5)], vec![Some(5), Some(9)]]);
            // Group 1: none, {7}, {7}.
            assert_eq!(got[1], vec![vec![None, None], vec![Some(7), Some(7)], vec![Some(7), Some(7)]]);
        }
    }

    /// Group by group, the quantile lists of every window.
    fn lists(out: &ArrayRef) -> Vec<Vec<Vec<Option<i64>>>> {
        let groups = out.as_list::<i32>();
        (0..groups.len())
            .map(|g| {
                let windows = groups.value(g);
                let windows = windows.as_list::<i32>();
                (0..windows.len()).map(|k| windows.value(k).as_primitive::<Int64Type>().iter().collect()).collect()
            })
            .collect()
    }

    #[test]
    fn previous_quantiles_take_the_values_above_a_window_up_to_its_double() {
        // Four widths, say 1d, 2d, 7d, 14d: the double of 0 is 1, of 2 is 3; 1 and 3 have none.
        // Group 0's values by width: 0: {4}, 1: {8, 2}, 2: {6}, 3: {1, 3, 5}; group 1's only row is filtered out.
        let w: ArrayRef = Arc::new(Int32Array::from(vec![0, 1, 1, 2, 3, 3, 3, 0]));
        let args = vec![w, ints(&[4, 8, 2, 6, 1, 3, 5, 100])];
        let by = By::Previous(vec![Some(1), None, Some(3), None].into());
        for out in split_merge_convert(by, args, &[0, 0, 0, 0, 0, 0, 0, 1]) {
            // Window 0's previous period holds width 1's values {2, 8}: median rank 1 = 2, 0.9 rank 2 = 8.
            // Window 2's holds width 3's {1, 3, 5}: median rank 2 = 3, 0.9 rank 3 = 5. A window's own values are not in its previous period.
            assert_eq!(
                lists(&out),
                vec![
                    vec![vec![Some(2), Some(8)], vec![None, None], vec![Some(3), Some(5)], vec![None, None]],
                    vec![vec![None, None]; 4]
                ]
            );
        }
    }
}
