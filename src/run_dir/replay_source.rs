//! A replay run's input, kept in its run folder (`replay.json`, and `instruments.json` when
//! `--instruments` was given) so that `run --resume` plays the same file the same way.

use std::path::PathBuf;

use super::{RunDir, RunDirError, files};
use crate::actors::market_feed::ReplayInput;
use crate::core::instrument::Instrument;

/// Problems saving, loading or reading a replay run's input. The texts are the ones the
/// command line prints.
#[derive(Debug, thiserror::Error)]
pub enum ReplaySourceError {
    /// `replay.json` could not be encoded.
    #[error("{0}")]
    Encode(serde_json::Error),
    /// A run-folder file could not be written.
    #[error("{0}")]
    Write(RunDirError),
    /// The run folder holds no readable `replay.json`.
    #[error("a replay run folder must hold {path}: {error}")]
    Missing {
        /// `replay.json`.
        path: String,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// `replay.json` is not a replay input.
    #[error("{path}: {error}")]
    Decode {
        /// `replay.json`.
        path: String,
        /// The JSON error.
        error: serde_json::Error,
    },
    /// `instruments.json` exists but could not be read.
    #[error("{path}: {error}")]
    Instruments {
        /// `instruments.json`.
        path: String,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The recording the replay played is no longer there.
    #[error("the recording this replay run played, {0}, is gone (replay.json `file`)")]
    RecordingGone(String),
    /// The stored instruments do not load.
    #[error("instruments of the replay: {0}")]
    BadInstruments(String),
}

/// A replay run's input: the recording, `--batch-events` and the `--instruments` text.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySource {
    /// The recording (absolute path).
    file: PathBuf,
    /// `--batch-events`.
    batch_events: usize,
    /// The text of the `--instruments` file (stored as `instruments.json`, not in replay.json).
    #[serde(skip)]
    instruments: Option<String>,
}

impl ReplaySource {
    /// The input of a new replay: `file` (absolute), `--batch-events` (at least 1) and the
    /// text of the `--instruments` file, if any.
    pub fn new(file: PathBuf, batch_events: usize, instruments: Option<String>) -> Self {
        ReplaySource { file, batch_events, instruments }
    }

    /// Writes `replay.json`, then `instruments.json` when there are instruments.
    pub fn save(&self, run_dir: &RunDir) -> Result<(), ReplaySourceError> {
        let json = serde_json::to_string_pretty(self).map_err(ReplaySourceError::Encode)?;
        run_dir.write_atomic(files::REPLAY, json.as_bytes()).map_err(ReplaySourceError::Write)?;
        if let Some(text) = &self.instruments {
            run_dir.write_atomic(files::INSTRUMENTS, text.as_bytes()).map_err(ReplaySourceError::Write)?;
        }
        Ok(())
    }

    /// Reads a replay run's input back (`run --resume`); the recording must still exist.
    pub fn load(run_dir: &RunDir) -> Result<ReplaySource, ReplaySourceError> {
        let path = run_dir.file(files::REPLAY);
        let text = std::fs::read_to_string(&path)
            .map_err(|error| ReplaySourceError::Missing { path: path.display().to_string(), error })?;
        let mut s: ReplaySource = serde_json::from_str(&text)
            .map_err(|error| ReplaySourceError::Decode { path: path.display().to_string(), error })?;
        let inst = run_dir.file(files::INSTRUMENTS);
        if inst.exists() {
            s.instruments = Some(std::fs::read_to_string(&inst).map_err(|error| {
                ReplaySourceError::Instruments { path: inst.display().to_string(), error }
            })?);
        }
        if !s.file.exists() {
            return Err(ReplaySourceError::RecordingGone(s.file.display().to_string()));
        }
        Ok(s)
    }

    /// The instruments to preload into the feed's decoder (none without `--instruments`).
    pub fn instruments(&self) -> Result<Vec<Instrument>, ReplaySourceError> {
        match &self.instruments {
            Some(text) => crate::core::kraken::load_instruments(text)
                .map_err(|e| ReplaySourceError::BadInstruments(e.to_string())),
            None => Ok(Vec::new()),
        }
    }

    /// What the feed plays.
    pub fn replay_input(&self) -> ReplayInput {
        ReplayInput { path: self.file.clone(), batch_lines: self.batch_events.max(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> (PathBuf, RunDir) {
        let root = std::env::temp_dir().join(format!("kp-replay-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = RunDir::create(&root).unwrap();
        (root, dir)
    }

    #[test]
    fn saved_input_loads_back_the_same() {
        let (root, dir) = scratch("roundtrip");
        let recording = root.join("feed.jsonl");
        std::fs::write(&recording, b"").unwrap();
        ReplaySource::new(recording.clone(), 4, Some("{}".into())).save(&dir).unwrap();
        let back = ReplaySource::load(&dir).unwrap();
        assert_eq!(back.file, recording);
        assert_eq!(back.batch_events, 4);
        assert_eq!(back.instruments.as_deref(), Some("{}"));
        assert_eq!(back.replay_input().batch_lines, 4);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_gone_recording_is_refused_with_its_name() {
        let (root, dir) = scratch("gone");
        let recording = root.join("gone.jsonl");
        ReplaySource::new(recording.clone(), 1, None).save(&dir).unwrap();
        let e = ReplaySource::load(&dir).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "the recording this replay run played, {}, is gone (replay.json `file`)",
                recording.display()
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_folder_without_replay_json_is_not_a_replay_run() {
        let (root, dir) = scratch("missing");
        let e = ReplaySource::load(&dir).err().unwrap();
        assert!(e.to_string().starts_with("a replay run folder must hold "), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
