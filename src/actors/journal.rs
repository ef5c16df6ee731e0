//! Journal actor: owns the run's `journal.jsonl` and appends every record it is sent.
//!
//! - In: [`Append`] (records from PositionBook, RiskManager, SignalAggregator, MarketFeed,
//!   the engine), [`Flush`] (end of a pipeline batch: the durability barrier), [`Close`].
//! - Out: nothing; it is the end of the data path.
//! - Sequence numbers are assigned here, in arrival order, which the pipeline makes
//!   deterministic (every stage awaits the previous one).
//! - Failure: an I/O error is fatal for the run (a journal that silently loses records is
//!   worse than a stopped engine): it is logged once and returned to the caller of `Flush`,
//!   which halts the engine; no later `Flush` or `Close` succeeds (nothing more is
//!   acknowledged). A panic in a handler is caught and counts as a write failure
//!   (`supervision::Policy::StopUnjournaled`: exit code 4, resumable).
//! - When another actor fails, [`Rollback`] drops the records of the pass in flight (those
//!   appended since the last successful `Flush`), so the run's end is written at a pass
//!   boundary that `run --resume` can find again; a resume re-checking the journal passes
//!   over that end with [`SkipVerified`].
//!
//! Runs on its own arbiter thread so an fsync never blocks the market data path's thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use actix::prelude::*;

use crate::config::Durability;
use crate::core::journal::{self, Entry};
use crate::supervision::{self, ActorName, Watch};

pub use crate::core::journal::JournalError;
pub use crate::messages::{Append, Flush, JournalPosition};
pub use crate::pipeline::JournalSink;

/// Final flush and sync; later appends are refused.
#[derive(Message)]
#[rtype(result = "Result<JournalPosition, JournalError>")]
pub struct Close;

/// Asks whether a resumed journal is still re-checking its existing records (true until the
/// re-execution has caught up with the file's end).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsVerifying;

/// Drops the records appended since the last successful [`Flush`] (cut from the file if
/// already written): the pass an actor failed in. Answered with the position after. A resume
/// still re-checking the journal has written nothing: unchanged.
#[derive(Message)]
#[rtype(result = "Result<JournalPosition, JournalError>")]
pub struct Rollback;

/// Resume: the next `records` lines of the journal are the end of a session that stopped
/// because an actor failed; they are passed over (not regenerated), seq numbers run on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SkipVerified {
    /// How many records.
    pub records: u64,
}

/// Lines for the run's recording of its live feed (`feed.jsonl`, the `record` format),
/// already encoded. The journal writes them before any journal record sent after them and
/// syncs them first, so the recording is never behind the journal: `run --resume`
/// re-executes it to regenerate the journal.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordFrames {
    /// Encoded `record` lines, newline-terminated.
    pub lines: Vec<u8>,
}

/// The Journal actor.
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    durability: Durability,
    interval_ms: u64,
    buf: Vec<u8>,
    dirty: bool,
    pos: JournalPosition,
    last_sync: Option<tokio::time::Instant>,
    error: Option<JournalError>,
    verify: Option<VerifyPrefix>,
    recording: Option<FeedRecording>,
    /// Bytes in the file (what was there at open plus what this process wrote).
    file_len: u64,
    /// Position and file length at the last successful Flush (where [`Rollback`] goes back to).
    committed: (JournalPosition, u64),
    /// Reports a panic that escaped the handlers' catch (and the test hook: n-th Flush).
    supervision: Watch,
}

