//! Planning `run --resume RUN_DIR`: the journal read back (a torn last record cut off), what
//! `core::resume` says about continuing it, and the run's market input made ready again — the
//! same seed, the same recording (`replay.json`), or the run's own recording of its live feed
//! (`feed.jsonl`, a torn last line cut off).

use std::path::Path;

use super::{ReplaySource, ReplaySourceError, RunDir, files};
use crate::actors::market_feed::ReplayInput;
use crate::core::instrument::Instrument;
use crate::core::journal::{JournalError, Scan};
use crate::core::resume::{ResumeRefusal, RunSource};

/// How to continue a run: deterministic re-execution. The same config and seed regenerate
/// the journal's records, which are checked byte for byte against the file instead of being
/// written again; from the first record past the file's end on, the run appends as usual.
#[derive(Clone, Debug)]
pub struct Resume {
    /// Last complete record in the journal (after a torn tail was cut).
    pub last_seq: u64,
    /// Lift a trading halt in force once caught up (`run --resume DIR --lift-halt`).
    pub lift_halt: bool,
    /// Where earlier sessions stopped (`core::resume::ResumePlan::stops`): a signal stop's
    /// end-of-run block is written again there, so it is checked like every other record; an
    /// actor failure's end records are passed over; the run goes on past them.
    pub stops: Vec<crate::core::resume::SessionStop>,
}

/// A planned resume: what the engine needs on top of the run folder's config.
#[derive(Debug)]
pub struct ResumeStart {
    /// Where to continue.
    pub resume: Resume,
    /// The recording to play again, when the run was a replay.
    pub replay: Option<ReplayInput>,
    /// The replay's `--instruments`, preloaded into the feed's decoder.
    pub instruments: Vec<Instrument>,
}

