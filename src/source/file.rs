//! NDJSON file replay: one event per line. The file is read to its end in
//! chunks of 8 MiB (then the source counts as caught up), and afterwards lines appended to
//! it are read as they arrive, like `tail -f`. Bad lines are rejections like
//! any other; blank lines are skipped. A FIFO is read until its writer closes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::Ingest;
use crate::store::PartitionKey;

/// Bytes read at a time: the replay holds a chunk of the file, never all of it.
const CHUNK: u64 = 8 << 20;

pub async fn run(path: &Path, ingest: &Ingest, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let part = PartitionKey::new(&format!("file:{}", path.display()), 0);
    let (mut lines, mut accepted, mut rejected) = (0, 0, 0);
    let mut chunk = Vec::new();
    loop {
        let read = (&mut file)
            .take(CHUNK)
            .read_to_end(&mut chunk)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        // Whole lines only, but at the end a last line without a newline is
        // complete: files often end so.
        let end = match (read, chunk.iter().rposition(|&b| b == b'\n')) {
            (0, _) => chunk.len(),
            (_, Some(newline)) => newline + 1,
            (_, None) => continue,
        };
        let (l, a, r) = push_lines(ingest, &part, &chunk[..end]).await;
        (lines, accepted, rejected) = (lines + l, accepted + a, rejected + r);
        chunk.drain(..end);
        if read == 0 {
            break;
        }
    }
    tracing::info!(file = %path.display(), lines, accepted, rejected, "file read; following appended lines");
    ingest.caught_up();

    if !file.metadata().await?.is_file() {
        return Ok(());
    }
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        let before = pending.len();
        file.read_to_end(&mut pending).await.with_context(|| format!("cannot read {}", path.display()))?;
        // While following, only whole lines: the writer may be mid-line.
        if pending.len() > before
            && let Some(end) = pending.iter().rposition(|&b| b == b'\n')
        {
            let rest = pending.split_off(end + 1);
            push_lines(ingest, &part, &pending).await;
            pending = rest;
        }
    }
}

/// Pushes the non-blank lines of `data`; returns (lines, accepted, rejected).
async fn push_lines(ingest: &Ingest, part: &PartitionKey, data: &[u8]) -> (usize, usize, usize) {
    let lines: Vec<&[u8]> = lines(data).collect();
    let (mut accepted, mut rejected) = (0, 0);
    for chunk in lines.chunks(8192) {
        let r = ingest.push(part, chunk.iter().copied());
        accepted += r.accepted;
        rejected += r.rejected.len();
        tokio::task::yield_now().await;
    }
    (lines.len(), accepted, rejected)
}

/// The non-blank lines of NDJSON data, without their line ends.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty())
}
