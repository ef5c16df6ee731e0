//! The external-signal wire format: one client message → a checked [`Signal`], and the
//! reply it gets. Pure (text in, value out); the WebSocket endpoint that carries it is
//! `actors/external_signals/server.rs`, the actor that stamps and forwards it
//! `actors/external_signals.rs`.
//!
//! Each text message is one signal:
//!
//! ```json
//! {"source":"my_model","pair":"BTC/USD","score":0.8,"confidence":0.6,"horizon":"5m","explanation":"optional"}
//! ```
//!
//! answered `{"ok":true}` or `{"ok":false,"error":"<reason naming the field>"}`. Malformed
//! JSON, unknown fields and out-of-range values get an error reply. The engine stamps
//! `event_time`/`event_seq` with the latest market event it has handled.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::super::decisions::Signal;
use super::super::time::{EventTime, Span};
use super::BUILT_IN;

/// Longest accepted horizon: a signal is a short-term view, not a standing order.
pub const MAX_HORIZON: Span = Span::from_secs(86_400);
/// Longest source name / explanation (characters).
const MAX_SOURCE_CHARS: usize = 64;
const MAX_EXPLANATION_CHARS: usize = 500;
const FIELDS: &str = "source, pair, score, confidence, horizon, explanation";

/// Parses and checks one client message, stamping it with the latest event `at`.
///
/// Every error names the field it is about (`score 5 is outside [-1, 1]`,
/// `pair "DOGE/USD" is not traded …`).
pub fn parse_signal(text: &str, pairs: &[String], at: (EventTime, u64)) -> Result<Signal, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(format!("expected a JSON object with fields {FIELDS}"));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.split(", ").any(|f| f == k.as_str())) {
        let hint = if k == "event_time" || k == "event_seq" { " (the engine stamps it)" } else { "" };
        return Err(format!("unknown field `{k}`{hint}; expected {FIELDS}"));
    }
    let source = string_field(&obj, "source")?;
    let ok_chars = source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if source.is_empty() || source.chars().count() > MAX_SOURCE_CHARS || !ok_chars {
        return Err(format!("source {source:?} must be 1-{MAX_SOURCE_CHARS} characters of [A-Za-z0-9_.-]"));
    }
    // A built-in's name would merge its track record (weights) with an outsider's.
    if BUILT_IN.contains(&source) {
        return Err(format!("source {source:?} is the name of a built-in model; choose another"));
    }
    let pair = string_field(&obj, "pair")?;
    if !pairs.iter().any(|p| p == pair) {
        return Err(format!("pair {pair:?} is not traded (feed.pairs: {})", pairs.join(", ")));
    }
    let score = number_field(&obj, "score")?;
    let confidence = number_field(&obj, "confidence")?;
    let horizon_text = string_field(&obj, "horizon")?;
    let horizon = Span::parse(horizon_text)
        .map_err(|_| format!("horizon {horizon_text:?} is not a duration like 5m, 90s or 1h"))?;
    if horizon > MAX_HORIZON {
        return Err(format!("horizon {horizon_text:?} is longer than {MAX_HORIZON}"));
    }
    let explanation = match obj.get("explanation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_EXPLANATION_CHARS => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(format!("explanation is longer than {MAX_EXPLANATION_CHARS} characters"));
        }
        Some(_) => return Err("explanation must be a string".into()),
    };
    let s = Signal {
        source: Arc::from(source),
        pair: Arc::from(pair),
        score,
        confidence,
        horizon,
        event_time: at.0,
        event_seq: at.1,
        explanation,
    };
    // The contract's own messages name the field (`score 5 is outside [-1, 1]`).
    s.validate()?;
    Ok(s)
}

fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("{key} is missing")),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn number_field(obj: &Map<String, Value>, key: &str) -> Result<f64, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{key} {n} is not a finite number")),
        None => Err(format!("{key} is missing")),
        Some(_) => Err(format!("{key} must be a number")),
    }
}

/// The reply to one message.
pub fn reply(result: &Result<(), String>) -> String {
    match result {
        // Written by hand to keep the documented key order (`ok` first).
        Ok(()) => r#"{"ok":true}"#.to_string(),
        Err(e) => format!(r#"{{"ok":false,"error":{}}}"#, Value::String(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<String> {
        vec!["BTC/USD".into(), "ETH/USD".into()]
    }
    const AT: (EventTime, u64) = (EventTime::ZERO, 41);

    fn err(text: &str) -> String {
        parse_signal(text, &pairs(), AT).unwrap_err()
    }

    #[test]
    fn a_good_signal_is_stamped_with_the_latest_event() {
        let s = parse_signal(
            r#"{"source":"mine","pair":"BTC/USD","score":1,"confidence":0.5,"horizon":"5m","explanation":"why"}"#,
            &pairs(),
            (EventTime::ZERO.plus_micros(7), 41),
        )
        .unwrap();
        assert_eq!((&*s.source, &*s.pair, s.score, s.confidence), ("mine", "BTC/USD", 1.0, 0.5));
        assert_eq!(s.horizon, Span::from_secs(300));
        assert_eq!((s.event_time.as_micros(), s.event_seq), (7, 41));
        assert_eq!(s.explanation.as_deref(), Some("why"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = |k: &str, v: &str| {
            let mut o: Map<String, Value> = serde_json::from_str(
                r#"{"source":"mine","pair":"BTC/USD","score":0.5,"confidence":0.5,"horizon":"5m"}"#,
            )
            .unwrap();
            if v.is_empty() {
                o.remove(k);
            } else {
                o.insert(k.into(), serde_json::from_str(v).unwrap());
            }
            Value::Object(o).to_string()
        };
        assert!(err(&base("score", "5")).starts_with("score 5"), "{}", err(&base("score", "5")));
        assert!(err(&base("score", "\"high\"")).starts_with("score must be a number"));
        assert!(err(&base("confidence", "-0.1")).starts_with("confidence -0.1"));
        assert!(err(&base("confidence", "")).starts_with("confidence is missing"));
        assert!(err(&base("pair", "\"DOGE/USD\"")).starts_with("pair \"DOGE/USD\" is not traded"));
        assert!(err(&base("horizon", "\"soon\"")).starts_with("horizon \"soon\""));
        assert!(err(&base("horizon", "\"2d\"")).contains("longer than 1d"));
        assert!(err(&base("horizon", "\"0s\"")).starts_with("horizon must be positive"));
        assert!(err(&base("source", "\"ema_cross\"")).contains("built-in"));
        assert!(err(&base("source", "\"a b\"")).starts_with("source \"a b\""));
        assert!(err(&base("explanation", "3")).starts_with("explanation must be a string"));
        assert!(err(&base("event_seq", "3")).contains("unknown field `event_seq` (the engine stamps it)"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(err("{not json").starts_with("malformed JSON"));
        assert!(err("[1,2]").starts_with("expected a JSON object"));
        assert!(err("").starts_with("malformed JSON"));
        // 1e999 is not an f64 (arbitrary_precision keeps the digits; as_f64 gives inf or None).
        let e = err(r#"{"source":"m","pair":"BTC/USD","score":1e999,"confidence":1,"horizon":"5m"}"#);
        assert!(e.starts_with("score"), "{e}");
    }

    #[test]
    fn replies_are_the_documented_json() {
        assert_eq!(reply(&Ok(())), r#"{"ok":true}"#);
        assert_eq!(
            reply(&Err("score 5 is outside [-1, 1]".into())),
            r#"{"ok":false,"error":"score 5 is outside [-1, 1]"}"#
        );
    }
}
