//! The HTTP server (actix-web): dashboard page, health, Prometheus metrics, JSON API and the
//! token-protected control endpoints. Bound to 127.0.0.1 unless configured otherwise.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the live dashboard (self-contained HTML, no CDN) |
//! | `GET /health` | 200 + feed status per pair and actor restarts |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /api/dashboard` | portfolio value and return, positions, win rate, Sharpe, drawdown, exposure, equity curve |
//! | `GET /api/positions` | open positions |
//! | `GET /api/trades` | recent closed trades |
//! | `POST /api/emergency-stop` | halt trading (Bearer token) |
//! | `POST /api/resume` | lift the halt (Bearer token) |
//!
//! The token comes from the environment variable named by `http.token_env`; with no token
//! configured the control endpoints always answer 401.

use std::net::SocketAddr;

use actix::Addr;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::actors::market_feed::{FeedHealth, GetFeedHealth, MarketFeed};
use crate::actors::position_book::{GetPortfolio, PortfolioSnapshot, PositionBook};
use crate::actors::risk_manager::{GetRiskMetrics, RiskManager};
use crate::messages::OperatorCommand;

const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// What the handlers ask.
#[derive(Clone)]
pub struct ApiState {
    /// PositionBook (portfolio, trades, equity curve).
    pub position_book: Addr<PositionBook>,
    /// RiskManager (risk metrics, operator commands).
    pub risk: Addr<RiskManager>,
    /// MarketFeed (health).
    pub feed: Addr<MarketFeed>,
    /// Bearer token for control endpoints (None: they always answer 401).
    pub token: Option<String>,
    /// Pairs traded.
    pub pairs: Vec<String>,
    /// Account currency.
    pub currency: String,
    /// Annual risk-free rate of the dashboard's Sharpe (`report.risk_free_rate`).
    pub risk_free_rate: f64,
}

/// A running server; `stop` ends it.
pub struct HttpHandle {
    handle: actix_web::dev::ServerHandle,
    /// The bound address.
    pub addr: SocketAddr,
}

impl HttpHandle {
    /// Stops the server gracefully.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Starts the server on `addr`; a port that is taken is a warning, not a failure.
pub fn start(addr: SocketAddr, state: ApiState) -> Option<HttpHandle> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/", web::get().to(dashboard))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
            .route("/api/dashboard", web::get().to(api_dashboard))
            .route("/api/positions", web::get().to(api_positions))
            .route("/api/trades", web::get().to(api_trades))
            .route("/api/emergency-stop", web::post().to(api_emergency_stop))
            .route("/api/resume", web::post().to(api_resume))
    })
    .workers(1)
    .disable_signals();
    let server = match server.bind(addr) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(actor = "http", addr = %addr, error = %e, "cannot bind the HTTP server; continuing without it");
            return None;
        }
    };
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let running = server.run();
    let handle = running.handle();
    actix::spawn(async move {
        if let Err(e) = running.await {
            tracing::warn!(actor = "http", error = %e, "HTTP server stopped");
        }
    });
    tracing::info!(actor = "http", addr = %bound, "dashboard at http://{bound}/");
    Some(HttpHandle { handle, addr: bound })
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DASHBOARD_HTML)
}

struct Gathered {
    p: PortfolioSnapshot,
    risk: Value,
    feed: FeedHealth,
}

async fn gather(st: &ApiState) -> Result<Gathered, HttpResponse> {
    let unavailable = |what: &str| {
        HttpResponse::ServiceUnavailable().json(json!({ "error": format!("{what} is not running") }))
    };
    let p = st.position_book.send(GetPortfolio).await.map_err(|_| unavailable("position_book"))?;
    let risk = st.risk.send(GetRiskMetrics).await.map_err(|_| unavailable("risk_manager"))?;
    let feed = st.feed.send(GetFeedHealth).await.unwrap_or_default();
    Ok(Gathered { p, risk, feed })
}

fn positions_json(p: &PortfolioSnapshot) -> Value {
    Value::Array(
        p.view
            .positions
            .iter()
            .map(|x| {
                json!({
                    "pair": x.pair, "side": if x.qty < Decimal::ZERO { "short" } else { "long" },
                    "qty": x.qty, "avg_price": x.avg_price, "mark": x.mark,
                    "notional": x.notional, "unrealized_pnl": x.unrealized,
                })
            })
            .collect(),
    )
}

