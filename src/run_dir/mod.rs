//! The run folder: where a session keeps its journal, effective config, command line, report
//! and logs. A folder that already holds a journal is refused unless the run resumes it.
//!
//! Everything a session reads from or writes to its folder outside the journal actor lives
//! here: the files written at start ([`write_start_files`]), a replay's input
//! ([`ReplaySource`]) and the planning of `run --resume` ([`plan_resume`]), so that library
//! tests can reach them.

use std::path::{Path, PathBuf};

mod replay_source;
mod resume;
mod start;

pub use replay_source::{ReplaySource, ReplaySourceError};
pub use resume::{Resume, ResumeError, ResumeStart, cut_torn_journal, cut_torn_recording, plan_resume};
pub use start::write_start_files;

/// File names inside a run folder.
pub mod files {
    /// The append-only event log.
    pub const JOURNAL: &str = "journal.jsonl";
    /// The effective configuration of the run (YAML).
    pub const CONFIG: &str = "config.yaml";
    /// The command line that started the run (JSON).
    pub const COMMAND: &str = "command.json";
    /// The final report (JSON).
    pub const REPORT: &str = "report.json";
    /// The final report (self-contained HTML).
    pub const REPORT_HTML: &str = "report.html";
    /// Wall-clock facts about the run (not part of the deterministic journal).
    pub const RUN_INFO: &str = "run.json";
    /// A replay run's input: the recording and `--batch-events` (JSON; `run --resume` reads it).
    pub const REPLAY: &str = "replay.json";
    /// A replay run's `--instruments` file, copied.
    pub const INSTRUMENTS: &str = "instruments.json";
    /// A live run's recording of its feed (the `record` format): `run --resume` re-executes it.
    pub const FEED_RECORDING: &str = "feed.jsonl";
}

/// Problems with a run folder.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The folder already holds a journal and this is not a resume.
    #[error(
        "run folder {0} already holds a journal; use `run --resume {0}` to continue it, or choose another --run-dir"
    )]
    HasJournal(String),
    /// The folder to resume has no journal.
    #[error("run folder {0} has no journal.jsonl to resume")]
    NoJournal(String),
    /// File system error.
    #[error("run folder {path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (or accepts an empty) folder for a new run.
    pub fn create(path: &Path) -> Result<RunDir, RunDirError> {
        let dir = RunDir { root: path.to_path_buf() };
        if dir.journal().exists() {
            return Err(RunDirError::HasJournal(path.display().to_string()));
        }
        std::fs::create_dir_all(path)
            .map_err(|source| RunDirError::Io { path: path.display().to_string(), source })?;
        Ok(dir)
    }

    /// Opens an existing run folder to resume or read it.
    pub fn open(path: &Path) -> Result<RunDir, RunDirError> {
        let dir = RunDir { root: path.to_path_buf() };
        if !dir.journal().exists() {
            return Err(RunDirError::NoJournal(path.display().to_string()));
        }
        Ok(dir)
    }

    /// A new folder name under `runs/` from a label (the caller provides the timestamp label).
    pub fn default_path(label: &str) -> PathBuf {
        PathBuf::from("runs").join(label)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `journal.jsonl`.
    pub fn journal(&self) -> PathBuf {
        self.root.join(files::JOURNAL)
    }
    /// Any file in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a file atomically (temp file + rename), so a crash never leaves half a report.
    pub fn write_atomic(&self, name: &str, contents: &[u8]) -> Result<(), RunDirError> {
        let target = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let io = |source| RunDirError::Io { path: target.display().to_string(), source };
        std::fs::write(&tmp, contents).map_err(io)?;
        std::fs::rename(&tmp, &target).map_err(io)
    }
}
