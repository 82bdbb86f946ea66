//! The SQL functions the queries use to cost what the deals cost, not
//! deals × windows × buckets (docs/metrics.md §5):
//!
//! - `window_of(ms)`: the `idx` (in `windows`) of the smallest window
//!   `(T − W, T]` that holds `ms`, NULL if none does. The windows all end
//!   at `T`, so they are nested: a fact counted under its smallest window
//!   is summed into every wider one (`idx >= window_of(ms)`). Besides the
//!   configured windows it tells apart their doubles (`prev_idx` in
//!   `windows`), so a count over the previous period `(T − 2W, T − W]` is
//!   the count at `prev_idx` less the count at `idx`.
//! - `bucket_of(ms)`: the `idx` (in `buckets`) of the smallest histogram
//!   bucket that holds a duration of `ms` milliseconds.
//! - `nearest_rank(ms, numerator, denominator)` and
//!   `quantiles_by_window(w, ms)`, `previous_quantiles_by_window(w, ms)`:
//!   exact nearest-rank quantiles by selection (see [`rank`]);
//! - `count_by_window(w)`, `sum_by_window(w, x)` and
//!   `histogram_by_window(w, ms)`: every window's count, sum or histogram
//!   in one pass (see [`cells`]);
//! - `list_at(list, k)`: element `k` (from 0) of a list, NULL past its end:
//!   how a query reads those lists at a window's `idx` (and a histogram's
//!   or quantile's inner list at a bucket's or quantile's `idx`).
//! - `exact_sum(x)`: a sum of doubles that does not depend on the order of
//!   the rows, so a refresh on two cores gives the same bits as on one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int32Array, Int64Array, UInt64Array};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    Accumulator, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udaf,
    create_udf,
};
use datafusion::prelude::SessionContext;

use super::{cells, rank};

/// The evaluation time `window_of` reads: set before every refresh, so that
/// the plans that call it are made once and kept (`window_of` is volatile,
/// never folded into a plan).
#[derive(Clone, Default)]
pub struct Clock(Arc<RwLock<(i64, Vec<i64>)>>);

impl Clock {
    /// `t_ms` and the window starts `T − W`, the narrowest window's first.
    pub fn set(&self, t_ms: i64, widths: &[i64]) {
        let mut starts: Vec<i64> = widths.iter().map(|w| t_ms.saturating_sub(*w)).collect();
        starts.sort_unstable_by(|a, b| b.cmp(a));
        *self.0.write().expect("clock lock") = (t_ms, starts);
    }
}

/// Registers the functions for the window `widths` (sorted, distinct);
/// `window_of` reads `clock`.
pub fn register(ctx: &SessionContext, clock: &Clock, widths: &[i64]) {
    let windows = widths.len();
    // For each width, the place of twice it (its previous period's outer window), if any.
    let doubles = widths.iter().map(|w| widths.binary_search(&w.saturating_mul(2)).ok()).collect();
    let clock = clock.clone();
    ctx.register_udf(int_function("window_of", Volatility::Volatile, move |ms| {
        let guard = clock.0.read().expect("clock lock");
        let (t_ms, starts) = &*guard;
        // The starts are the narrowest window's first (the largest), so the
        // smallest window holding `ms` is the count of starts at or after it;
        // none holds it if it is after T or at or before every start.
        let idx = cells::at_or_below(ms.values(), starts.iter().copied());
        let held = BooleanBuffer::collect_bool(idx.len(), |i| idx[i] != starts.len() as i32 && ms.value(i) <= *t_ms);
        with_nulls(ms, idx, held)
    }));
    ctx.register_udf(int_function("bucket_of", Volatility::Immutable, |ms| {
        let idx = cells::buckets(ms.values());
        let held = BooleanBuffer::new_set(idx.len());
        with_nulls(ms, idx, held)
    }));
    ctx.register_udaf(rank::nearest_rank());
    ctx.register_udaf(rank::quantiles_by_window(windows));
    ctx.register_udaf(rank::previous_quantiles_by_window(doubles));
    for f in cells::functions(windows) {
        ctx.register_udaf(f);
    }
    ctx.register_udf(ScalarUDF::from(ListAt { signature: Signature::any(2, Volatility::Immutable) }));
    ctx.register_udaf(create_udaf(
        "exact_sum",
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(ExactSum::default()))),
        Arc::new(vec![DataType::Binary]),
    ));
}

/// The indexes `idx` of the values of `ms`, NULL where `ms` is NULL or `held` is not set.
fn with_nulls(ms: &Int64Array, idx: Vec<i32>, held: BooleanBuffer) -> Int32Array {
    let valid = match ms.nulls() {
        Some(nulls) => nulls.inner() & &held,
        None => held,
    };
    Int32Array::new(idx.into(), Some(NullBuffer::new(valid)))
}

/// `list_at(list, k)`, for a list of any item type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ListAt {
    signature: Signature,
}

impl ScalarUDFImpl for ListAt {
    fn name(&self) -> &str {
        "list_at"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (&args[0], &args[1]) {
            (DataType::List(item), k) if k.is_integer() => Ok(item.data_type().clone()),
            (list, k) => plan_err!("list_at(list, k) takes a list and an integer, not {list} and {k}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let lists = arrays[0].as_list::<i32>();
        let at = cast(&arrays[1], &DataType::Int64)?;
        let at = at.as_primitive::<Int64Type>();
        let offsets = lists.value_offsets();
        // The place of each row's element in the lists' values, NULL where there is none.
        let places: UInt64Array = (0..lists.len())
            .map(|i| {
                let (start, end) = (offsets[i] as i64, offsets[i + 1] as i64);
                let k = (lists.is_valid(i) && at.is_valid(i)).then(|| at.value(i))?;
                (0..end - start).contains(&k).then(|| (start + k) as u64)
            })
            .collect();
        Ok(ColumnarValue::Array(take(lists.values().as_ref(), &places, None)?))
    }
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
}
