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

use super::super::decisions::{Signal, SignalContractError};
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
pub fn parse_signal(
    text: &str,
    pairs: &[String],
    at: (EventTime, u64),
) -> Result<Signal, ExternalSignalError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ExternalSignalError::MalformedJson(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(ExternalSignalError::NotAnObject);
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.split(", ").any(|f| f == k.as_str())) {
        let hint = if k == "event_time" || k == "event_seq" { " (the engine stamps it)" } else { "" };
        return Err(ExternalSignalError::UnknownField { field: k.clone(), hint });
    }
    let source = string_field(&obj, "source")?;
    let ok_chars = source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if source.is_empty() || source.chars().count() > MAX_SOURCE_CHARS || !ok_chars {
        return Err(ExternalSignalError::BadSource(source.to_string()));
    }
    // A built-in's name would merge its track record (weights) with an outsider's.
    if BUILT_IN.contains(&source) {
        return Err(ExternalSignalError::BuiltInSource(source.to_string()));
    }
    let pair = string_field(&obj, "pair")?;
    if !pairs.iter().any(|p| p == pair) {
        return Err(ExternalSignalError::PairNotTraded { pair: pair.to_string(), traded: pairs.join(", ") });
    }
    let score = number_field(&obj, "score")?;
    let confidence = number_field(&obj, "confidence")?;
    let horizon_text = string_field(&obj, "horizon")?;
    let horizon =
        Span::parse(horizon_text).map_err(|_| ExternalSignalError::BadHorizon(horizon_text.to_string()))?;
    if horizon > MAX_HORIZON {
        return Err(ExternalSignalError::HorizonTooLong(horizon_text.to_string()));
    }
    let explanation = match obj.get("explanation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_EXPLANATION_CHARS => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(ExternalSignalError::ExplanationTooLong);
        }
        Some(_) => return Err(ExternalSignalError::ExplanationNotString),
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

fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, ExternalSignalError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(ExternalSignalError::Missing(key.to_string())),
        Some(_) => Err(ExternalSignalError::NotAString(key.to_string())),
    }
}

fn number_field(obj: &Map<String, Value>, key: &str) -> Result<f64, ExternalSignalError> {
    match obj.get(key) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| ExternalSignalError::NotFinite { key: key.to_string(), number: n.to_string() }),
        None => Err(ExternalSignalError::Missing(key.to_string())),
        Some(_) => Err(ExternalSignalError::NotANumber(key.to_string())),
    }
}

/// The reply to one message.
pub fn reply(result: &Result<(), ExternalSignalError>) -> String {
    match result {
        // Written by hand to keep the documented key order (`ok` first).
        Ok(()) => r#"{"ok":true}"#.to_string(),
        Err(e) => format!(r#"{{"ok":false,"error":{}}}"#, Value::String(e.to_string())),
    }
}

/// Why a client's message was refused. The `Display` text is the `error` of the reply sent
/// to the client: each names the field it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExternalSignalError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not an object.
    #[error("expected a JSON object with fields {fields}", fields = FIELDS)]
    NotAnObject,
    /// A field the format does not have (`hint` says why, for the engine-stamped ones).
    #[error("unknown field `{field}`{hint}; expected {fields}", fields = FIELDS)]
    UnknownField {
        /// The field as sent.
        field: String,
        /// `" (the engine stamps it)"` or empty.
        hint: &'static str,
    },
    /// A source name that is empty, too long or has other characters.
    #[error("source {0:?} must be 1-{max} characters of [A-Za-z0-9_.-]", max = MAX_SOURCE_CHARS)]
    BadSource(String),
    /// A source named like a built-in model.
    #[error("source {0:?} is the name of a built-in model; choose another")]
    BuiltInSource(String),
    /// A pair the engine does not trade.
    #[error("pair {pair:?} is not traded (feed.pairs: {traded})")]
    PairNotTraded {
        /// The pair as sent.
        pair: String,
        /// The traded pairs, comma-separated.
        traded: String,
    },
    /// A horizon that is not a duration.
    #[error("horizon {0:?} is not a duration like 5m, 90s or 1h")]
    BadHorizon(String),
    /// A horizon over [`MAX_HORIZON`].
    #[error("horizon {0:?} is longer than {max}", max = MAX_HORIZON)]
    HorizonTooLong(String),
    /// An explanation over the length limit.
    #[error("explanation is longer than {max} characters", max = MAX_EXPLANATION_CHARS)]
    ExplanationTooLong,
    /// An explanation that is not a string.
    #[error("explanation must be a string")]
    ExplanationNotString,
    /// A required field is absent.
    #[error("{0} is missing")]
    Missing(String),
    /// A field that must be a string is not.
    #[error("{0} must be a string")]
    NotAString(String),
    /// A field that must be a number is not.
    #[error("{0} must be a number")]
    NotANumber(String),
    /// A number JSON holds but `f64` cannot.
    #[error("{key} {number} is not a finite number")]
    NotFinite {
        /// The field.
        key: String,
        /// The number as sent.
        number: String,
    },
    /// Out of the signal contract's ranges ([`Signal::validate`]).
    #[error(transparent)]
    Contract(#[from] SignalContractError),
    /// Sent before the engine handled any market event (nothing to stamp it with).
    #[error("no market event seen yet; try again in a moment")]
    NoMarketEvent,
    /// The actor is gone (the run is ending).
    #[error("engine is shutting down: {0}")]
    ShuttingDown(String),
    /// Trading is halted (an emergency stop): nothing is forwarded until the halt is lifted.
    #[error("halted")]
    Halted,
    /// The actor failed on this message and is being restarted.
    #[error("the external-signal actor failed on this message and is restarting; send again")]
    Restarting,
    /// A binary WebSocket frame.
    #[error("send signals as text frames of JSON")]
    BinaryFrame,
    /// A first message that is not `{"auth":…}` with the right token.
    #[error("auth: first message must be {{\"auth\":\"<token>\"}} with the right token")]
    BadAuth,
}

impl crate::core::error::Classified for ExternalSignalError {
    /// A refused message is answered and the connection goes on: every variant is
    /// [`Disposition::Recoverable`] (nothing a client sends can stop the engine).
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        use ExternalSignalError as E;
        match self {
            E::MalformedJson(_)
            | E::NotAnObject
            | E::UnknownField { .. }
            | E::BadSource(_)
            | E::BuiltInSource(_)
            | E::PairNotTraded { .. }
            | E::BadHorizon(_)
            | E::HorizonTooLong(_)
            | E::ExplanationTooLong
            | E::ExplanationNotString
            | E::Missing(_)
            | E::NotAString(_)
            | E::NotANumber(_)
            | E::NotFinite { .. }
            | E::Contract(_)
            | E::NoMarketEvent
            | E::ShuttingDown(_)
            | E::Halted
            | E::Restarting
            | E::BinaryFrame
            | E::BadAuth => crate::core::error::Disposition::Recoverable,
        }
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
        parse_signal(text, &pairs(), AT).unwrap_err().to_string()
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
            reply(&Err(SignalContractError::Score(5.0).into())),
            r#"{"ok":false,"error":"score 5 is outside [-1, 1]"}"#
        );
    }
}