impl Actor for Journal {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "journal", path = %self.path.display(), "journal open");
        // Batches that append nothing send no Flush, so "at most every N ms" needs its own
        // timer to sync what the last flushed batch left unsynced.
        if self.durability == Durability::Interval {
            let every = std::time::Duration::from_millis(self.interval_ms.max(1));
            ctx.run_interval(every, |act, _| {
                if act.dirty && act.sync_due() {
                    let _ = act.write_out(true);
                }
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let _ = self.write_out(true);
        tracing::info!(
            event = "actor_stopped",
            actor = "journal",
            last_seq = self.pos.last_seq,
            "journal closed"
        );
    }
}

impl Handler<Append> for Journal {
    type Result = ();

    fn handle(&mut self, msg: Append, _ctx: &mut Self::Context) {
        if let Err(reason) = supervision::catch(|| self.append(msg)) {
            self.panicked(reason);
        }
    }
}

impl Journal {
    fn append(&mut self, msg: Append) {
        if self.file.is_none() {
            tracing::error!(actor = "journal", dropped = msg.entries.len(), "append after close refused");
            return;
        }
        let written_before = self.pos.written;
        for entry in &msg.entries {
            if self.error.is_some() {
                return;
            }
            self.pos.last_seq += 1;
            self.pos.last_event_time = entry.event_time;
            if let Some(until) = self.verify.as_ref().map(|v| v.until_seq)
                && self.pos.last_seq <= until
            {
                if self.check_prefix(self.pos.last_seq, entry)
                    && self.pos.last_seq == until
                    && let Some(tx) = self.verify.take().and_then(|mut v| v.caught_up.take())
                {
                    tracing::info!(
                        actor = "journal",
                        seq = until,
                        "resume caught up with the journal; continuing"
                    );
                    let _ = tx.send(until);
                }
                continue;
            }
            self.pos.written += 1;
            journal::encode(self.pos.last_seq, entry, &mut self.buf);
        }
        // Records only re-checked during a resume's catch-up are not new: nothing to sync.
        let wrote = self.pos.written > written_before;
        if wrote {
            self.dirty = true;
        }
        if self.durability == Durability::EveryRecord && wrote {
            let _ = self.write_out(true);
        } else if self.buf.len() > 1 << 20 {
            let _ = self.write_out(false);
        }
    }
}

impl Handler<RecordFrames> for Journal {
    type Result = ();

    fn handle(&mut self, msg: RecordFrames, _ctx: &mut Self::Context) {
        let Some(rec) = self.recording.as_mut() else { return };
        rec.buf.extend_from_slice(&msg.lines);
        rec.dirty = true;
        if rec.buf.len() > 1 << 20
            && let Err(e) = rec.write_out(false)
        {
            tracing::error!(actor = "journal", error = %e, "feed recording write failed");
            self.error = Some(e);
        }
    }
}

impl Handler<Flush> for Journal {
    type Result = Result<JournalPosition, JournalError>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let flushed = supervision::catch(|| {
            self.supervision.tick();
            let sync = self.dirty && self.sync_due();
            self.write_out(sync)
        });
        let pos = flushed.unwrap_or_else(|reason| Err(self.panicked(reason)))?;
        self.committed = (pos, self.file_len);
        Ok(pos)
    }
}

impl Handler<Rollback> for Journal {
    type Result = Result<JournalPosition, JournalError>;

    fn handle(&mut self, _msg: Rollback, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.verify.is_some() {
            return Ok(self.pos);
        }
        let (pos, len) = self.committed;
        self.buf.clear();
        if self.file_len > len
            && let Some(file) = self.file.as_mut()
        {
            if let Err(e) = file.set_len(len) {
                let e = JournalError::Write { path: self.path.clone(), error: e.to_string() };
                self.error = Some(e.clone());
                return Err(e);
            }
            self.file_len = len;
        }
        tracing::info!(
            actor = "journal",
            dropped = self.pos.last_seq - pos.last_seq,
            last_seq = pos.last_seq,
            "records of the pass in flight dropped"
        );
        self.pos = pos;
        Ok(pos)
    }
}

impl Handler<SkipVerified> for Journal {
    type Result = ();

