//! NDJSON file replay: one event per line, read once. Bad lines are
//! rejections like any other; blank lines are skipped.

use std::path::Path;

use anyhow::Context;

use super::Ingest;
use crate::store::PartitionKey;

pub async fn run(path: &Path, ingest: &Ingest) -> anyhow::Result<()> {
    let data = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    let part = PartitionKey::new(&format!("file:{}", path.display()), 0);
    let lines: Vec<&[u8]> =
        data.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty()).collect();
    let mut accepted = 0;
    let mut rejected = 0;
    for chunk in lines.chunks(8192) {
        let r = ingest.push(&part, chunk.iter().copied());
        accepted += r.accepted;
        rejected += r.rejected.len();
        tokio::task::yield_now().await;
    }
    tracing::info!(file = %path.display(), lines = lines.len(), accepted, rejected, "file read");
    ingest.caught_up();
    Ok(())
}
