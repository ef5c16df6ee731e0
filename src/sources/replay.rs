//! Reading a recording for `replay`: a reader thread turns the file into batches of lines
//! (on the second core), handed over through a bounded channel so memory stays flat
//! whatever the file's length. Lines are kept as received; the feed decoder understands the
//! `record` wrapper (`{"ts","dir","msg"}`), raw v2 frames and v1 arrays.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use std::borrow::Cow;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Bytes;

/// A batch of lines from the file, with the 1-based number of the first line.
#[derive(Debug)]
pub struct LineBatch {
    /// Line number of `lines[0]`.
    pub first_line: u64,
    /// The lines (without newline).
    pub lines: Vec<Line>,
}

/// One line of the file as read (without its newline), sharing the block it was cut from.
#[derive(Clone, Debug)]
pub struct Line(Bytes);

impl Line {
    /// The line as text: invalid UTF-8 is kept lossily (U+FFFD), so the decoder counts it as
    /// a malformed frame instead of the whole replay failing. Checked where it is read (a
    /// vectorised check: nearly every line is plain ASCII).
    pub fn text(&self) -> Cow<'_, str> {
        match simdutf8::basic::from_utf8(&self.0) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&self.0),
        }
    }
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Opening or reading failed.
    #[error("cannot read recording {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

impl crate::core::error::Classified for ReplayError {
    /// A recording that cannot be read ends the replay (or the resume): nothing else to play.
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            ReplayError::Io { .. } => crate::core::error::Disposition::Halt,
        }
    }
}

/// Bytes read from the file at a time. Lines are cut out of a block without copying (each
/// line shares the block), so a block lives until its last line has been decoded: a few
/// blocks at most with the bounded channel.
const BLOCK_BYTES: usize = 256 * 1024;

/// Starts the reader thread. Lines before `skip_lines` are skipped (resume); batches hold at
/// most `batch_lines` lines. The receiver yields `Err` once if reading fails midway.
pub fn spawn_reader(
    path: &Path,
    batch_lines: usize,
    skip_lines: u64,
) -> Result<mpsc::Receiver<Result<LineBatch, ReplayError>>, ReplayError> {
    spawn_reader_with(path, batch_lines, skip_lines, |batch| batch)
}

/// Like [`spawn_reader`], with `work` applied to each batch on the reader thread before it is
/// handed over (`replay` decodes there, so decoding runs beside the pipeline).
pub fn spawn_reader_with<T, F>(
    path: &Path,
    batch_lines: usize,
    skip_lines: u64,
    work: F,
) -> Result<mpsc::Receiver<Result<T, ReplayError>>, ReplayError>
where
    T: Send + 'static,
    F: FnMut(LineBatch) -> T + Send + 'static,
{
    let file = File::open(path).map_err(|source| ReplayError::Io { path: path.to_path_buf(), source })?;
    let (tx, rx) = mpsc::channel(4);
    let path = path.to_path_buf();
    let batch_lines = batch_lines.max(1);
    std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            let mut lines = Lines { batch_lines, skip_lines, line_no: 0, tx, batch: None, work };
            if let Err(source) = read_blocks(file, &mut lines) {
                let _ = lines.tx.blocking_send(Err(ReplayError::Io { path, source }));
                return;
            }
            lines.flush();
        })
        .map_err(|source| ReplayError::Io { path: PathBuf::from("<reader thread>"), source })?;
    Ok(rx)
}

/// Reads `file` block by block and hands each complete line to `lines`; a line cut by the
/// block's end is carried into the next block. Stops early when the receiver is gone.
fn read_blocks<T, F: FnMut(LineBatch) -> T>(mut file: File, lines: &mut Lines<T, F>) -> std::io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut block = Vec::with_capacity(BLOCK_BYTES.max(2 * carry.len()));
        block.append(&mut carry);
        let want = block.capacity() - block.len();
        let n = (&mut file).take(want as u64).read_to_end(&mut block)?;
        let eof = n == 0;
        let end = if eof {
            block.len()
        } else {
            match memchr::memrchr(b'\n', &block) {
                Some(p) => p + 1,
                None => {
                    // A line longer than the block: read on into a bigger one.
                    carry = block;
                    continue;
                }
            }
        };
        carry.extend_from_slice(block.get(end..).unwrap_or_default());
        block.truncate(end);
        if !lines.push_block(Bytes::from(block)) || eof {
            return Ok(());
        }
    }
}

