//! The SQL functions the queries use to cost what the deals cost, not
//! deals × windows × buckets (docs/metrics.md §5):
//!
//! - `window_of(ms)`: the `idx` (in `windows`) of the smallest window
//!   `(T − W, T]` that holds `ms`, NULL if none does. The windows all end
//!   at `T`, so they are nested: a fact counted under its smallest window
//!   is summed into every wider one (`idx >= window_of(ms)`).
//! - `bucket_of(ms)`: the `idx` (in `buckets`) of the smallest histogram
//!   bucket that holds a duration of `ms` milliseconds.
//! - `nearest_rank(ms, numerator, denominator)`: the nearest-rank quantile
//!   `numerator / denominator` (both constant) of a group, exact, by
//!   selection rather than sorting.
//! - `exact_sum(x)`: a sum of doubles that does not depend on the order of
//!   the rows, so a refresh on two cores gives the same bits as on one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int32Array, Int64Array, ListArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator, Signature, Volatility,
    create_udaf, create_udf,
};
use datafusion::prelude::SessionContext;

use super::BUCKETS;

/// The evaluation time `window_of` reads: set before every refresh, so that
/// the plans that call it are made once and kept (`window_of` is volatile,
/// never folded into a plan).
#[derive(Clone, Default)]
pub struct Clock(Arc<RwLock<(i64, Vec<i64>)>>);

impl Clock {
    /// `t_ms` and the window starts `T − W`, widest first.
    pub fn set(&self, t_ms: i64, widths: &[i64]) {
        let mut starts: Vec<i64> = widths.iter().map(|w| t_ms.saturating_sub(*w)).collect();
        starts.sort_unstable_by(|a, b| b.cmp(a));
        *self.0.write().expect("clock lock") = (t_ms, starts);
    }
}

/// Registers the functions; `window_of` reads `clock`.
pub fn register(ctx: &SessionContext, clock: &Clock) {
    let clock = clock.clone();
    ctx.register_udf(int_function("window_of", Volatility::Volatile, move |ms| {
        let guard = clock.0.read().expect("clock lock");
        let (t_ms, starts) = &*guard;
        ms.iter()
            .map(|ms| {
                let ms = ms.filter(|ms| ms <= t_ms)?;
                starts.iter().position(|&s| ms > s).map(|i| i as i32)
            })
            .collect()
    }));
    ctx.register_udf(int_function("bucket_of", Volatility::Immutable, |ms| {
        ms.iter()
            .map(|ms| {
                ms.map(|ms| BUCKETS.iter().position(|&b| ms <= i64::from(b) * 1000).unwrap_or(BUCKETS.len()) as i32)
            })
            .collect()
    }));
    ctx.register_udaf(AggregateUDF::from(NearestRankFunction {
        signature: Signature::exact(vec![DataType::Int64; 3], Volatility::Immutable),
    }));
    ctx.register_udaf(create_udaf(
        "exact_sum",
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(ExactSum::default()))),
        Arc::new(vec![DataType::Binary]),
    ));
}

/// A BIGINT → INT function over whole arrays.
fn int_function(
    name: &str,
    volatility: Volatility,
    f: impl Fn(&Int64Array) -> Int32Array + Send + Sync + 'static,
) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Int32,
        volatility,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            Ok(ColumnarValue::Array(Arc::new(f(arrays[0].as_primitive::<Int64Type>()))))
        }),
    )
}

/// The nearest-rank quantile `num/den` of `values` (reordered), `None` if there are none.
fn select(values: &mut [i64], fraction: Option<(i64, i64)>) -> Result<Option<i64>> {
    let (Some((num, den)), false) = (fraction, values.is_empty()) else {
        return Ok(None);
    };
    if den <= 0 || num < 0 || num > den {
        return datafusion::common::plan_err!("nearest_rank: {num}/{den} is not a fraction in [0, 1]");
    }
    // Rank ceil(q·n) with exact integers (docs/metrics.md §5), at least 1.
    let n = values.len() as i64;
    let rank = ((num * n + den - 1) / den).max(1) as usize;
    let (_, v, _) = values.select_nth_unstable(rank - 1);
    Ok(Some(*v))
}

