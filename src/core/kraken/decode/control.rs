//! Control messages: v2 `method` responses (subscribe/unsubscribe acks, pong) and the
//! requests we send — remembered by `req_id` so a failed ack can name its channel and pair —
//! plus the builders of those requests ([`subscribe_requests`], [`resubscribe_book`]).

use serde_json::Value;

use super::{FeedDecoder, FeedNotice, KRAKEN_DEFAULT_DEPTH, Skip, malformed};
use crate::core::kraken::symbols::v2_symbol;
use crate::core::time::EventTime;

/// How many sent requests are remembered to name failed acks (oldest forgotten first).
const MAX_REMEMBERED_REQUESTS: usize = 1024;

/// A request we sent, remembered by `req_id` to name the pair of a failed ack.
#[derive(Clone, Debug)]
pub(super) struct SentRequest {
    method: String,
    channel: String,
    symbols: Vec<String>,
}

impl FeedDecoder {
    pub(super) fn decode_response(
        &mut self,
        frame: &str,
        method: &str,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let v: Value = serde_json::from_str(frame).map_err(|e| malformed(format!("response: {e}")))?;
        let req_id = v.get("req_id").and_then(Value::as_u64);
        // time_out is the exchange's clock: it may seed or advance event time.
        if let Some(t) =
            v.get("time_out").and_then(Value::as_str).and_then(|t| EventTime::parse_rfc3339(t).ok())
        {
            self.advance(t);
        }
        let success = v.get("success").and_then(Value::as_bool);
        match method {
            "pong" => {
                notices.push(FeedNotice::Pong { req_id });
                Ok(())
            }
            "subscribe" | "unsubscribe" if success == Some(true) => {
                let result = v.get("result");
                let field = |k: &str| result.and_then(|r| r.get(k));
                let channel = field("channel").and_then(Value::as_str).unwrap_or("").to_string();
                let symbol = field("symbol").and_then(Value::as_str).map(str::to_string);
                if channel == "book"
                    && let Some(sym) = &symbol
                {
                    let sym = self.intern(sym);
                    if method == "subscribe" {
                        let depth = field("depth").and_then(Value::as_u64);
                        let depth = depth.and_then(|d| u16::try_from(d).ok()).unwrap_or(KRAKEN_DEFAULT_DEPTH);
                        self.depths.insert(sym, depth);
                    } else if let Some(pb) = self.books.get_mut(&sym) {
                        // Updates still in flight after an unsubscribe must not be applied.
                        pb.book.clear();
                        pb.live = false;
                    }
                }
                if method == "subscribe" {
                    notices.push(FeedNotice::Subscribed { channel, symbol });
                }
                Ok(())
            }
            "subscribe" | "unsubscribe" => {
                let error = v.get("error").and_then(Value::as_str).unwrap_or("no error text").to_string();
                self.subscribe_failed(&v, req_id, error, notices);
                Ok(())
            }
            other => {
                let err = v.get("error").and_then(Value::as_str);
                Err(Skip::Unknown(match err {
                    Some(e) => format!("method {other} failed: {e}"),
                    None => format!("method {other}"),
                }))
            }
        }
    }

