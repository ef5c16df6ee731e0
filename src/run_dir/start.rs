//! The files a new session writes into its run folder before anything is journaled: the
//! effective configuration (`config.yaml`, what `run --resume` reloads) and the command line
//! (`command.json`).

use serde_json::json;

use super::{RunDir, RunDirError, files};
use crate::config::Config;

/// Writes `config.yaml` then `command.json` (a resumed run keeps the ones it has).
pub fn write_start_files(
    run_dir: &RunDir,
    config: &Config,
    command_line: &[String],
) -> Result<(), RunDirError> {
    run_dir.write_atomic(files::CONFIG, config.to_yaml().as_bytes())?;
    let cmd = json!({ "argv": command_line });
    run_dir.write_atomic(files::COMMAND, cmd.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_config_and_the_command_line() {
        let root = std::env::temp_dir().join(format!("kp-start-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = RunDir::create(&root).unwrap();
        let argv = vec!["kraken-paper".to_string(), "run".to_string()];
        write_start_files(&dir, &Config::default(), &argv).unwrap();
        let cmd = std::fs::read_to_string(dir.file(files::COMMAND)).unwrap();
        assert_eq!(cmd, r#"{"argv":["kraken-paper","run"]}"#);
        let yaml = std::fs::read_to_string(dir.file(files::CONFIG)).unwrap();
        assert_eq!(yaml, Config::default().to_yaml());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
