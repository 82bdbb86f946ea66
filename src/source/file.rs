//! NDJSON file replay: one event per line, read 8 MiB at a time. The file
//! is read to its end (then the source counts as caught up), and afterwards
//! lines appended to it are read as they arrive, like `tail -f`. Bad lines are rejections like
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
/// Lines stored at a time.
const PUSH: usize = 8192;

pub async fn run(path: &Path, ingest: &Ingest, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let part = PartitionKey::new(&format!("file:{}", path.display()), 0);
    let (mut lines, mut accepted, mut rejected) = (0, 0, 0);
    let mut pending = Vec::new();
    loop {
        let (read, (l, a, r)) = read_lines(&mut file, path, &mut pending, true, ingest, &part).await?;
        (lines, accepted, rejected) = (lines + l, accepted + a, rejected + r);
        if read == 0 {
            break;
        }
    }
    tracing::info!(file = %path.display(), lines, accepted, rejected, "file read; following appended lines");
    ingest.caught_up();

    if !file.metadata().await?.is_file() {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        // While following, only whole lines: the writer may be mid-line.
        while read_lines(&mut file, path, &mut pending, false, ingest, &part).await?.0 > 0 {}
    }
}

/// Reads up to [`CHUNK`] more bytes of `file` after `pending` and pushes the
/// whole lines; what follows the last newline stays pending, except at the
/// end of the file when `last_line_complete` (at the end of the replay a
/// last line without a newline is complete: files often end so). Returns
/// the bytes read and (lines, accepted, rejected).
async fn read_lines(
    file: &mut tokio::fs::File,
    path: &Path,
    pending: &mut Vec<u8>,
    last_line_complete: bool,
    ingest: &Ingest,
    part: &PartitionKey,
) -> anyhow::Result<(usize, (usize, usize, usize))> {
    let read =
        file.take(CHUNK).read_to_end(pending).await.with_context(|| format!("cannot read {}", path.display()))?;
    let end = match (read == 0 && last_line_complete, pending.iter().rposition(|&b| b == b'\n')) {
        (true, _) => pending.len(),
        (false, Some(newline)) => newline + 1,
        (false, None) => return Ok((read, (0, 0, 0))),
    };
    // Decoding and storing block: off the runtime's workers.
    let (ingest, part, data) = (ingest.clone(), part.clone(), std::mem::take(pending));
    let (data, counts) = tokio::task::spawn_blocking(move || {
        let counts = push_lines(&ingest, &part, &data[..end]);
        (data, counts)
    })
    .await
    .expect("pushing lines does not panic");
    *pending = data;
    pending.drain(..end);
    Ok((read, counts))
}

/// Pushes the non-blank lines of `data`, [`PUSH`] at a time, decoding the
/// next push on another thread while one is stored; returns (lines,
/// accepted, rejected).
fn push_lines(ingest: &Ingest, part: &PartitionKey, data: &[u8]) -> (usize, usize, usize) {
    let lines: Vec<&[u8]> = lines(data).collect();
    let (mut accepted, mut rejected) = (0, 0);
    std::thread::scope(|s| {
        let mut pushes = lines.chunks(PUSH);
        let mut next = pushes.next().map(|p| s.spawn(move || ingest.decode(p)));
        while let Some(decoding) = next {
            let decoded = decoding.join().expect("decoding does not panic");
            next = pushes.next().map(|p| s.spawn(move || ingest.decode(p)));
            let r = ingest.store(part, decoded);
            accepted += r.accepted;
            rejected += r.rejected.len();
        }
    });
    (lines.len(), accepted, rejected)
}

/// The non-blank lines of NDJSON data, without their line ends: a line of
/// nothing but JSON whitespace is no event (docs/metrics.md §7).
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    // memchr finds the line ends many bytes at a time (a byte-wise `split`
    // took about 7% of a file replay).
    let ends = memchr::memchr_iter(b'\n', data).chain([data.len()]);
    let mut start = 0;
    ends.map(move |end| {
        let line = &data[start..end];
        start = end + 1;
        line.strip_suffix(b"\r").unwrap_or(line)
    })
    .filter(|l| !l.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_the_non_blank_lines_without_their_ends() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\n\n\r\n",
            b"a",
            b"a\nb\n",
            b"a\r\n\r\nbb\n\nc\r",
            b"\nx\ry\n\rz",
            "é\n{\"k\":1}\r\n\n".as_bytes(),
            b" \t\n \r\n x \n",
        ];
        let want: [&[&[u8]]; 8] = [
            &[],
            &[],
            &[b"a"],
            &[b"a", b"b"],
            &[b"a", b"bb", b"c"],
            &[b"x\ry", b"\rz"],
            &["é".as_bytes(), b"{\"k\":1}"],
            &[b" x "],
        ];
        for (data, want) in cases.iter().zip(want) {
            assert_eq!(super::lines(data).collect::<Vec<_>>(), want, "{:?}", String::from_utf8_lossy(data));
        }
    }
}
