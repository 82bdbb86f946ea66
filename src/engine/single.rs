//! A [`GroupsAccumulator`] run as a plain [`Accumulator`]: how an aggregate
//! of [`rank`](super::rank) or [`cells`](super::cells) runs without GROUP BY
//! (one group, index 0).

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// A groups accumulator that can be given its groups before any row arrives
/// (so that an aggregate over no rows still has its one group to evaluate).
pub trait Groups: GroupsAccumulator + Sync + std::fmt::Debug {
    fn ensure_groups(&mut self, n: usize);
}

#[derive(Debug)]
pub struct Single<G>(pub G);

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