    /// A failed ack: one notice per pair (the ack's `symbol`, else the pairs of the request
    /// with that `req_id`; Kraken answers a failed unsubscribe with `method: subscribe`).
    fn subscribe_failed(&self, v: &Value, req_id: Option<u64>, error: String, notices: &mut Vec<FeedNotice>) {
        let sent = req_id.and_then(|id| self.requests.get(&id));
        let error = match sent {
            Some(r) if r.method == "unsubscribe" => format!("unsubscribe: {error}"),
            _ => error,
        };
        let channel = v
            .get("result")
            .and_then(|r| r.get("channel"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| sent.map(|r| r.channel.clone()))
            .unwrap_or_else(|| "unknown".into());
        let symbol = v.get("symbol").and_then(Value::as_str).map(str::to_string);
        let symbols: Vec<Option<String>> = match (symbol, sent) {
            (Some(s), _) => vec![Some(s)],
            (None, Some(r)) if !r.symbols.is_empty() => r.symbols.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for symbol in symbols {
            notices.push(FeedNotice::SubscribeFailed {
                channel: channel.clone(),
                symbol,
                error: error.clone(),
            });
        }
    }

    pub(super) fn note_sent_value(&mut self, v: &Value) {
        let strs = |a: Option<&Value>| -> Vec<String> {
            a.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let depth_of = |d: Option<&Value>| {
            d.and_then(Value::as_u64).and_then(|d| u16::try_from(d).ok()).unwrap_or(KRAKEN_DEFAULT_DEPTH)
        };
        if let Some(method) = v.get("method").and_then(Value::as_str) {
            // v2: {"method":"subscribe","params":{"channel":"book","symbol":[…],"depth":10},"req_id":4}
            let params = v.get("params");
            let channel =
                params.and_then(|p| p.get("channel")).and_then(Value::as_str).unwrap_or("").to_string();
            let symbols = strs(params.and_then(|p| p.get("symbol")));
            if method == "subscribe" && channel == "book" {
                let depth = depth_of(params.and_then(|p| p.get("depth")));
                for s in &symbols {
                    let sym = self.intern(s);
                    self.depths.insert(sym, depth);
                }
            }
            if let Some(id) = v.get("req_id").and_then(Value::as_u64) {
                self.remember(id, SentRequest { method: method.to_string(), channel, symbols });
            }
        } else if let Some(event) = v.get("event").and_then(Value::as_str) {
            // v1: {"event":"subscribe","pair":[…],"subscription":{"name":"book","depth":1000}}
            let sub = v.get("subscription");
            let name = sub.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
            let symbols: Vec<String> = strs(v.get("pair")).iter().map(|p| v2_symbol(p)).collect();
            if event == "subscribe" && name == "book" {
                let depth = depth_of(sub.and_then(|s| s.get("depth")));
                for s in &symbols {
                    let sym = self.intern(s);
                    self.depths.insert(sym, depth);
                }
            }
            if let Some(id) = v.get("reqid").and_then(Value::as_u64) {
                self.remember(id, SentRequest { method: event.to_string(), channel: name, symbols });
            }
        }
    }

    fn remember(&mut self, id: u64, r: SentRequest) {
        self.requests.insert(id, r);
        while self.requests.len() > MAX_REMEMBERED_REQUESTS {
            self.requests.pop_first();
        }
    }
}

/// Subscription requests for `pairs`, in this order: instrument, ticker, trade, book (book
/// last: the simulator starts its clock on the book subscription).
pub fn subscribe_requests(pairs: &[String], depth: u16) -> Vec<String> {
    let mut out = vec![r#"{"method":"subscribe","params":{"channel":"instrument"},"req_id":1}"#.to_string()];
    if pairs.is_empty() {
        return out;
    }
    let symbols = symbols_json(pairs);
    out.push(format!(
        r#"{{"method":"subscribe","params":{{"channel":"ticker","symbol":{symbols}}},"req_id":2}}"#
    ));
    // The trade snapshot (last 50 trades) is history, not market flow: ask for none.
    out.push(format!(
        r#"{{"method":"subscribe","params":{{"channel":"trade","symbol":{symbols},"snapshot":false}},"req_id":3}}"#
    ));
    out.push(book_request("subscribe", &symbols, depth, 4));
    out
}

/// Requests that rebuild one pair's book: unsubscribe then subscribe `book` (a fresh snapshot).
///
/// The unsubscribe carries `req_id`, the subscribe `req_id + 1`: Kraken answers a failed
/// unsubscribe with `"method":"subscribe"`, so only distinct ids tell the two apart.
pub fn resubscribe_book(pair: &str, depth: u16, req_id: u64) -> Vec<String> {
    let symbols = symbols_json(std::slice::from_ref(&pair));
    vec![
        book_request("unsubscribe", &symbols, depth, req_id),
        book_request("subscribe", &symbols, depth, req_id.saturating_add(1)),
    ]
}

fn book_request(method: &str, symbols: &str, depth: u16, req_id: u64) -> String {
    format!(
        r#"{{"method":"{method}","params":{{"channel":"book","symbol":{symbols},"depth":{depth}}},"req_id":{req_id}}}"#
    )
}

fn symbols_json<S: AsRef<str>>(pairs: &[S]) -> String {
    let list: Vec<&str> = pairs.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}
