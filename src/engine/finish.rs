//! The end of a session: waiting for it (duration reached, recording played, or
//! SIGINT/SIGTERM), the stop block (final records, `run_ended`), the journal closed, HTTP
//! stopped, run.json and the reports written. A resume also writes here, again, the stop
//! blocks of the earlier sessions a signal stopped.

use actix::prelude::*;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Engine, EngineError, RunOutcome};
use crate::actors::journal::{Append, Close, IsVerifying, Journal};
use crate::actors::market_feed::{FeedEnded, MarketFeed, ReplayedStop, StopFeed};
use crate::actors::position_book::PositionBook;
use crate::actors::risk_manager::RiskManager;
use crate::core::journal::Entry;
use crate::core::time::EventTime;
use crate::messages::Shutdown;
use crate::run_dir::{RunDir, files};

impl Engine {
    /// Writes the end of the session for `ended` and the reports.
    pub(super) async fn finish(self, ended: FeedEnded) -> Result<RunOutcome, EngineError> {
        let feed_wall = self.feed_started.elapsed();
        let (reason, end_time) = match &ended {
            FeedEnded::DurationReached(t) => ("duration".to_string(), *t),
            FeedEnded::Stopped(t) => ("signal".to_string(), *t),
            FeedEnded::Failed(e) => (format!("failed: {e}"), EventTime::ZERO),
            FeedEnded::Vanished => ("failed: feed channel closed".to_string(), EventTime::ZERO),
        };
        let Engine {
            run_dir, resume, journal, journal_arbiter, feed, stop_block, external_server, http, ..
        } = self;

        if let Some(server) = external_server {
            server.stop();
        }
        // A resume stopped (signal) before its re-execution caught up with the journal has added
        // nothing: the end-of-run records would be checked against, and differ from, the records
        // already there. Leave the journal as it was, resumable again.
        if resume.is_some() && journal.send(IsVerifying).await.unwrap_or(false) {
            tracing::warn!(
                actor = "engine",
                reason = %reason,
                "stopped before the resumed run caught up with its journal; journal unchanged"
            );
            journal.send(Close).await??;
            journal_arbiter.stop();
            if let Some(h) = http {
                h.stop().await;
            }
            let report = crate::report::write_reports(run_dir.path())?;
            return Ok(RunOutcome {
                report,
                run_dir: run_dir.path().to_path_buf(),
                reason: format!("{reason} before catching up with the journal"),
            });
        }
        stop_block.write(end_time, &reason).await?;
        journal.send(Close).await??;
        journal_arbiter.stop();
        if let Some(h) = http {
            h.stop().await;
        }

        write_run_info(&run_dir, &feed, feed_wall).await;
        let report = crate::report::write_reports(run_dir.path())?;
        Ok(RunOutcome { report, run_dir: run_dir.path().to_path_buf(), reason })
    }
}

/// The end of a session: the final records of PositionBook (flattening first when
/// `run.flatten_on_exit`), RiskManager and MarketFeed, then `run_ended`.
#[derive(Clone)]
pub(super) struct StopBlock {
    pub(super) position_book: Addr<PositionBook>,
    pub(super) risk: Addr<RiskManager>,
    pub(super) feed: Addr<MarketFeed>,
    pub(super) journal: Addr<Journal>,
    pub(super) flatten: bool,
}

impl StopBlock {
    async fn write(&self, time: EventTime, reason: &str) -> Result<(), EngineError> {
        let shutdown = Shutdown { time, flatten: self.flatten };
        let _ = self.position_book.send(shutdown.clone()).await;
        let _ = self.risk.send(shutdown.clone()).await;
        let _ = self.feed.send(shutdown).await;
        let snapshot = self.position_book.send(crate::actors::position_book::GetPortfolio).await?;
        self.journal.do_send(Append {
            entries: vec![Entry::new(
                time,
                "run_ended",
                &json!({
                    "reason": reason,
                    "final_equity": snapshot.view.equity,
                    "open_positions": snapshot.open_positions,
                }),
            )],
        });
        Ok(())
    }
}

/// Resume: writes again, when the re-executed feed reaches it, the end-of-run block of each
/// session that a signal stopped (they are checked against the journal like any record).
pub(super) fn spawn_replayed_stops(mut requests: mpsc::UnboundedReceiver<ReplayedStop>, block: StopBlock) {
    actix::spawn(async move {
        while let Some(req) = requests.recv().await {
            if let Err(e) = block.write(req.time, "signal").await {
                tracing::error!(actor = "engine", error = %e, "resume: could not write the stop block again");
            }
            let _ = block.journal.send(crate::actors::journal::Flush).await;
            let _ = req.done.send(());
        }
    });
}

/// Writes run.json: wall-clock facts of this session (feed throughput), kept out of the
/// journal so journals stay byte-identical; the report takes `feed.events_per_sec` from it.
async fn write_run_info(run_dir: &RunDir, feed: &Addr<MarketFeed>, wall: std::time::Duration) {
    let Ok(health) = feed.send(crate::actors::market_feed::GetFeedHealth).await else {
        return;
    };
    let secs = wall.as_secs_f64();
    let c = &health.counters;
    let per_sec = |n: u64| if secs > 0.0 { json!(n as f64 / secs) } else { serde_json::Value::Null };
    let info = json!({
        "feed_wall_seconds": secs,
        "feed_frames": c.frames,
        "feed_events": c.events,
        "feed_passes": health.passes,
        "frames_per_sec": per_sec(c.frames),
        "events_per_sec": per_sec(c.events),
    });
    if let Err(e) = run_dir.write_atomic(files::RUN_INFO, info.to_string().as_bytes()) {
        tracing::warn!(actor = "engine", error = %e, "could not write run.json");
    }
}

/// Waits for the feed to end or for SIGINT/SIGTERM (then stops the feed gracefully).
pub(super) async fn wait_for_end(
    ended: &mut mpsc::UnboundedReceiver<FeedEnded>,
    feed: &Addr<MarketFeed>,
) -> FeedEnded {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    // Both listeners exist before the first signal and are kept for the second: a listener
    // created after a signal does not see it, so a second signal sent right after the first
    // could otherwise be lost.
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(actor = "engine", signal = name, error = %e, "cannot watch the signal");
            None
        }
    };
    let mut int = listen(SignalKind::interrupt(), "SIGINT");
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    async fn next(s: &mut Option<Signal>) {
        match s.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        biased;
        e = ended.recv() => return e.unwrap_or(FeedEnded::Vanished),
        _ = next(&mut int) => tracing::warn!(actor = "engine", signal = "SIGINT", "stopping gracefully (again to exit at once)"),
        _ = next(&mut term) => tracing::warn!(actor = "engine", signal = "SIGTERM", "stopping gracefully (again to exit at once)"),
    }
    // A second signal exits at once.
    actix::spawn(async move {
        tokio::select! {
            _ = next(&mut int) => {},
            _ = next(&mut term) => {},
        }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
    feed.do_send(StopFeed);
    // The feed stops after the batch in flight; a silent live connection gets a deadline.
    match tokio::time::timeout(std::time::Duration::from_secs(15), ended.recv()).await {
        Ok(Some(e)) => e,
        _ => FeedEnded::Stopped(EventTime::ZERO),
    }
}
