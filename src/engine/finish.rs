//! The end of a session: waiting for it (duration reached, recording played, SIGINT/SIGTERM,
//! or an actor's failure), the stop block (final records, `run_ended`), the journal closed,
//! HTTP stopped, run.json and the reports written. A resume also writes here, again, the stop
//! blocks of the earlier sessions a signal stopped, and passes over the end records of those
//! an actor's failure ended.
//!
//! The failures (`supervision::Policy`): an actor holding trading state ends the run at the
//! last pass boundary (`actor_failed`, exit 3); the journal's own failure ends it without
//! another record (`journal_write_failed`, exit 4). Both can be resumed.

use actix::prelude::*;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Engine, EngineError, RunOutcome, RunStatus};
use crate::actors::journal::{Append, Close, IsVerifying, Journal, JournalError, Rollback, SkipVerified};
use crate::actors::market_feed::{FeedEnded, FeedError, MarketFeed, ReplayedStop, StopFeed};
use crate::actors::position_book::PositionBook;
use crate::actors::risk_manager::RiskManager;
use crate::core::journal::Entry;
use crate::core::resume::{END_ACTOR_FAILED, SessionEnd, SessionStop};
use crate::core::time::EventTime;
use crate::messages::{Barrier, Shutdown, WatchRequest};
use crate::pipeline::PipelineError;
use crate::run_dir::{RunDir, files};
use crate::supervision::{ActorFailure, Policy};

/// How the wait for the end of a session ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The feed ended: duration reached, recording played, a signal, or a failed pass.
    Feed(FeedEnded),
    /// An actor failed and was not restarted.
    ActorFailed(ActorFailure),
}

impl Engine {
    /// Writes the end of the session for `ended` and the reports.
    pub(super) async fn finish(self, ended: Ended) -> Result<RunOutcome, EngineError> {
        match ended {
            Ended::ActorFailed(f) if f.actor.policy() == Policy::StopUnjournaled => {
                let path = self.run_dir.journal();
                self.journal_failed(JournalError::Panicked { path, error: f.reason }).await
            }
            Ended::ActorFailed(f) => self.actor_failed(f).await,
            Ended::Feed(FeedEnded::Failed(FeedError::Pipeline(PipelineError::Journal(e))))
                if e.write_failure().is_some() =>
            {
                self.journal_failed(e).await
            }
            Ended::Feed(ended) => self.feed_ended(ended).await,
        }
    }

    /// The feed ended: the stop block, the journal closed, the reports.
    async fn feed_ended(self, ended: FeedEnded) -> Result<RunOutcome, EngineError> {
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
                status: RunStatus::Ended,
            });
        }
        stop_block.write(end_time, &reason).await?;
        let closed = journal.send(Close).await?;
        journal_arbiter.stop();
        if let Some(h) = http {
            h.stop().await;
        }
        if let Err(e) = closed {
            return match e.write_failure() {
                Some(_) => Ok(journal_failure_outcome(&run_dir, &e)),
                None => Err(e.into()),
            };
        }

        write_run_info(&run_dir, &feed, feed_wall).await;
        let report = crate::report::write_reports(run_dir.path())?;
        Ok(RunOutcome { report, run_dir: run_dir.path().to_path_buf(), reason, status: RunStatus::Ended })
    }

    /// An actor holding trading state failed (`Policy::StopRun`): trading halts (the feed
    /// stops), the records of the pass in flight are dropped, `actor_failed` and `run_ended`
    /// (reason `actor_failed`) are journaled at the last pass boundary without asking the
    /// actors for anything (so `run --resume` can pass over them), the reports are written.
    async fn actor_failed(mut self, failure: ActorFailure) -> Result<RunOutcome, EngineError> {
        tracing::error!(
            event = "actor_failed",
            actor = failure.actor.as_str(),
            reason = %failure.reason,
            "an actor holding trading state failed: trading halted, the run ends (resumable with run --resume)"
        );
        let feed_wall = self.feed_started.elapsed();
        // Halt: the feed stops after the batch in flight (a pass through the failed actor has
        // already failed); then whatever the live actors still have in their mailboxes is
        // handled, so every record of the failed pass reaches the journal before the rollback.
        self.feed.do_send(StopFeed);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), self.ended.recv()).await;
        self.stop_block.settle().await;
        let Engine { run_dir, resume, journal, journal_arbiter, feed, external_server, http, .. } = self;
        if let Some(server) = external_server {
            server.stop();
        }
        let reason = format!("{END_ACTOR_FAILED}: {}: {}", failure.actor, failure.reason);
        let verifying = resume.is_some() && journal.send(IsVerifying).await.unwrap_or(false);
        let written = match verifying {
            // A resume still re-checking has added nothing: the journal stays as it was.
            true => Ok(()),
            false => end_failed_session(&journal, &feed, &failure).await,
        };
        let closed = journal.send(Close).await;
        journal_arbiter.stop();
        if let Some(h) = http {
            h.stop().await;
        }
        match written.and(closed.unwrap_or(Err(JournalError::Closed)).map(|_| ())) {
            Err(e) if e.write_failure().is_some() => return Ok(journal_failure_outcome(&run_dir, &e)),
            Err(e) if !verifying => return Err(e.into()),
            _ => {}
        }
        if !verifying {
            write_run_info(&run_dir, &feed, feed_wall).await;
        }
        let report = crate::report::write_reports(run_dir.path())?;
        Ok(RunOutcome {
            report,
            run_dir: run_dir.path().to_path_buf(),
            reason,
            status: RunStatus::ActorFailed,
        })
    }

    /// The journal cannot write (`Policy::StopUnjournaled`): nothing more is acknowledged or
    /// appended; the feed stops; the reports are made from what the file holds, if they can.
    async fn journal_failed(self, e: JournalError) -> Result<RunOutcome, EngineError> {
        let Engine { run_dir, journal, journal_arbiter, feed, external_server, http, .. } = self;
        feed.do_send(StopFeed);
        if let Some(server) = external_server {
            server.stop();
        }
        let _ = journal.send(Close).await;
        journal_arbiter.stop();
        if let Some(h) = http {
            h.stop().await;
        }
        Ok(journal_failure_outcome(&run_dir, &e))
    }
}