async fn api_dashboard(st: web::Data<ApiState>) -> HttpResponse {
    let g = match gather(&st).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let p = &g.p;
    let equity = p.view.equity;
    let ret = if p.starting_equity > Decimal::ZERO {
        crate::core::money::to_f64((equity - p.starting_equity) / p.starting_equity) * 100.0
    } else {
        0.0
    };
    let win_rate = (p.trades_closed > 0).then(|| p.trades_won as f64 / p.trades_closed as f64);
    let dd = if p.peak_equity > Decimal::ZERO {
        crate::core::money::to_f64((p.peak_equity - equity) / p.peak_equity)
    } else {
        0.0
    };
    // A snapshot taken before the first market event (event time zero, 1970) is left out of
    // the curve (it would stretch the chart to 55 years).
    let untimed = p.equity_curve.iter().take_while(|(t, _)| *t == crate::core::time::EventTime::ZERO).count();
    let timed = &p.equity_curve[untimed..];
    let curve: Vec<Value> = timed.iter().map(|(t, e)| json!([t.to_rfc3339(), e])).collect();
    HttpResponse::Ok().json(json!({
        "currency": st.currency,
        "portfolio_value": equity,
        "starting_equity": p.starting_equity,
        "return_pct": ret,
        "positions": positions_json(p),
        "open_positions": p.open_positions,
        "trades": p.trades_closed,
        "win_rate": win_rate,
        // report.json's Sharpe (one function) on the curve so far, sampled as the report does.
        "sharpe": crate::report::stats::sampled_sharpe(&p.returns, st.risk_free_rate),
        "drawdown": dd,
        // Total exposure as a fraction of equity (the risk manager's `total_exposure`).
        "exposure": g.risk.get("total_exposure").cloned().unwrap_or(Value::Null),
        "correlation_exposure": g.risk.get("correlation_exposure").cloned().unwrap_or(Value::Null),
        "risk": g.risk,
        "execution": p.stats,
        // Used / free margin and margin level (absent while shorts are off).
        "margin": p.view.margin,
        "feed": g.feed,
        "equity_curve": curve,
        "recent_trades": p.recent_trades.iter().rev().take(50).collect::<Vec<_>>(),
        "time": p.view.time,
    }))
}

async fn api_positions(st: web::Data<ApiState>) -> HttpResponse {
    match st.position_book.send(GetPortfolio).await {
        Ok(p) => HttpResponse::Ok()
            .json(json!({ "positions": positions_json(&p), "open_positions": p.open_positions })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "error": "position_book is not running" })),
    }
}

async fn api_trades(st: web::Data<ApiState>) -> HttpResponse {
    match st.position_book.send(GetPortfolio).await {
        Ok(p) => HttpResponse::Ok().json(json!({ "trades": p.recent_trades, "total": p.trades_closed })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "error": "position_book is not running" })),
    }
}

async fn health(st: web::Data<ApiState>) -> HttpResponse {
    let feed = st.feed.send(GetFeedHealth).await.unwrap_or_default();
    let pairs: serde_json::Map<String, Value> = st
        .pairs
        .iter()
        .map(|p| {
            let trusted = feed.connected && !feed.untrusted_pairs.contains(p);
            (p.clone(), json!({ "book": if trusted { "ok" } else { "untrusted" } }))
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "status": if feed.connected { "ok" } else { "degraded" },
        "feed": { "connected": feed.connected, "pairs": pairs, "last_event_time": feed.last_event_time,
                  "reconnects": feed.reconnects, "resyncs": feed.counters.resyncs },
        "actor_restarts": { "market_feed": feed.restarts },
    }))
}

async fn metrics(st: web::Data<ApiState>) -> HttpResponse {
    let g = match gather(&st).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    match metrics_text(&g) {
        Ok(text) => HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(text),
        Err(e) => {
            tracing::warn!(actor = "http", error = %e, "cannot encode /metrics");
            HttpResponse::InternalServerError()
                .json(json!({ "error": format!("cannot encode metrics: {e}") }))
        }
    }
}

/// One `/metrics` sample: name, help text, and its value as a gauge or a counter.
enum Sample {
    Gauge(&'static str, &'static str, f64),
    Counter(&'static str, &'static str, f64),
}

