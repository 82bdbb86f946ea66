//! A [`GroupsAccumulator`] run as a plain [`Accumulator`]: how an aggregate
//! of [`rank`](super::rank) or [`cells`](super::cells) runs without GROUP BY
//! (one group, index 0), and what both accumulators share: their row
//! filter and (in tests) the split, merge and convert check.

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// A groups accumulator that can be given its groups before any row arrives
/// (so that an aggregate over no rows still has its one group to evaluate).
pub trait Groups: GroupsAccumulator + Sync + std::fmt::Debug {
    fn ensure_groups(&mut self, n: usize);
}

#[derive(Debug)]
pub struct Single<G>(pub G);

/// Whether a groups accumulator's `opt_filter` keeps row `i`.
pub fn keeps(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl<G: Groups> Accumulator for Single<G> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(values, &vec![0; values[0].len()], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.ensure_groups(1);
        ScalarValue::try_from_array(&self.0.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.ensure_groups(1);
        self.0.state(EmitTo::All)?.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states, &vec![0; states[0].len()], 1)
    }
}

/// Two partial accumulators over halves of the rows of two groups (the
/// last row filtered out), merged in reverse order, and the rows converted
/// to state one by one: an accumulator's tests check that both give the
/// result of one accumulator over the kept rows.
#[cfg(test)]
pub fn split_merge_convert<G: GroupsAccumulator>(
    new: impl Fn() -> G,
    args: &[ArrayRef],
    groups: &[usize],
) -> [ArrayRef; 2] {
    let n = groups.len();
    let filter = BooleanArray::from((0..n).map(|i| i + 1 < n).collect::<Vec<_>>());
    let half = |r: std::ops::Range<usize>| args.iter().map(|a| a.slice(r.start, r.len())).collect::<Vec<_>>();
    let (mut a, mut b) = (new(), new());
    let mid = n / 2;
    a.update_batch(&half(0..mid), &groups[..mid], None, 2).unwrap();
    b.update_batch(&half(mid..n), &groups[mid..], Some(&filter.slice(mid, n - mid)), 2).unwrap();
    let mut merged = new();
    for mut part in [b, a] {
        merged.merge_batch(&part.state(EmitTo::All).unwrap(), &[0, 1], 2).unwrap();
    }
    let mut again = new();
    again.merge_batch(&merged.convert_to_state(args, Some(&filter)).unwrap(), groups, 2).unwrap();
    [merged.evaluate(EmitTo::All).unwrap(), again.evaluate(EmitTo::All).unwrap()]
}