/// The end of a session an actor's failure ended: back to the last pass boundary, then
/// `actor_failed` (`actor`, `reason`, `frames`: the feed's frames passed, where a resume
/// passes over these records) and `run_ended` (reason `actor_failed`).
async fn end_failed_session(
    journal: &Addr<Journal>,
    feed: &Addr<MarketFeed>,
    failure: &ActorFailure,
) -> Result<(), JournalError> {
    let pos = journal.send(Rollback).await.unwrap_or(Err(JournalError::Closed))?;
    let frames = match feed.send(crate::actors::market_feed::GetFeedHealth).await {
        Ok(h) => h.counters.frames,
        Err(_) => 0,
    };
    let time = pos.last_event_time;
    journal.do_send(Append {
        entries: vec![
            Entry::new(
                time,
                "actor_failed",
                &json!({ "actor": failure.actor.as_str(), "reason": failure.reason, "frames": frames }),
            ),
            Entry::new(
                time,
                "run_ended",
                &json!({ "reason": END_ACTOR_FAILED, "actor": failure.actor.as_str() }),
            ),
        ],
    });
    Ok(())
}

/// Logs `journal_write_failed` (`path`, `error`) and makes the outcome (exit 4); the reports
/// are written from the journal's complete records when possible.
fn journal_failure_outcome(run_dir: &RunDir, e: &JournalError) -> RunOutcome {
    let (path, error) = e.write_failure().unwrap_or((run_dir.path(), "journal failed"));
    tracing::error!(
        event = "journal_write_failed",
        actor = "journal",
        path = %path.display(),
        error = %error,
        "the journal cannot write: nothing more is acknowledged, the run ends (run --resume once the disk is writable)"
    );
    let report = match crate::report::write_reports(run_dir.path()) {
        Ok(r) => r,
        Err(re) => {
            tracing::warn!(actor = "engine", error = %re, "no report: the journal cannot be read back");
            serde_json::Value::Null
        }
    };
    RunOutcome {
        report,
        run_dir: run_dir.path().to_path_buf(),
        reason: format!("journal_write_failed: {e}"),
        status: RunStatus::JournalFailed,
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
    /// Lets the live trading actors handle what is still in their mailboxes (in the order the
    /// pipeline reaches them); a failed actor answers nothing and is skipped.
    async fn settle(&self) {
        let _ = self.position_book.send(Barrier).await;
        let _ = self.risk.send(WatchRequest).await;
        let _ = self.position_book.send(Barrier).await;
    }

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

/// Resume: when the re-executed feed reaches where an earlier session stopped (`stops`, in
/// order), writes again the end-of-run block of a session a signal stopped (checked against
/// the journal like any record), or passes over the end records of one an actor's failure
/// ended.
pub(super) fn spawn_replayed_stops(
    mut requests: mpsc::UnboundedReceiver<ReplayedStop>,
    block: StopBlock,
    stops: Vec<SessionStop>,
) {
    let mut stops = std::collections::VecDeque::from(stops);
    actix::spawn(async move {
        while let Some(req) = requests.recv().await {
            match stops.pop_front().map(|s| s.end) {
                Some(SessionEnd::ActorFailed { records }) => {
                    let _ = block.journal.send(SkipVerified { records }).await;
                }
                Some(SessionEnd::Signal) | None => {
                    if let Err(e) = block.write(req.time, "signal").await {
                        tracing::error!(actor = "engine", error = %e, "resume: could not write the stop block again");
                    }
                    let _ = block.journal.send(crate::actors::journal::Flush).await;
                }
            }
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

/// Waits for the feed to end, an actor to fail, or SIGINT/SIGTERM (then stops the feed
/// gracefully).
pub(super) async fn wait_for_end(
    ended: &mut mpsc::UnboundedReceiver<FeedEnded>,
    failures: &mut mpsc::UnboundedReceiver<ActorFailure>,
    feed: &Addr<MarketFeed>,
) -> Ended {
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
        Some(f) = failures.recv() => return Ended::ActorFailed(f),
        e = ended.recv() => {
            // A pass fails because an actor died: the failure, reported as it died, says why.
            return match failures.try_recv() {
                Ok(f) => Ended::ActorFailed(f),
                Err(_) => Ended::Feed(e.unwrap_or(FeedEnded::Vanished)),
            };
        }
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
    let end = async {
        tokio::select! {
            biased;
            Some(f) = failures.recv() => Ended::ActorFailed(f),
            e = ended.recv() => Ended::Feed(e.unwrap_or(FeedEnded::Stopped(EventTime::ZERO))),
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(15), end).await {
        Ok(e) => e,
        Err(_) => Ended::Feed(FeedEnded::Stopped(EventTime::ZERO)),
    }
}
