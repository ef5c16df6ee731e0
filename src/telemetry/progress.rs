//! The progress bar of a run with a known duration: one line on stderr, only when stderr is a
//! terminal (never in logs, pipes or the journal).

use crate::core::time::EventTime;

/// A dependency-free one-line progress indicator: event-time progress over the run's
/// duration, redrawn on stderr at most once per 0.1 % step. Exists only when stderr is a
/// terminal, so it never reaches log files, pipes or the journal.
pub struct Progress {
    duration_micros: i64,
    last_permille: i64,
}

impl Progress {
    /// Some only when stderr is a terminal and the run has a duration.
    pub fn for_terminal(duration_micros: i64) -> Option<Progress> {
        use std::io::IsTerminal;
        (duration_micros > 0 && std::io::stderr().is_terminal())
            .then_some(Progress { duration_micros, last_permille: -1 })
    }

    /// Redraws the line for event time `t` of a run ending at `end`.
    pub fn show(&mut self, t: EventTime, end: EventTime) {
        use std::io::Write;
        let done = (self.duration_micros - end.micros_since(t)).clamp(0, self.duration_micros);
        let permille = (done as i128 * 1000 / self.duration_micros as i128) as i64;
        if permille == self.last_permille {
            return;
        }
        self.last_permille = permille;
        let line = progress_line(done, self.duration_micros, t);
        // Clear the line, draw, and return the cursor to column 0 so a log line printed next
        // overwrites the bar instead of being appended to it.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\x1b[2K{line}\r");
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        use std::io::Write;
        if self.last_permille >= 0 {
            let _ = write!(std::io::stderr(), "\x1b[2K\r");
        }
    }
}

/// `[#########...........]  45.0 %  10h48m / 24h00m  2024-01-01T10:48:00Z` (event time).
fn progress_line(done_micros: i64, total_micros: i64, t: EventTime) -> String {
    const WIDTH: i64 = 30;
    let total = total_micros.max(1);
    let filled = (done_micros as i128 * WIDTH as i128 / total as i128) as usize;
    let hm = |us: i64| {
        let m = us / 60_000_000;
        format!("{}h{:02}m", m / 60, m % 60)
    };
    format!(
        "[{}{}] {:5.1} %  {} / {}  {}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled.min(WIDTH as usize)),
        done_micros as f64 * 100.0 / total as f64,
        hm(done_micros),
        hm(total),
        t.to_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_event_time_fraction_of_the_duration() {
        // 6 h of 24 h done: 30 × 0.25 = 7.5 → 7 marks, 25.0 %.
        let day = 24 * 3_600_000_000i64;
        let line = progress_line(day / 4, day, EventTime::ZERO.plus_micros(day / 4));
        assert!(line.starts_with("[#######......................."), "{line}");
        assert!(line.contains(" 25.0 %  6h00m / 24h00m"), "{line}");
        let full = progress_line(day, day, EventTime::ZERO);
        assert!(full.contains(&"#".repeat(30)) && full.contains("100.0 %"), "{full}");
    }
}
