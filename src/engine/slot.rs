//! A table whose rows are replaced before every refresh while the physical
//! plans that read it are kept: its scan reads the rows when the plan runs,
//! not when it is made. So a query is parsed, optimised and planned once,
//! and a refresh only runs it.

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, exec_err, project_schema};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};

/// The rows by partition, or why the query that makes them failed.
type Rows = std::result::Result<Vec<Vec<RecordBatch>>, String>;

/// A named table of a fixed schema and number of partitions.
#[derive(Debug, Clone)]
pub struct Slot {
    name: String,
    schema: SchemaRef,
    partitions: usize,
    rows: Arc<RwLock<Rows>>,
}

impl Slot {
    /// A slot of one partition, or of two (`split`): the large tables, so
    /// that a refresh scans them on both cores.
    pub fn new(name: &str, schema: SchemaRef, split: bool) -> Slot {
        let partitions = if split { 2 } else { 1 };
        Slot { name: name.into(), schema, partitions, rows: Arc::new(RwLock::new(Ok(vec![Vec::new(); partitions]))) }
    }

    /// Replaces the rows.
    pub fn set(&self, batches: &[RecordBatch]) {
        let parts = if self.partitions == 2 { halves(batches) } else { vec![batches.to_vec()] };
        *self.rows.write().expect("slot lock") = Ok(parts);
    }

    /// Makes every plan that reads the slot fail with `error` until the next [`Slot::set`].
    pub fn fail(&self, error: String) {
        *self.rows.write().expect("slot lock") = Err(error);
    }

    /// The number of rows now held (0 after a failure).
    pub fn num_rows(&self) -> usize {
        match &*self.rows.read().expect("slot lock") {
            Ok(parts) => parts.iter().flatten().map(RecordBatch::num_rows).sum(),
            Err(_) => 0,
        }
    }
}

#[async_trait]
impl TableProvider for Slot {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = project_schema(&self.schema, projection)?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(self.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(SlotScan { slot: self.clone(), projection: projection.cloned(), properties: Arc::new(properties) }))
    }
}

/// The leaf of a plan: the slot's rows at the time the plan runs.
#[derive(Debug)]
struct SlotScan {
    slot: Slot,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for SlotScan {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SlotScan: {}", self.slot.name)
    }
}

impl ExecutionPlan for SlotScan {
    fn name(&self) -> &str {
        "SlotScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let batches = match &*self.slot.rows.read().expect("slot lock") {
            Ok(parts) => parts.get(partition).cloned().unwrap_or_default(),
            Err(e) => return exec_err!("table {}: {e}", self.slot.name),
        };
        Ok(Box::pin(MemoryStream::try_new(batches, self.schema(), self.projection.clone())?))
    }

    /// The rows held when the plan is made: join order and build sides are
    /// chosen by them (see `Engine::refresh`, which plans again when they
    /// change by much).
    fn statistics_from_inputs(&self, _inputs: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        let rows = self.slot.num_rows();
        let rows = if args.partition().is_some() { rows / self.slot.partitions } else { rows };
        Ok(Arc::new(Statistics::new_unknown(&self.schema()).with_num_rows(Precision::Inexact(rows))))
    }
}

/// The batches' rows in two partitions of about equal size (zero-copy slices).
fn halves(batches: &[RecordBatch]) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut parts = vec![Vec::new(), Vec::new()];
    let mut seen = 0;
    for b in batches {
        let split = (total / 2).saturating_sub(seen).min(b.num_rows());
        if split > 0 {
            parts[0].push(b.slice(0, split));
        }
        if split < b.num_rows() {
            parts[1].push(b.slice(split, b.num_rows() - split));
        }
        seen += b.num_rows();
    }
    parts
}