/// Whether a line holds only whitespace (skipped): decided by its first byte that is not
/// ASCII whitespace, and only a line with other text there is read as text.
fn is_blank(line: &Line) -> bool {
    // The ASCII bytes `char::is_whitespace` (and so `str::trim`) counts, vertical tab included.
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    match line.0.iter().find(|b| !space(b)) {
        None => true,
        Some(b) if b.is_ascii() => false,
        Some(_) => line.text().trim().is_empty(),
    }
}

/// Offset of the first `\n` in `b` (SIMD search).
fn find_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Cuts blocks into lines and lines into batches, each handed to `work` and its result sent
/// to the feed.
struct Lines<T, F> {
    batch_lines: usize,
    skip_lines: u64,
    line_no: u64,
    tx: mpsc::Sender<Result<T, ReplayError>>,
    batch: Option<LineBatch>,
    work: F,
}

impl<T, F: FnMut(LineBatch) -> T> Lines<T, F> {
    /// Every line of `block` (complete lines; the last may lack its newline at the end of the
    /// file). False once the receiver is gone.
    fn push_block(&mut self, block: Bytes) -> bool {
        let mut start = 0;
        while start < block.len() {
            let stop = block.get(start..).and_then(find_newline);
            let stop = stop.map_or(block.len(), |n| start + n);
            let line = block.slice(start..stop);
            start = stop + 1;
            self.line_no += 1;
            if self.line_no <= self.skip_lines {
                continue;
            }
            if !self.push_line(line) {
                return false;
            }
        }
        true
    }

    fn push_line(&mut self, mut line: Bytes) -> bool {
        // A line ends at its newline; any carriage returns before it go too.
        let mut len = line.len();
        while len > 0 && line.get(len - 1) == Some(&b'\r') {
            len -= 1;
        }
        line.truncate(len);
        let line = Line(line);
        if is_blank(&line) {
            return true;
        }
        let line_no = self.line_no;
        let batch = self.batch.get_or_insert_with(|| LineBatch {
            first_line: line_no,
            lines: Vec::with_capacity(self.batch_lines),
        });
        batch.lines.push(line);
        if batch.lines.len() >= self.batch_lines {
            return self.flush();
        }
        true
    }

    /// Sends the batch being filled, if any. False once the receiver is gone.
    fn flush(&mut self) -> bool {
        match self.batch.take() {
            Some(full) => self.tx.blocking_send(Ok((self.work)(full))).is_ok(),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch the reader sends for `content`, as (first line, lines).
    fn read_all(content: &[u8], batch_lines: usize, skip_lines: u64) -> Vec<(u64, Vec<String>)> {
        let dir = std::env::temp_dir()
            .join(format!("kp-replay-reader-{}-{batch_lines}-{skip_lines}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rec.jsonl");
        std::fs::write(&file, content).unwrap();
        let mut rx = spawn_reader(&file, batch_lines, skip_lines).unwrap();
        let mut out = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            let batch = batch.unwrap();
            out.push((batch.first_line, batch.lines.iter().map(|l| l.text().into_owned()).collect()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn lines_are_cut_at_newlines_with_crlf_blank_lines_and_bad_utf8_handled() {
        let long = "x".repeat(BLOCK_BYTES + 1000);
        let mut content = Vec::new();
        content.extend_from_slice(b"a\r\n\n  \x0b\nb\n");
        content.extend_from_slice(long.as_bytes());
        content.extend_from_slice(b"\nbad \xff\r\r\nlast");
        let got = read_all(&content, 2, 0);
        // Line numbers count blank lines; the lossy line keeps its place.
        let want = vec![
            (1, vec!["a".to_string(), "b".to_string()]),
            (5, vec![long.clone(), "bad \u{fffd}".to_string()]),
            (7, vec!["last".to_string()]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn newlines_are_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut b = vec![b'x'; len];
                if at < len {
                    b[at] = b'\n';
                    b.extend_from_slice(b"\n\n");
                }
                assert_eq!(find_newline(&b), (at < len).then_some(at), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn skipped_lines_are_not_sent_and_numbering_continues() {
        let mut content = String::new();
        for i in 1..=1000 {
            content.push_str(&format!("{{\"n\":{i}}}\n"));
        }
        let got = read_all(content.as_bytes(), 400, 998);
        assert_eq!(got, vec![(999, vec![r#"{"n":999}"#.to_string(), r#"{"n":1000}"#.to_string()])]);
    }
}
