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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int32Array, Int64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, ColumnarValue, Volatility, create_udaf, create_udf};
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
    ctx.register_udaf(create_udaf(
        "nearest_rank",
        vec![DataType::Int64, DataType::Int64, DataType::Int64],
        Arc::new(DataType::Int64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(NearestRank::default()))),
        Arc::new(vec![DataType::new_list(DataType::Int64, true), DataType::Int64, DataType::Int64]),
    ));
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

#[derive(Debug, Default)]
struct NearestRank {
    values: Vec<i64>,
    fraction: Option<(i64, i64)>,
}

impl NearestRank {
    fn fraction(&mut self, num: &ArrayRef, den: &ArrayRef) {
        if self.fraction.is_none() && !num.is_empty() {
            let (n, d) = (num.as_primitive::<Int64Type>(), den.as_primitive::<Int64Type>());
            if n.is_valid(0) && d.is_valid(0) {
                self.fraction = Some((n.value(0), d.value(0)));
            }
        }
    }
}

impl Accumulator for NearestRank {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fraction(&values[1], &values[2]);
        self.values.extend(values[0].as_primitive::<Int64Type>().iter().flatten());
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (Some((num, den)), false) = (self.fraction, self.values.is_empty()) else {
            return Ok(ScalarValue::Int64(None));
        };
        if den <= 0 || num < 0 || num > den {
            return datafusion::common::plan_err!("nearest_rank: {num}/{den} is not a fraction in [0, 1]");
        }
        // Rank ceil(q·n) with exact integers (docs/metrics.md §5), at least 1.
        let n = self.values.len() as i64;
        let rank = ((num * n + den - 1) / den).max(1) as usize;
        let (_, v, _) = self.values.select_nth_unstable(rank - 1);
        Ok(ScalarValue::Int64(Some(*v)))
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
        self.fraction(&states[1], &states[2]);
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
}
