//! The journal format: JSON Lines, one record per line, append-only.
//!
//! Every line is an object whose first three keys are `seq` (strictly increasing across the
//! whole run, resumes included), `event_time` (RFC 3339, event time — never wall time) and
//! `type`; the other keys depend on the type. Example:
//! ```json
//! {"seq":42,"event_time":"2025-01-01T00:03:12.250000Z","type":"fill","fill_id":7,"order_id":3,...}
//! ```
//! Readers must tolerate keys they do not know. The version of the format is in the first
//! record (`run_started.journal_version`).
//!
//! Recovery rule: a line that does not end in `\n` or does not parse as a record is a torn
//! tail if it is the last line (power cut mid-write): it is reported and cut off. A bad line
//! followed by good ones is corruption and is reported as an error, never skipped silently.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::time::EventTime;

/// Version of the record layout written by this build.
pub const JOURNAL_VERSION: u32 = 1;

/// One record before it has a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Event time the record is about.
    pub event_time: EventTime,
    /// Record type (`fill`, `order`, `equity`, …).
    pub kind: &'static str,
    /// The type-specific fields (an object; other JSON values are wrapped as `{"value": …}`).
    pub body: Map<String, Value>,
}

impl Entry {
    /// A record whose fields are those of `body` serialized (a struct or map).
    pub fn new<T: serde::Serialize>(event_time: EventTime, kind: &'static str, body: &T) -> Entry {
        let body = match serde_json::to_value(body) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(other) => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
            Err(e) => {
                let mut m = Map::new();
                m.insert("serialization_error".into(), Value::String(e.to_string()));
                m
            }
        };
        Entry { event_time, kind, body }
    }
}

/// A record read back from a journal.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// Sequence number.
    pub seq: u64,
    /// Event time.
    pub event_time: EventTime,
    /// Record type.
    pub kind: String,
    /// Type-specific fields.
    pub body: Map<String, Value>,
}

impl StoredRecord {
    /// Deserializes the body into `T` (a struct with the record's fields).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, JournalError> {
        serde_json::from_value(Value::Object(self.body.clone())).map_err(|e| JournalError::Body {
            seq: self.seq,
            kind: self.kind.clone(),
            message: e.to_string(),
        })
    }
}