/// The first valid (numerator, denominator) of a batch (constant per group).
fn fraction_of(num: &ArrayRef, den: &ArrayRef) -> Option<(i64, i64)> {
    let (n, d) = (num.as_primitive::<Int64Type>(), den.as_primitive::<Int64Type>());
    (0..n.len()).find(|&i| n.is_valid(i) && d.is_valid(i)).map(|i| (n.value(i), d.value(i)))
}

/// `nearest_rank`: an [`Accumulator`] for a single group and a
/// [`GroupsAccumulator`] (one vector per group, no per-group batches) for GROUP BY.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NearestRankFunction {
    signature: Signature,
}

impl AggregateUDFImpl for NearestRankFunction {
    fn name(&self) -> &str {
        "nearest_rank"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(NearestRank::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "values"),
                DataType::new_list(DataType::Int64, true),
                true,
            )),
            Arc::new(Field::new(format_state_name(args.name, "numerator"), DataType::Int64, true)),
            Arc::new(Field::new(format_state_name(args.name, "denominator"), DataType::Int64, true)),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(NearestRankGroups::default()))
    }
}

/// Per group: its values and its fraction (the query may give each group another).
#[derive(Default)]
struct NearestRankGroups {
    groups: Vec<Group>,
}

#[derive(Default)]
struct Group {
    values: Vec<i64>,
    fraction: Option<(i64, i64)>,
}

/// The state of `groups`: their values as lists, and their fractions.
fn state_of(groups: &[Group]) -> Vec<ArrayRef> {
    let values = Int64Array::from_iter_values(groups.iter().flat_map(|g| g.values.iter().copied()));
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(|g| g.values.len()));
    let field = Arc::new(Field::new_list_field(DataType::Int64, true));
    let lists = ListArray::new(field, offsets, Arc::new(values), None);
    let (num, den): (Vec<_>, Vec<_>) = groups.iter().map(|g| g.fraction.unzip()).unzip();
    vec![Arc::new(lists), Arc::new(Int64Array::from(num)), Arc::new(Int64Array::from(den))]
}

/// Row `i`'s (numerator, denominator), if both are there.
fn fraction_at(num: &Int64Array, den: &Int64Array, i: usize) -> Option<(i64, i64)> {
    (num.is_valid(i) && den.is_valid(i)).then(|| (num.value(i), den.value(i)))
}

impl GroupsAccumulator for NearestRankGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let ms = values[0].as_primitive::<Int64Type>();
        let (num, den) = (values[1].as_primitive::<Int64Type>(), values[2].as_primitive::<Int64Type>());
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                let group = &mut self.groups[g];
                group.fraction = group.fraction.or_else(|| fraction_at(num, den, i));
                if ms.is_valid(i) {
                    group.values.push(ms.value(i));
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        let out: Result<Int64Array> = groups.iter_mut().map(|g| select(&mut g.values, g.fraction)).collect();
        Ok(Arc::new(out?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_of(&emit_to.take_needed(&mut self.groups)))
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let lists = values[0].as_list::<i32>();
        let (num, den) = (values[1].as_primitive::<Int64Type>(), values[2].as_primitive::<Int64Type>());
        for (i, &g) in group_indices.iter().enumerate() {
            let group = &mut self.groups[g];
            group.fraction = group.fraction.or_else(|| fraction_at(num, den, i));
            if lists.is_valid(i) {
                group.values.extend(lists.value(i).as_primitive::<Int64Type>().iter().flatten());
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let ms = values[0].as_primitive::<Int64Type>();
        let (num, den) = (values[1].as_primitive::<Int64Type>(), values[2].as_primitive::<Int64Type>());
        let rows: Vec<Group> = (0..ms.len())
            .map(|i| match opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                true => Group {
                    values: ms.is_valid(i).then(|| ms.value(i)).into_iter().collect(),
                    fraction: fraction_at(num, den, i),
                },
                false => Group::default(),
            })
            .collect();
        Ok(state_of(&rows))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.iter().map(|g| g.values.capacity() * 8 + std::mem::size_of::<Group>()).sum::<usize>()
    }
}

#[derive(Debug, Default)]
struct NearestRank {
    values: Vec<i64>,
    fraction: Option<(i64, i64)>,
}

impl Accumulator for NearestRank {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fraction = self.fraction.or_else(|| fraction_of(&values[1], &values[2]));
        self.values.extend(values[0].as_primitive::<Int64Type>().iter().flatten());
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(select(&mut self.values, self.fraction)?))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(self.values.iter().map(|v| Some(*v)))]);
        let (num, den) = self.fraction.unzip();
        Ok(vec![ScalarValue::List(Arc::new(list)), ScalarValue::Int64(num), ScalarValue::Int64(den)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.fraction = self.fraction.or_else(|| fraction_of(&states[1], &states[2]));
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                self.values.extend(lists.value(i).as_primitive::<Int64Type>().iter().flatten());
            }
        }
        Ok(())
    }
}