    fn handle(&mut self, msg: SkipVerified, _ctx: &mut Self::Context) {
        use std::io::BufRead;
        for _ in 0..msg.records {
            let Some(v) = self.verify.as_mut() else { return };
            v.line.clear();
            if let Err(e) = v.reader.read_until(b'\n', &mut v.line) {
                self.error = Some(JournalError::VerifyRead { path: self.path.clone(), error: e.to_string() });
                return;
            }
            self.pos.last_seq += 1;
            if self.pos.last_seq == v.until_seq {
                if let Some(tx) = self.verify.take().and_then(|mut v| v.caught_up.take()) {
                    tracing::info!(
                        actor = "journal",
                        seq = self.pos.last_seq,
                        "resume caught up with the journal; continuing"
                    );
                    let _ = tx.send(self.pos.last_seq);
                }
                return;
            }
        }
    }
}

impl Handler<IsVerifying> for Journal {
    type Result = bool;

    fn handle(&mut self, _msg: IsVerifying, _ctx: &mut Self::Context) -> bool {
        self.verify.is_some()
    }
}

impl Handler<Close> for Journal {
    type Result = Result<JournalPosition, JournalError>;

    fn handle(&mut self, _msg: Close, ctx: &mut Self::Context) -> Self::Result {
        self.dirty = true;
        let r =
            supervision::catch(|| self.write_out(true)).unwrap_or_else(|reason| Err(self.panicked(reason)));
        self.file = None;
        ctx.stop();
        r
    }
}

/// The feed recording a live run keeps beside its journal ([`RecordFrames`]).
struct FeedRecording {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    dirty: bool,
}

