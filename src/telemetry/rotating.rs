//! A log file that rotates by period (hourly/daily, wall clock) and by size, keeping a fixed
//! number of old files — `kraken-paper.log` is the live file, `kraken-paper.1.log` the newest
//! rotated one, up to `kraken-paper.N.log`; older ones are deleted.
//!
//! Log rotation is about operating the process, not trading, so it reads the wall clock.
//!
//! Hand-written on purpose: `logroller`, `file-rotate` and `tracing-appender` rotate by one
//! limit only, and `rolling-file` 0.2.0, the crate that combines period and size, computes
//! periods in local time and panics inside its writer during a daylight-saving repeated hour
//! (`hourly()` at 02:30 on 2026-10-25 under `TZ=Europe/Berlin`: "Ambiguous local time",
//! verified 2026-12-07), while this file rotates on UTC periods and cannot panic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::Rotation;

/// The live log file and its rotation rules.
pub struct RotatingFile {
    dir: PathBuf,
    prefix: String,
    period: Rotation,
    max_bytes: u64,
    max_files: usize,
    file: File,
    written: u64,
    period_key: String,
}

/// Which period a moment belongs to (`None`: rotation by period is off).
fn period_key(period: Rotation, at: DateTime<Utc>) -> String {
    match period {
        Rotation::Hourly => at.format("%Y-%m-%d %H").to_string(),
        Rotation::Daily => at.format("%Y-%m-%d").to_string(),
        Rotation::Never => String::new(),
    }
}

#[allow(clippy::disallowed_methods)] // log rotation follows the wall clock (see module docs)
fn wall_now() -> DateTime<Utc> {
    Utc::now()
}

impl RotatingFile {
    /// Opens (appending to) `DIR/PREFIX.log`. `max_bytes == 0` turns rotation by size off;
    /// `max_files` rotated files are kept besides the live one.
    pub fn open(
        dir: &Path,
        prefix: &str,
        period: Rotation,
        max_bytes: u64,
        max_files: usize,
    ) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{prefix}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let meta = file.metadata()?;
        // A file left by an earlier process belongs to the period it was last written in.
        let modified: DateTime<Utc> = meta.modified().map(DateTime::from).unwrap_or_else(|_| wall_now());
        Ok(RotatingFile {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            period,
            max_bytes,
            max_files,
            file,
            written: meta.len(),
            period_key: period_key(period, modified),
        })
    }

    fn live_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.prefix))
    }

    fn rotated_path(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}.{n}.log", self.prefix))
    }

    fn needs_rotation(&self, incoming: usize, now_key: &str) -> bool {
        if self.written == 0 {
            return false;
        }
        let too_big = self.max_bytes > 0 && self.written + incoming as u64 > self.max_bytes;
        too_big || now_key != self.period_key
    }

    /// Shifts `N.log` → `N+1.log` (dropping the oldest), the live file → `1.log`, and opens a
    /// fresh live file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let oldest = self.rotated_path(self.max_files);
        if oldest.exists() {
            fs::remove_file(&oldest)?;
        }
        for n in (1..self.max_files).rev() {
            let from = self.rotated_path(n);
            if from.exists() {
                fs::rename(&from, self.rotated_path(n + 1))?;
            }
        }
        if self.max_files == 0 {
            fs::remove_file(self.live_path())?;
        } else {
            fs::rename(self.live_path(), self.rotated_path(1))?;
        }
        self.file = OpenOptions::new().create(true).append(true).open(self.live_path())?;
        self.written = 0;
        Ok(())
    }

    /// Writes one log record (never split across files).
    fn write_record(&mut self, buf: &[u8], now: DateTime<Utc>) -> io::Result<()> {
        let key = period_key(self.period, now);
        if self.needs_rotation(buf.len(), &key) {
            self.rotate()?;
        }
        self.period_key = key;
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_record(buf, wall_now())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kp-rotating-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tmp("size");
        let mut f = RotatingFile::open(&dir, "kp", Rotation::Never, 25, 2).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for i in 0..7 {
            f.write_record(format!("record {i:02} ......\n").as_bytes(), t).unwrap(); // 17 bytes
        }
        // 17 bytes each, 25 max: one record per file; live = 6, 1 = 5, 2 = 4; 0..3 deleted.
        assert_eq!(names(&dir), vec!["kp.1.log", "kp.2.log", "kp.log"]);
        assert_eq!(fs::read_to_string(dir.join("kp.log")).unwrap(), "record 06 ......\n");
        assert_eq!(fs::read_to_string(dir.join("kp.1.log")).unwrap(), "record 05 ......\n");
        assert_eq!(fs::read_to_string(dir.join("kp.2.log")).unwrap(), "record 04 ......\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_larger_than_the_limit_is_written_whole() {
        let dir = tmp("big");
        let mut f = RotatingFile::open(&dir, "kp", Rotation::Never, 10, 3).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        f.write_record(b"a much longer record than ten bytes\n", t).unwrap();
        f.write_record(b"next\n", t).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("kp.1.log")).unwrap(),
            "a much longer record than ten bytes\n"
        );
        assert_eq!(fs::read_to_string(dir.join("kp.log")).unwrap(), "next\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotates_when_the_day_changes() {
        let dir = tmp("daily");
        let mut f = RotatingFile::open(&dir, "kp", Rotation::Daily, 0, 7).unwrap();
        let day1 = Utc.with_ymd_and_hms(2026, 1, 1, 23, 59, 0).unwrap();
        let day2 = Utc.with_ymd_and_hms(2026, 1, 2, 0, 1, 0).unwrap();
        f.write_record(b"one\n", day1).unwrap();
        f.write_record(b"two\n", day1).unwrap();
        f.write_record(b"three\n", day2).unwrap();
        assert_eq!(fs::read_to_string(dir.join("kp.1.log")).unwrap(), "one\ntwo\n");
        assert_eq!(fs::read_to_string(dir.join("kp.log")).unwrap(), "three\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tmp("reopen");
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        {
            let mut f = RotatingFile::open(&dir, "kp", Rotation::Never, 12, 1).unwrap();
            f.write_record(b"first 1234\n", t).unwrap();
        }
        let mut f = RotatingFile::open(&dir, "kp", Rotation::Never, 12, 1).unwrap();
        f.write_record(b"second\n", t).unwrap();
        assert_eq!(fs::read_to_string(dir.join("kp.1.log")).unwrap(), "first 1234\n");
        assert_eq!(fs::read_to_string(dir.join("kp.log")).unwrap(), "second\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