/// The Prometheus exposition of one snapshot, encoded by the `prometheus` crate. The values are
/// snapshots the actors already hold (totals included), so each scrape fills a fresh
/// [`prometheus::Registry`]; Decimal money becomes f64 only here, at the exposition boundary.
fn metrics_text(g: &Gathered) -> Result<String, prometheus::Error> {
    use Sample::{Counter, Gauge};
    let f = crate::core::money::to_f64;
    let p = &g.p;
    let open_orders: usize = p.view.open_orders.iter().map(|(_, n)| *n).sum();
    let lag = (p.view.time.micros_since(g.feed.last_event_time) as f64 / 1e6).abs();
    let dd = g.risk.get("current_drawdown").and_then(Value::as_f64).unwrap_or(0.0);
    let samples = [
        Gauge("kraken_paper_equity", "Account equity in the account currency.", f(p.view.equity)),
        Gauge("kraken_paper_pnl", "Equity minus starting equity.", f(p.view.equity - p.starting_equity)),
        Gauge("kraken_paper_open_positions", "Open positions.", p.open_positions as f64),
        Gauge("kraken_paper_open_orders", "Open orders.", open_orders as f64),
        Counter("kraken_paper_fills_total", "Fills.", p.stats.fills as f64),
        Counter("kraken_paper_fees_paid_total", "Fees paid.", f(p.stats.fees_paid)),
        Counter("kraken_paper_trades_total", "Closed round trips.", p.trades_closed as f64),
        Counter("kraken_paper_book_resyncs_total", "Book resyncs.", g.feed.counters.resyncs as f64),
        Counter("kraken_paper_feed_reconnects_total", "Feed reconnects.", g.feed.reconnects as f64),
        Counter("kraken_paper_actor_restarts_total", "Supervised actor restarts.", g.feed.restarts as f64),
        Counter("kraken_paper_feed_events_total", "Market events decoded.", g.feed.counters.events as f64),
        Gauge(
            "kraken_paper_feed_connected",
            "1 when the feed is connected.",
            if g.feed.connected { 1.0 } else { 0.0 },
        ),
        Gauge("kraken_paper_feed_lag_seconds", "Event-time lag of the portfolio behind the feed.", lag),
        Gauge("kraken_paper_drawdown", "Current drawdown from the equity peak (fraction).", dd),
    ];
    encode(&samples)
}

fn encode(samples: &[Sample]) -> Result<String, prometheus::Error> {
    let registry = prometheus::Registry::new();
    for s in samples {
        match *s {
            Sample::Gauge(name, help, v) => {
                let m = prometheus::Gauge::new(name, help)?;
                m.set(v);
                registry.register(Box::new(m))?;
            }
            Sample::Counter(name, help, v) => {
                let m = prometheus::Counter::new(name, help)?;
                // A fresh counter plus the running total is that total. Totals are never negative
                // (fee rebates are applied as 0); the clamp keeps the crate's debug assertion quiet.
                m.inc_by(v.max(0.0));
                registry.register(Box::new(m))?;
            }
        }
    }
    prometheus::TextEncoder::new().encode_to_string(&registry.gather())
}

fn authorized(st: &ApiState, req: &HttpRequest) -> bool {
    let Some(token) = st.token.as_deref().filter(|t| !t.is_empty()) else {
        return false;
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is a secret.
    given.is_some_and(|g| crate::core::token::token_matches(g, token))
}

async fn control(st: web::Data<ApiState>, req: HttpRequest, cmd: OperatorCommand) -> HttpResponse {
    if !authorized(&st, &req) {
        return HttpResponse::Unauthorized().json(json!({ "error": "missing or wrong bearer token" }));
    }
    match st.risk.send(cmd).await {
        Ok(Ok(outcome)) => HttpResponse::Ok().json(json!({ "ok": true, "result": outcome.to_string() })),
        Ok(Err(e)) => HttpResponse::Conflict().json(json!({ "ok": false, "error": e.to_string() })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "error": "risk_manager is not running" })),
    }
}

async fn api_emergency_stop(st: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    control(st, req, OperatorCommand::EmergencyStop).await
}

async fn api_resume(st: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    control(st, req, OperatorCommand::Resume).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_types_help_and_values() {
        let text = encode(&[
            Sample::Gauge("kraken_paper_equity", "Account equity in the account currency.", 10000.5),
            Sample::Counter("kraken_paper_fills_total", "Fills.", 3.0),
        ])
        .unwrap();
        assert!(text.contains("# HELP kraken_paper_equity Account equity in the account currency.\n"));
        assert!(text.contains("# TYPE kraken_paper_equity gauge\nkraken_paper_equity 10000.5\n"));
        assert!(text.contains("# TYPE kraken_paper_fills_total counter\nkraken_paper_fills_total 3\n"));
    }

    #[test]
    fn a_duplicate_name_is_an_error_not_a_panic() {
        let dup = [Sample::Gauge("kraken_paper_x", "x", 1.0), Sample::Gauge("kraken_paper_x", "x", 2.0)];
        assert!(encode(&dup).is_err());
    }
}