/// Why a run folder cannot be resumed. The texts are the ones the command line prints.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The journal could not be read.
    #[error("read {path}: {error}")]
    Read {
        /// The journal.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The journal is damaged before its last record.
    #[error("{path}: {error}")]
    Scan {
        /// The journal.
        path: String,
        /// What is wrong.
        error: JournalError,
    },
    /// A torn tail could not be cut off (`action` is `open` or `truncate`).
    #[error("{action} {path}: {error}")]
    Cut {
        /// `open` or `truncate`.
        action: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The journal says the run cannot be continued.
    #[error("run folder {dir} cannot be resumed: {refusal}")]
    Refused {
        /// The run folder.
        dir: String,
        /// Why.
        refusal: ResumeRefusal,
    },
    /// A replay run's input is missing or bad.
    #[error("{0}")]
    Replay(#[from] ReplaySourceError),
}

/// Plans the resume of `run_dir`: cuts a torn journal tail, asks `core::resume` whether and
/// how the run continues, and readies its market input (for a live run, a torn last line of
/// `feed.jsonl` is cut off).
pub fn plan_resume(run_dir: &RunDir, lift_halt: bool) -> Result<ResumeStart, ResumeError> {
    let scan = cut_torn_journal(run_dir)?;
    // Resume re-executes the run: from the same seed, the same recording, or the run's own
    // recording of its live feed (core::resume).
    let plan = crate::core::resume::plan(&scan.records)
        .map_err(|refusal| ResumeError::Refused { dir: run_dir.path().display().to_string(), refusal })?;
    let (mut replay, mut instruments) = (None, Vec::new());
    match plan.source {
        RunSource::Sim => {}
        RunSource::Replay => {
            let input = ReplaySource::load(run_dir)?;
            instruments = input.instruments()?;
            replay = Some(input.replay_input());
        }
        RunSource::Live => cut_torn_recording(run_dir)?,
    }
    if !plan.stops.is_empty() {
        tracing::info!(
            actor = "engine",
            sessions = plan.stops.len(),
            "resume: the run was stopped by a signal before; continuing past each stop"
        );
    }
    let resume = Resume { last_seq: plan.last_seq, lift_halt, stops: plan.stops };
    Ok(ResumeStart { resume, replay, instruments })
}

/// Reads the journal back; a torn last record (an interrupted write) is cut off the file.
pub fn cut_torn_journal(run_dir: &RunDir) -> Result<Scan, ResumeError> {
    let path = run_dir.journal();
    let bytes = std::fs::read(&path)
        .map_err(|error| ResumeError::Read { path: path.display().to_string(), error })?;
    let scan = crate::core::journal::scan(&bytes)
        .map_err(|error| ResumeError::Scan { path: path.display().to_string(), error })?;
    if let Some(torn) = &scan.torn {
        tracing::warn!(
            actor = "engine",
            offset = torn.offset,
            bytes = torn.bytes,
            reason = %torn.reason,
            "journal ends in a torn record (interrupted write); cutting it off"
        );
        truncate(&path, scan.valid_len)?;
    }
    Ok(scan)
}

/// A live run's `feed.jsonl` written up to a torn last line (killed mid-write): that frame
/// was never handed to the pipeline (it is recorded first), so it is cut off.
pub fn cut_torn_recording(run_dir: &RunDir) -> Result<(), ResumeError> {
    let path = run_dir.file(files::FEED_RECORDING);
    let Ok(bytes) = std::fs::read(&path) else { return Ok(()) };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        tracing::warn!(
            actor = "engine",
            offset = keep,
            bytes = bytes.len() - keep,
            "feed recording ends in a torn line (interrupted write); cutting it off"
        );
        truncate(&path, keep as u64)?;
    }
    Ok(())
}

/// Cuts `path` to `len` bytes and syncs it.
fn truncate(path: &Path, len: u64) -> Result<(), ResumeError> {
    let cut = |action, error| ResumeError::Cut { action, path: path.display().to_string(), error };
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| cut("open", e))?;
    f.set_len(len).map_err(|e| cut("truncate", e))?;
    f.sync_all().ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::journal::{Entry, encode};
    use crate::core::time::EventTime;

    fn scratch(name: &str) -> (std::path::PathBuf, RunDir) {
        let root = std::env::temp_dir().join(format!("kp-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = RunDir::create(&root).unwrap();
        (root, dir)
    }

    fn journal(records: &[(&'static str, serde_json::Value)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (kind, body)) in records.iter().enumerate() {
            encode(i as u64 + 1, &Entry::new(EventTime::ZERO, kind, body), &mut out);
        }
        out
    }

    #[test]
    fn a_torn_recording_line_is_cut_off() {
        let (root, dir) = scratch("torn-recording");
        std::fs::write(dir.file(files::FEED_RECORDING), b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        cut_torn_recording(&dir).unwrap();
        assert_eq!(std::fs::read(dir.file(files::FEED_RECORDING)).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_whole_recording_and_a_missing_one_are_left_alone() {
        let (root, dir) = scratch("whole-recording");
        cut_torn_recording(&dir).unwrap();
        assert!(!dir.file(files::FEED_RECORDING).exists());
        std::fs::write(dir.file(files::FEED_RECORDING), b"{\"a\":1}\n").unwrap();
        cut_torn_recording(&dir).unwrap();
        assert_eq!(std::fs::read(dir.file(files::FEED_RECORDING)).unwrap(), b"{\"a\":1}\n");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_torn_journal_record_is_cut_off_and_the_run_resumes_after_the_last_whole_one() {
        let (root, dir) = scratch("torn-journal");
        let whole = journal(&[("run_started", json!({ "source": "sim" })), ("equity", json!({}))]);
        let mut bytes = whole.clone();
        bytes.extend_from_slice(b"{\"seq\":3,\"ty");
        std::fs::write(dir.journal(), &bytes).unwrap();
        let start = plan_resume(&dir, true).unwrap();
        assert_eq!(std::fs::read(dir.journal()).unwrap(), whole);
        assert_eq!(start.resume.last_seq, 2);
        assert!(start.resume.lift_halt);
        assert!(start.resume.stops.is_empty());
        assert!(start.replay.is_none() && start.instruments.is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_finished_run_is_refused_with_the_folder_named() {
        let (root, dir) = scratch("finished");
        let bytes = journal(&[
            ("run_started", json!({ "source": "sim" })),
            ("run_ended", json!({ "reason": "duration" })),
        ]);
        std::fs::write(dir.journal(), bytes).unwrap();
        let e = plan_resume(&dir, false).err().unwrap();
        assert!(
            e.to_string().starts_with(&format!("run folder {} cannot be resumed: ", root.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_live_run_gets_its_recording_cut_and_a_replay_run_needs_replay_json() {
        let (root, dir) = scratch("sources");
        std::fs::write(dir.journal(), journal(&[("run_started", json!({ "source": "kraken" }))])).unwrap();
        std::fs::write(dir.file(files::FEED_RECORDING), b"{\"a\":1}\n{\"b\"").unwrap();
        let start = plan_resume(&dir, false).unwrap();
        assert!(start.replay.is_none());
        assert_eq!(std::fs::read(dir.file(files::FEED_RECORDING)).unwrap(), b"{\"a\":1}\n");
        std::fs::write(dir.journal(), journal(&[("run_started", json!({ "source": "replay" }))])).unwrap();
        let e = plan_resume(&dir, false).err().unwrap();
        assert!(matches!(e, ResumeError::Replay(ReplaySourceError::Missing { .. })), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