/// Exact per binary exponent: each double is an integer mantissa times
/// 2^exponent, and mantissas of one exponent add exactly in an i128. The
/// result adds the per-exponent sums in exponent order, so it is the same
/// whatever the order of the rows and however they were split.
#[derive(Debug, Default)]
struct ExactSum {
    sums: BTreeMap<i32, i128>,
    any: bool,
    /// Infinities and NaN, which have no mantissa to add.
    special: f64,
}

impl ExactSum {
    fn add(&mut self, x: f64) {
        self.any = true;
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        if exp == 0x7ff {
            self.special += x;
            return;
        }
        let mantissa = bits & ((1 << 52) - 1);
        let (m, e) = if exp == 0 { (mantissa, 1) } else { (mantissa | 1 << 52, exp) };
        let m = if x.is_sign_negative() { -(m as i128) } else { m as i128 };
        *self.sums.entry(e).or_default() += m;
    }

    fn add_sum(&mut self, e: i32, m: i128) {
        self.any = true;
        *self.sums.entry(e).or_default() += m;
    }
}

impl Accumulator for ExactSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for x in values[0].as_primitive::<Float64Type>().iter().flatten() {
            self.add(x);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if !self.any {
            return Ok(ScalarValue::Float64(None));
        }
        let total = self.sums.iter().fold(0.0, |acc, (&e, &m)| acc + (m as f64) * 2f64.powi(e - 1075));
        Ok(ScalarValue::Float64(Some(total + self.special)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.len() * 40
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut bytes = Vec::with_capacity(1 + 8 + self.sums.len() * 20);
        bytes.push(u8::from(self.any));
        bytes.extend_from_slice(&self.special.to_le_bytes());
        for (e, m) in &self.sums {
            bytes.extend_from_slice(&e.to_le_bytes());
            bytes.extend_from_slice(&m.to_le_bytes());
        }
        Ok(vec![ScalarValue::Binary(Some(bytes))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states: &BinaryArray = states[0].as_binary::<i32>();
        for b in states.iter().flatten() {
            if b.first() != Some(&1) {
                continue;
            }
            self.any = true;
            self.special += f64::from_le_bytes(b[1..9].try_into().expect("8 bytes"));
            for chunk in b[9..].chunks_exact(20) {
                let e = i32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
                let m = i128::from_le_bytes(chunk[4..].try_into().expect("16 bytes"));
                self.add_sum(e, m);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(xs: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        xs.iter().for_each(|&x| s.add(x));
        match s.evaluate().unwrap() {
            ScalarValue::Float64(Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exact_sum_ignores_order_and_is_exact_where_doubles_lose() {
        let xs = [0.1, 1e16, 0.2, -1e16, 0.3, 5e-324, 123456.789];
        let mut rev = xs;
        rev.reverse();
        assert_eq!(sum(&xs).to_bits(), sum(&rev).to_bits());
        assert_eq!(sum(&[1e16, 1.0, -1e16]), 1.0, "a plain left-to-right sum gives 0");
        assert_eq!(sum(&[-2.5, 2.5]), 0.0);
        // Split into two partial states and merged, in either order.
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        xs[..3].iter().for_each(|&x| a.add(x));
        xs[3..].iter().for_each(|&x| b.add(x));
        let mut merged = ExactSum::default();
        let (sa, sb) = (a.state().unwrap(), b.state().unwrap());
        for st in [sb, sa] {
            merged.merge_batch(&[st[0].to_array().unwrap()]).unwrap();
        }
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(sum(&xs))));
        assert_eq!(ExactSum::default().evaluate().unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn nearest_rank_selects_ceil_q_n() {
        let q = |num: i64, den: i64, xs: &[i64]| {
            let mut r = NearestRank::default();
            let n = xs.len();
            let col = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v; n])) };
            r.update_batch(&[Arc::new(Int64Array::from(xs.to_vec())), col(num), col(den)]).unwrap();
            r.evaluate().unwrap()
        };
        let xs = [50, 10, 40, 20, 30];
        assert_eq!(q(1, 2, &xs), ScalarValue::Int64(Some(30)), "rank ceil(2.5) = 3");
        assert_eq!(q(9, 10, &xs), ScalarValue::Int64(Some(50)), "rank ceil(4.5) = 5");
        assert_eq!(q(1, 2, &[7, 3]), ScalarValue::Int64(Some(3)), "rank ceil(1) = 1");
        assert_eq!(q(1, 2, &[]), ScalarValue::Int64(None));
    }

    #[test]
    fn nearest_rank_groups_split_merge_and_filter_like_one_accumulator() {
        let ints = |v: &[i64]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
        // Group 0 asks for the median, group 1 for the 0.9 quantile.
        let (num, den) = (ints(&[1, 9, 1, 9, 1, 9]), ints(&[2, 10, 2, 10, 2, 10]));
        let ms = ints(&[50, 10, 40, 20, 30, 99]);
        let groups = [0, 1, 0, 1, 0, 1];
        // The last row is filtered out.
        let filter = BooleanArray::from(vec![true, true, true, true, true, false]);
        // Two partial accumulators over halves of the rows, merged in reverse order.
        let (mut a, mut b) = (NearestRankGroups::default(), NearestRankGroups::default());
        let half = |x: &ArrayRef, r: std::ops::Range<usize>| x.slice(r.start, r.len());
        a.update_batch(&[half(&ms, 0..3), half(&num, 0..3), half(&den, 0..3)], &groups[..3], None, 2).unwrap();
        let f = filter.slice(3, 3);
        b.update_batch(&[half(&ms, 3..6), half(&num, 3..6), half(&den, 3..6)], &groups[3..], Some(&f), 2).unwrap();
        let mut merged = NearestRankGroups::default();
        for mut part in [b, a] {
            merged.merge_batch(&part.state(EmitTo::All).unwrap(), &[0, 1], 2).unwrap();
        }
        let out = merged.evaluate(EmitTo::All).unwrap();
        // Group 0: {50, 40, 30} → rank ceil(1.5) = 2: 40; group 1: {10, 20} → rank ceil(1.8) = 2: 20.
        assert_eq!(out.as_primitive::<Int64Type>().values().to_vec(), vec![40, 20]);
        // Rows converted to state one by one give the same.
        let state = merged.convert_to_state(&[ms, num, den], Some(&filter)).unwrap();
        let mut again = NearestRankGroups::default();
        again.merge_batch(&state, &groups, 2).unwrap();
        assert_eq!(again.evaluate(EmitTo::All).unwrap().as_primitive::<Int64Type>().values().to_vec(), vec![40, 20]);
    }
}
