//! Reports from the journal (placeholder until the reporting module lands).
use std::path::Path;
/// Writes report.json and report.html from the journal; returns the report.
pub fn write_reports(_run_dir: &Path) -> Result<serde_json::Value, String> {
    todo!()
}