/// Problems reading, writing or re-checking a journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// A line in the middle of the file is not a valid record.
    #[error("journal line {line} (byte {offset}) is corrupt: {message}")]
    Corrupt {
        /// 1-based line number.
        line: usize,
        /// Byte offset of the line.
        offset: u64,
        /// Parser message.
        message: String,
    },
    /// `seq` does not increase.
    #[error("journal line {line}: seq {seq} does not follow {previous}")]
    Sequence {
        /// 1-based line number.
        line: usize,
        /// Its seq.
        seq: u64,
        /// The previous seq.
        previous: u64,
    },
    /// A record's fields do not match its type.
    #[error("journal record seq {seq} ({kind}): {message}")]
    Body {
        /// Its seq.
        seq: u64,
        /// Its type.
        kind: String,
        /// Parser message.
        message: String,
    },
    /// The journal file cannot be opened for appending.
    #[error("cannot open journal {}: {error}", path.display())]
    Open {
        /// The journal file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// The feed recording beside the journal cannot be opened for appending.
    #[error("cannot open feed recording {}: {error}", path.display())]
    OpenRecording {
        /// The recording file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// A resumed journal cannot be opened to re-check its records.
    #[error("cannot read journal {}: {error}", path.display())]
    OpenVerify {
        /// The journal file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// Writing buffered records failed.
    #[error("journal {}: write failed: {error}", path.display())]
    Write {
        /// The journal file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// Syncing written records to disk failed.
    #[error("journal {}: fsync failed: {error}", path.display())]
    Sync {
        /// The journal file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// Writing the feed recording failed.
    #[error("feed recording {}: write failed: {error}", path.display())]
    RecordingWrite {
        /// The recording file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// Syncing the feed recording failed.
    #[error("feed recording {}: fsync failed: {error}", path.display())]
    RecordingSync {
        /// The recording file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// A resumed run regenerated a record that differs from the one in the journal.
    #[error(
        "resume: the continued run diverges from {} at seq {seq} (the config, seed or build differ from the original run)\n  journal: {journal}\n  now:     {now}",
        path.display()
    )]
    Diverged {
        /// The journal file.
        path: PathBuf,
        /// The first differing seq.
        seq: u64,
        /// The line in the journal (without its newline).
        journal: String,
        /// The line the continued run produced.
        now: String,
    },
    /// A resumed journal could not be read while re-checking it.
    #[error("resume: cannot read {}: {error}", path.display())]
    VerifyRead {
        /// The journal file.
        path: PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// The journal actor panicked while appending or writing: treated as a write failure.
    #[error("journal {}: failed: {error}", path.display())]
    Panicked {
        /// The journal file.
        path: PathBuf,
        /// The panic's text.
        error: String,
    },
    /// The journal was closed; nothing more is written.
    #[error("journal is closed")]
    Closed,
}

impl JournalError {
    /// For a failure to write the run's files (journal or feed recording): the file and the
    /// error's text (the fields of the `journal_write_failed` event).
    pub fn write_failure(&self) -> Option<(&std::path::Path, &str)> {
        match self {
            JournalError::Write { path, error }
            | JournalError::Sync { path, error }
            | JournalError::RecordingWrite { path, error }
            | JournalError::RecordingSync { path, error }
            | JournalError::Panicked { path, error } => Some((path.as_path(), error.as_str())),
            JournalError::Corrupt { .. }
            | JournalError::Sequence { .. }
            | JournalError::Body { .. }
            | JournalError::Open { .. }
            | JournalError::OpenRecording { .. }
            | JournalError::OpenVerify { .. }
            | JournalError::Diverged { .. }
            | JournalError::VerifyRead { .. }
            | JournalError::Closed => None,
        }
    }
}

impl crate::core::error::Classified for JournalError {
    /// A journal that cannot be read back, written or re-checked ends the run: every variant
    /// is [`Disposition::Halt`](crate::core::error::Disposition::Halt).
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            JournalError::Corrupt { .. }
            | JournalError::Sequence { .. }
            | JournalError::Body { .. }
            | JournalError::Open { .. }
            | JournalError::OpenRecording { .. }
            | JournalError::OpenVerify { .. }
            | JournalError::Write { .. }
            | JournalError::Sync { .. }
            | JournalError::RecordingWrite { .. }
            | JournalError::RecordingSync { .. }
            | JournalError::Diverged { .. }
            | JournalError::VerifyRead { .. }
            | JournalError::Panicked { .. }
            | JournalError::Closed => crate::core::error::Disposition::Halt,
        }
    }
}

/// Appends one record as a line to `out`.
pub fn encode(seq: u64, entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"event_time\":\"");
    let mut t = String::with_capacity(27);
    entry.event_time.write_rfc3339(&mut t);
    out.extend_from_slice(t.as_bytes());
    out.extend_from_slice(b"\",\"type\":");
    // Serialized straight into `out` (the same bytes as `to_string`, without a String per
    // value). Writing into a Vec cannot fail, and a `Value` always serializes.
    // Kinds are static identifiers, but escape anyway.
    let _ = serde_json::to_writer(&mut *out, entry.kind);
    for (k, v) in &entry.body {
        if k == "seq" || k == "event_time" || k == "type" {
            continue;
        }
        out.push(b',');
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, v);
    }
    out.extend_from_slice(b"}\n");
}

/// Parses one line (without its newline); the message becomes a [`JournalError`] in [`scan`].
fn decode_line(line: &str) -> Result<StoredRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let Value::Object(mut m) = v else {
        return Err("not a JSON object".into());
    };
    let seq = m.remove("seq").and_then(|s| s.as_u64()).ok_or("missing or non-integer `seq`")?;
    let event_time = m
        .remove("event_time")
        .and_then(|t| t.as_str().map(str::to_string))
        .ok_or("missing `event_time`")
        .and_then(|t| EventTime::parse_rfc3339(&t).map_err(|_| "invalid `event_time`"))?;
    let kind = m.remove("type").and_then(|t| t.as_str().map(str::to_string)).ok_or("missing `type`")?;
    Ok(StoredRecord { seq, event_time, kind, body: m })
}