impl FeedRecording {
    fn write_out(&mut self, sync: bool) -> Result<(), JournalError> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf).map_err(|e| JournalError::RecordingWrite {
                path: self.path.clone(),
                error: e.to_string(),
            })?;
            self.buf.clear();
        }
        if sync && self.dirty {
            self.file
                .sync_data()
                .map_err(|e| JournalError::RecordingSync { path: self.path.clone(), error: e.to_string() })?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Resume by deterministic re-execution: the records a resumed run regenerates for
/// `seq <= until_seq` must equal, byte for byte, the lines already in the journal; they are
/// checked, not written again. Past `until_seq` records are appended as usual.
struct VerifyPrefix {
    reader: std::io::BufReader<File>,
    until_seq: u64,
    line: Vec<u8>,
    encoded: Vec<u8>,
    caught_up: Option<tokio::sync::oneshot::Sender<u64>>,
}

impl Journal {
    /// Opens `path` for appending; `next_seq` continues a resumed journal (1 for a new one).
    pub fn open(
        path: &Path,
        durability: Durability,
        interval_ms: u64,
        last: JournalPosition,
    ) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| JournalError::Open { path: path.to_path_buf(), error: e.to_string() })?;
        let file_len = file
            .metadata()
            .map_err(|e| JournalError::Open { path: path.to_path_buf(), error: e.to_string() })?
            .len();
        let pos = JournalPosition { written: 0, ..last };
        Ok(Journal {
            path: path.to_path_buf(),
            file: Some(file),
            durability,
            interval_ms,
            buf: Vec::with_capacity(64 * 1024),
            dirty: false,
            pos,
            last_sync: None,
            error: None,
            verify: None,
            recording: None,
            file_len,
            committed: (pos, file_len),
            supervision: Watch::inert(ActorName::Journal),
        })
    }

    /// Reports a panic that escapes the handlers and takes the test hook (its n-th Flush
    /// panics) through `watch` (the engine's supervision).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.supervision = watch;
        self
    }

    /// A handler panicked: from now on the journal is failed like after a write error.
    fn panicked(&mut self, panicked: supervision::Panicked) -> JournalError {
        let e = JournalError::Panicked { path: self.path.clone(), error: panicked.reason };
        tracing::error!(actor = "journal", error = %e, "journal failed");
        self.error = Some(e.clone());
        e
    }

    /// Also keeps the live feed's recording at `path` (appended to; see [`RecordFrames`]).
    pub fn with_recording(mut self, path: &Path) -> Result<Journal, JournalError> {
        let file =
            OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                JournalError::OpenRecording { path: path.to_path_buf(), error: e.to_string() }
            })?;
        self.recording = Some(FeedRecording {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(64 * 1024),
            dirty: false,
        });
        Ok(self)
    }

    /// Resume mode: the first `until_seq` records must reproduce the existing journal (which
    /// must already be cut to its last complete record); `caught_up` fires once they have.
    pub fn verify_prefix(
        mut self,
        until_seq: u64,
        caught_up: tokio::sync::oneshot::Sender<u64>,
    ) -> Result<Journal, JournalError> {
        let f = File::open(&self.path)
            .map_err(|e| JournalError::OpenVerify { path: self.path.clone(), error: e.to_string() })?;
        self.verify = Some(VerifyPrefix {
            reader: std::io::BufReader::with_capacity(1 << 16, f),
            until_seq,
            line: Vec::new(),
            encoded: Vec::new(),
            caught_up: Some(caught_up),
        });
        Ok(self)
    }

    /// Checks one regenerated record against the journal; false when it diverges.
    fn check_prefix(&mut self, seq: u64, entry: &Entry) -> bool {
        use std::io::BufRead;
        let Some(v) = self.verify.as_mut() else { return true };
        v.encoded.clear();
        journal::encode(seq, entry, &mut v.encoded);
        v.line.clear();
        match v.reader.read_until(b'\n', &mut v.line) {
            Ok(_) if v.line == v.encoded => true,
            Ok(_) => {
                let diverged = JournalError::Diverged {
                    path: self.path.clone(),
                    seq,
                    journal: String::from_utf8_lossy(&v.line).trim_end().to_string(),
                    now: String::from_utf8_lossy(&v.encoded).trim_end().to_string(),
                };
                tracing::error!(actor = "journal", seq, "resume diverged from the journal");
                self.error = Some(diverged);
                false
            }
            Err(e) => {
                self.error = Some(JournalError::VerifyRead { path: self.path.clone(), error: e.to_string() });
                false
            }
        }
    }

    fn write_out(&mut self, sync: bool) -> Result<JournalPosition, JournalError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.file.is_none() {
            return Err(JournalError::Closed);
        }
        // The recording first: the journal must never be ahead of it.
        if let Some(rec) = self.recording.as_mut()
            && let Err(msg) = rec.write_out(sync)
        {
            tracing::error!(actor = "journal", error = %msg, "feed recording write failed");
            self.error = Some(msg.clone());
            return Err(msg);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(JournalError::Closed);
        };
        if !self.buf.is_empty() {
            if let Err(e) = file.write_all(&self.buf) {
                let msg = JournalError::Write { path: self.path.clone(), error: e.to_string() };
                tracing::error!(actor = "journal", error = %msg, "journal write failed");
                self.error = Some(msg.clone());
                return Err(msg);
            }
            self.file_len += self.buf.len() as u64;
            self.buf.clear();
        }
        if sync && self.dirty {
            if let Err(e) = file.sync_data() {
                let msg = JournalError::Sync { path: self.path.clone(), error: e.to_string() };
                tracing::error!(actor = "journal", error = %msg, "journal sync failed");
                self.error = Some(msg.clone());
                return Err(msg);
            }
            self.dirty = false;
        }
        Ok(self.pos)
    }

    fn sync_due(&mut self) -> bool {
        match self.durability {
            Durability::EveryRecord | Durability::Batch => true,
            Durability::Os => false,
            Durability::Interval => {
                // Wall time is right here: this bounds data loss on power failure, it decides
                // nothing that is journaled.
                let now = tokio::time::Instant::now();
                let due = self
                    .last_sync
                    .is_none_or(|t| now.duration_since(t).as_millis() as u64 >= self.interval_ms);
                if due {
                    self.last_sync = Some(now);
                }
                due
            }
        }
    }
}
