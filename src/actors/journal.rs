//! Journal actor: owns the run's `journal.jsonl` and appends every record it is sent.
//!
//! - In: [`Append`] (records from PositionBook, RiskManager, SignalAggregator, MarketFeed,
//!   the engine), [`Flush`] (end of a pipeline batch: the durability barrier), [`Close`].
//! - Out: nothing; it is the end of the data path.
//! - Sequence numbers are assigned here, in arrival order, which the pipeline makes
//!   deterministic (every stage awaits the previous one).
//! - Failure: an I/O error is fatal for the run (a journal that silently loses records is
//!   worse than a stopped engine): it is logged once and returned to the caller of `Flush`,
//!   which halts the engine.
//!
//! Runs on its own arbiter thread so an fsync never blocks the market data path's thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use actix::prelude::*;

use crate::config::Durability;
use crate::core::journal::{self, Entry};
use crate::core::time::EventTime;

/// Appends records (sequence numbers are given by the journal).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append(pub Vec<Entry>);

/// Writes buffered records and syncs them to disk per the durability policy.
#[derive(Message)]
#[rtype(result = "Result<JournalPosition, String>")]
pub struct Flush;

/// Final flush and sync; later appends are refused.
#[derive(Message)]
#[rtype(result = "Result<JournalPosition, String>")]
pub struct Close;

/// Where the journal stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalPosition {
    /// Last sequence number written (0 if none).
    pub last_seq: u64,
    /// Event time of the last record.
    pub last_event_time: EventTime,
    /// Records written by this process.
    pub written: u64,
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
    last_sync: Option<std::time::Instant>,
    error: Option<String>,
}

impl Journal {
    /// Opens `path` for appending; `next_seq` continues a resumed journal (1 for a new one).
    pub fn open(
        path: &Path,
        durability: Durability,
        interval_ms: u64,
        last: JournalPosition,
    ) -> Result<Journal, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open journal {}: {e}", path.display()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Some(file),
            durability,
            interval_ms,
            buf: Vec::with_capacity(64 * 1024),
            dirty: false,
            pos: JournalPosition { written: 0, ..last },
            last_sync: None,
            error: None,
        })
    }

    fn write_out(&mut self, sync: bool) -> Result<JournalPosition, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(file) = self.file.as_mut() else {
            return Err("journal is closed".into());
        };
        if !self.buf.is_empty() {
            if let Err(e) = file.write_all(&self.buf) {
                let msg = format!("journal {}: write failed: {e}", self.path.display());
                tracing::error!(actor = "journal", error = %msg, "journal write failed");
                self.error = Some(msg.clone());
                return Err(msg);
            }
            self.buf.clear();
        }
        if sync && self.dirty {
            if let Err(e) = file.sync_data() {
                let msg = format!("journal {}: fsync failed: {e}", self.path.display());
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
                #[allow(clippy::disallowed_methods)]
                let now = std::time::Instant::now();
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

impl Actor for Journal {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "journal", path = %self.path.display(), "journal open");
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
        if self.file.is_none() {
            tracing::error!(actor = "journal", dropped = msg.0.len(), "append after close refused");
            return;
        }
        for entry in &msg.0 {
            self.pos.last_seq += 1;
            self.pos.last_event_time = entry.event_time;
            self.pos.written += 1;
            journal::encode(self.pos.last_seq, entry, &mut self.buf);
        }
        if !msg.0.is_empty() {
            self.dirty = true;
        }
        if self.durability == Durability::EveryRecord && !msg.0.is_empty() {
            let _ = self.write_out(true);
        } else if self.buf.len() > 1 << 20 {
            let _ = self.write_out(false);
        }
    }
}

impl Handler<Flush> for Journal {
    type Result = Result<JournalPosition, String>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let sync = self.dirty && self.sync_due();
        self.write_out(sync)
    }
}

impl Handler<Close> for Journal {
    type Result = Result<JournalPosition, String>;

    fn handle(&mut self, _msg: Close, ctx: &mut Self::Context) -> Self::Result {
        self.dirty = true;
        let r = self.write_out(true);
        self.file = None;
        ctx.stop();
        r
    }
}