/// The cut-off end of a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the torn part starts (the file should be truncated here).
    pub offset: u64,
    /// Bytes in the torn part.
    pub bytes: u64,
    /// Why it was judged torn.
    pub reason: String,
}

/// A journal read back: the good records and, if any, the torn tail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Every complete record, in order.
    pub records: Vec<StoredRecord>,
    /// Length in bytes of the valid prefix.
    pub valid_len: u64,
    /// The torn last record, if one was found.
    pub torn: Option<TornTail>,
}

/// Reads a whole journal. Only the last line may be bad (then it is a torn tail).
pub fn scan(bytes: &[u8]) -> Result<Scan, JournalError> {
    let mut out = Scan::default();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let next = offset + line.len() + usize::from(complete);
        let is_last = next >= bytes.len();
        let parsed = std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|s| if s.trim().is_empty() { Err("empty line".to_string()) } else { decode_line(s) });
        match parsed {
            Ok(rec) if complete => {
                if let Some(prev) = out.records.last()
                    && rec.seq <= prev.seq
                {
                    return Err(JournalError::Sequence { line: line_no, seq: rec.seq, previous: prev.seq });
                }
                out.records.push(rec);
                out.valid_len = next as u64;
            }
            bad if is_last => {
                let reason = match bad {
                    Ok(_) => "last record has no terminating newline".to_string(),
                    Err(e) => format!("last record is incomplete: {e}"),
                };
                out.torn =
                    Some(TornTail { offset: offset as u64, bytes: (bytes.len() - offset) as u64, reason });
                break;
            }
            bad => {
                // Only the last line can lack its newline, so this is a bad line in the middle.
                let message = bad.err().unwrap_or_else(|| "record without newline".into());
                return Err(JournalError::Corrupt { line: line_no, offset: offset as u64, message });
            }
        }
        offset = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct FillLike {
        fill_id: u64,
        price: rust_decimal::Decimal,
        score: f64,
    }

    fn sample(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for i in 1..=n {
            let e = Entry::new(
                EventTime::from_micros(1_700_000_000_000_000 + i as i64),
                "fill",
                &FillLike { fill_id: i, price: dec!(50000.10), score: 0.25 },
            );
            encode(i, &e, &mut buf);
        }
        buf
    }

    #[test]
    fn round_trips_exact_decimals_and_floats() {
        let s = scan(&sample(3)).unwrap();
        assert_eq!(s.records.len(), 3);
        assert!(s.torn.is_none());
        let f: FillLike = s.records[1].parse().unwrap();
        assert_eq!(f, FillLike { fill_id: 2, price: dec!(50000.10), score: 0.25 });
        assert_eq!(f.price.to_string(), "50000.10");
        let text = String::from_utf8(sample(1)).unwrap();
        assert!(
            text.starts_with("{\"seq\":1,\"event_time\":\"2023-11-14T22:13:20.000001Z\",\"type\":\"fill\","),
            "{text}"
        );
    }

    #[test]
    fn torn_last_record_is_cut_not_refused() {
        let full = sample(5);
        let cut = &full[..full.len() - 20];
        let s = scan(cut).unwrap();
        assert_eq!(s.records.len(), 4);
        let torn = s.torn.unwrap();
        assert_eq!(torn.offset, s.valid_len);
        assert_eq!(torn.offset + torn.bytes, cut.len() as u64);
    }

    #[test]
    fn complete_json_without_newline_is_torn() {
        let full = sample(2);
        let s = scan(&full[..full.len() - 1]).unwrap();
        assert_eq!(s.records.len(), 1);
        assert!(s.torn.unwrap().reason.contains("newline"));
    }

    #[test]
    fn corruption_in_the_middle_is_an_error() {
        let mut full = sample(3);
        let first_nl = full.iter().position(|&b| b == b'\n').unwrap();
        full[first_nl - 3] = b'#';
        assert!(matches!(scan(&full), Err(JournalError::Corrupt { line: 1, .. })));
    }

    #[test]
    fn sequence_must_increase() {
        let mut buf = Vec::new();
        let e = Entry::new(EventTime::ZERO, "x", &());
        encode(2, &e, &mut buf);
        encode(2, &e, &mut buf);
        assert!(matches!(scan(&buf), Err(JournalError::Sequence { .. })));
    }
}
