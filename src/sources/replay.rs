//! Reading a recording for `replay`: a reader thread turns the file into batches of lines
//! (on the second core), handed over through a bounded channel so memory stays flat
//! whatever the file's length. Lines are kept as received; the feed decoder understands the
//! `record` wrapper (`{"ts","dir","msg"}`), raw v2 frames and v1 arrays.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A batch of lines from the file, with the 1-based number of the first line.
#[derive(Debug)]
pub struct LineBatch {
    /// Line number of `lines[0]`.
    pub first_line: u64,
    /// The lines (without newline).
    pub lines: Vec<Utf8Bytes>,
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

/// Starts the reader thread. Lines before `skip_lines` are skipped (resume); batches hold at
/// most `batch_lines` lines. The receiver yields `Err` once if reading fails midway.
pub fn spawn_reader(
    path: &Path,
    batch_lines: usize,
    skip_lines: u64,
) -> Result<mpsc::Receiver<Result<LineBatch, ReplayError>>, ReplayError> {
    let file = File::open(path).map_err(|source| ReplayError::Io { path: path.to_path_buf(), source })?;
    let (tx, rx) = mpsc::channel(4);
    let path = path.to_path_buf();
    let batch_lines = batch_lines.max(1);
    std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut line_no: u64 = 0;
            let mut batch = LineBatch { first_line: 1, lines: Vec::with_capacity(batch_lines) };
            loop {
                let mut raw = Vec::new();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) => break,
                    Ok(_) => {
                        line_no += 1;
                        if line_no <= skip_lines {
                            continue;
                        }
                        // Invalid UTF-8 is kept (lossily) so the decoder counts it as a
                        // malformed frame instead of the whole replay failing.
                        let mut buf = String::from_utf8(raw)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                        while buf.ends_with('\n') || buf.ends_with('\r') {
                            buf.pop();
                        }
                        if buf.trim().is_empty() {
                            continue;
                        }
                        if batch.lines.is_empty() {
                            batch.first_line = line_no;
                        }
                        batch.lines.push(Utf8Bytes::from(buf));
                        if batch.lines.len() >= batch_lines {
                            let full = std::mem::replace(
                                &mut batch,
                                LineBatch { first_line: line_no + 1, lines: Vec::with_capacity(batch_lines) },
                            );
                            if tx.blocking_send(Ok(full)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(source) => {
                        let _ = tx.blocking_send(Err(ReplayError::Io { path: path.clone(), source }));
                        return;
                    }
                }
            }
            if !batch.lines.is_empty() {
                let _ = tx.blocking_send(Ok(batch));
            }
        })
        .map_err(|source| ReplayError::Io { path: PathBuf::from("<reader thread>"), source })?;
    Ok(rx)
}
