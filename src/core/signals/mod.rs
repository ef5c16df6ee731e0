//! Signal models (pure) and the plug-in trait.
//!
//! Interface contract (used by the SignalHost actor, the engine and examples/custom_signal.rs).
//! A model sees every market event in exchange order and sometimes returns a [`Signal`]; it
//! keeps its state per pair (`BTreeMap` by symbol) and reads only event time. The built-in
//! models are documented with their formulas in their files and in docs/signals.md:
//!
//! | name | file | idea |
//! |---|---|---|
//! | `ema_cross` | [`ema_cross`] | EMA-cross momentum on a 10 s grid (default) |
//! | `rsi` | [`rsi`] | RSI mean reversion |
//! | `breakout` | [`breakout`] | volatility breakout out of a rolling band |
//! | `imbalance` | [`imbalance`] | order-book depth imbalance |
//! | `online_ml` | [`online_ml`] | walk-forward online logistic regression |
//! | `onnx` | [`onnx`] | a model trained elsewhere, exported to ONNX (`--features onnx`) |
//!
//! [`external`] checks signals pushed by outside processes (the external-signal endpoint).
//! [`features`] computes the feature vector `online_ml` and `onnx` share. The three sampled
//! models (`ema_cross`, `rsi`, `breakout`) are written as a [`common::PairModel`] (parameters,
//! per-pair state, one step per grid sample) and run through one adapter, [`common::Sampled`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::decisions::Signal;
use super::instrument::Symbol;
use super::market::{MarketEvent, PriceHistory};
use super::time::Span;
use super::validate::Issues;

pub mod breakout;
pub mod common;
pub mod ema_cross;
pub mod external;
pub mod features;
pub mod imbalance;
pub mod online_ml;
pub mod onnx;
pub mod rsi;
#[cfg(test)]
pub(crate) mod testdata;

pub use breakout::{Breakout, BreakoutConfig};
pub use ema_cross::{EmaCross, EmaCrossConfig};
pub use imbalance::{Imbalance, ImbalanceConfig};
pub use online_ml::{OnlineMl, OnlineMlConfig};
pub use onnx::OnnxConfig;
pub use rsi::{Rsi, RsiConfig};

/// Names of the built-in models, in the order `signals.enabled` may list them. `onnx` is
/// only available in builds with `--features onnx`; other builds refuse it with a message
/// saying so.
pub const BUILT_IN: [&str; 6] = ["ema_cross", "rsi", "breakout", "imbalance", "online_ml", "onnx"];

/// A signal model: reads market events in order, sometimes says something.
///
/// Implement this to plug in your own signal; name it in `signals.enabled` (built-ins) or
/// register it with the engine builder (your own). `seq` is the event's global sequence
/// number; models must only use data up to and including this event (no look-ahead).
pub trait SignalModel: Send {
    /// Source name, used in the journal and for weights (e.g. `ema_cross`).
    fn name(&self) -> &str;
    /// Called for every market event, in exchange order (except `History`, which goes to
    /// [`SignalModel::warm_up`]).
    fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal>;
    /// The sampling interval this model would like price history for before trading starts,
    /// or `None` (the default): no warm-up. Live runs fetch Kraken OHLC candles at the
    /// nearest Kraken interval ([`common::ohlc_interval_for`]) and hand them to
    /// [`SignalModel::warm_up`] before the first live event (`feed.warmup`).
    fn warm_up_interval(&self) -> Option<Span> {
        None
    }
    /// Closed candles of `symbol` at the interval asked for, oldest first, before any live
    /// event of the pair: build state as if those closes had been sampled, emit nothing.
    /// Default: ignore them (the model starts cold).
    fn warm_up(&mut self, _symbol: &Symbol, _history: &PriceHistory) {}
}

/// The model files the enabled built-in models load, as the caller read them: core reads no
/// files. Today only `onnx` has one: read [`SignalsConfig::onnx_model_path`] if it is `Some`.
#[derive(Debug, Default)]
pub struct ModelFiles {
    /// What reading `signals.onnx.model` gave (its bytes or the read error); `None`: not read.
    pub onnx: Option<std::io::Result<Vec<u8>>>,
}

/// `signals.*`: which built-in models run and their parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Built-in models to run, by name (`ema_cross`, `rsi`, `breakout`, `imbalance`,
    /// `online_ml`, `onnx`); default `[ema_cross]`.
    pub enabled: Vec<String>,
    /// `signals.ema_cross.*`: EMA-cross momentum.
    pub ema_cross: EmaCrossConfig,
    /// `signals.rsi.*`: RSI mean reversion.
    pub rsi: RsiConfig,
    /// `signals.breakout.*`: volatility breakout.
    pub breakout: BreakoutConfig,
    /// `signals.imbalance.*`: order-book imbalance.
    pub imbalance: ImbalanceConfig,
    /// `signals.online_ml.*`: online logistic regression.
    pub online_ml: OnlineMlConfig,
    /// `signals.onnx.*`: a model trained elsewhere, exported to ONNX.
    pub onnx: OnnxConfig,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            enabled: vec!["ema_cross".into()],
            ema_cross: EmaCrossConfig::default(),
            rsi: RsiConfig::default(),
            breakout: BreakoutConfig::default(),
            imbalance: ImbalanceConfig::default(),
            online_ml: OnlineMlConfig::default(),
            onnx: OnnxConfig::default(),
        }
    }
}

impl SignalsConfig {
    /// Adds a problem for every out-of-range key (`signals.…`).
    ///
    /// Every model's section is checked, enabled or not, so that a typo in a section that is
    /// switched on later does not wait until then to be found. With `onnx` enabled, its model
    /// file (read by the caller into `files`) is prepared and checked too (`signals.onnx.model`).
    pub fn validate(&self, is: &mut Issues, files: &ModelFiles) {
        let before = is.list.len();
        self.validate_keys(is);
        if is.list.len() == before && self.enabled.iter().any(|n| n == onnx::NAME) {
            self.check_onnx_model(is, files);
        }
    }

    /// The model file a caller must read into [`ModelFiles::onnx`] before [`validate`] and
    /// [`build`]: `signals.onnx.model` when `onnx` is enabled in a build with the onnx feature.
    ///
    /// [`validate`]: SignalsConfig::validate
    /// [`build`]: SignalsConfig::build
    pub fn onnx_model_path(&self) -> Option<&Path> {
        let wanted = cfg!(feature = "onnx") && self.enabled.iter().any(|n| n == onnx::NAME);
        self.onnx.model.as_deref().filter(|_| wanted)
    }

    /// Prepares the `onnx` model once to check the file and its shapes.
    #[cfg(feature = "onnx")]
    fn check_onnx_model(&self, is: &mut Issues, files: &ModelFiles) {
        if let Err(e) = onnx::OnnxSignal::new(&self.onnx, files.onnx.as_ref()) {
            is.push("signals.onnx.model", e.without_key().to_string());
        }
    }

    /// Without the feature, `validate_keys` has already refused `onnx` in `enabled`.
    #[cfg(not(feature = "onnx"))]
    fn check_onnx_model(&self, _is: &mut Issues, _files: &ModelFiles) {}

    fn validate_keys(&self, is: &mut Issues) {
        for (i, name) in self.enabled.iter().enumerate() {
            let key = format!("signals.enabled[{i}]");
            if !BUILT_IN.contains(&name.as_str()) {
                is.push(key, format!("unknown signal model {name:?} (built-in: {})", BUILT_IN.join(", ")));
            } else if self.enabled[..i].contains(name) {
                is.push(key, format!("{name:?} is listed twice"));
            } else if name == onnx::NAME && !cfg!(feature = "onnx") {
                is.push(key, onnx::NOT_BUILT);
            }
        }
        self.ema_cross.validate(is);
        self.rsi.validate(is);
        self.breakout.validate(is);
        self.imbalance.validate(is);
        self.online_ml.validate(is);
        self.onnx.validate(is);
    }

    /// The enabled built-in models, one instance per name; `files` holds the model files
    /// the caller read ([`SignalsConfig::onnx_model_path`]).
    ///
    /// Fails with every config problem (one per line, each naming its key) when the config
    /// does not validate, e.g. `signals.enabled[1]: unknown signal model "macd" (…)`, or with
    /// the problem of the `onnx` model file (`signals.onnx.model: …`).
    #[cfg_attr(not(feature = "onnx"), allow(unused_variables))]
    pub fn build(&self, files: &ModelFiles) -> Result<Vec<Box<dyn SignalModel>>, SignalError> {
        let mut is = Issues::default();
        self.validate_keys(&mut is);
        if !is.is_empty() {
            return Err(SignalError::Config(
                is.list.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
            ));
        }
        let mut out: Vec<Box<dyn SignalModel>> = Vec::with_capacity(self.enabled.len());
        for (i, name) in self.enabled.iter().enumerate() {
            out.push(match name.as_str() {
                "ema_cross" => Box::new(EmaCross::new(&self.ema_cross)),
                "rsi" => Box::new(Rsi::new(&self.rsi)),
                "breakout" => Box::new(Breakout::new(&self.breakout)),
                "imbalance" => Box::new(Imbalance::new(&self.imbalance)),
                "online_ml" => Box::new(OnlineMl::new(&self.online_ml)),
                #[cfg(feature = "onnx")]
                "onnx" => Box::new(
                    onnx::OnnxSignal::new(&self.onnx, files.onnx.as_ref()).map_err(SignalError::Onnx)?,
                ),
                other => return Err(SignalError::UnknownModel { index: i, name: other.to_string() }),
            });
        }
        Ok(out)
    }
}

/// Why the signal models cannot be built ([`SignalsConfig::build`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The config does not validate: every problem, one per line, each naming its key.
    #[error("{0}")]
    Config(String),
    /// A model name no built-in has.
    #[error("signals.enabled[{index}]: unknown signal model {name:?}")]
    UnknownModel {
        /// Its position in `signals.enabled`.
        index: usize,
        /// The name.
        name: String,
    },
    /// The `onnx` model cannot be loaded (`signals.onnx.model: …`, naming the file).
    #[error("{0}")]
    Onnx(onnx::OnnxError),
}

impl crate::core::error::Classified for SignalError {
    /// Models that cannot be built refuse the start ([`Disposition::Halt`]).
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            SignalError::Config(_) | SignalError::UnknownModel { .. } | SignalError::Onnx(_) => {
                crate::core::error::Disposition::Halt
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_builds_ema_cross_only() {
        let models = SignalsConfig::default().build(&ModelFiles::default()).unwrap();
        let names: Vec<_> = models.iter().map(|m| m.name().to_string()).collect();
        assert_eq!(names, ["ema_cross"]);
    }

    #[test]
    fn builds_every_built_in_under_its_name() {
        // `onnx` needs a model file: tested in onnx_tests.
        let plain: Vec<&str> = BUILT_IN.iter().copied().filter(|n| *n != "onnx").collect();
        let cfg =
            SignalsConfig { enabled: plain.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let names: Vec<_> =
            cfg.build(&ModelFiles::default()).unwrap().iter().map(|m| m.name().to_string()).collect();
        assert_eq!(names, plain);
    }

    #[cfg(not(feature = "onnx"))]
    #[test]
    fn onnx_without_the_feature_names_the_key_and_the_flag() {
        let cfg = SignalsConfig { enabled: vec!["ema_cross".into(), "onnx".into()], ..Default::default() };
        let mut is = Issues::default();
        cfg.validate(&mut is, &ModelFiles::default());
        assert_eq!(is.list.len(), 1, "{is}");
        assert_eq!(is.list[0].key, "signals.enabled[1]");
        assert!(is.list[0].message.contains("--features onnx"), "{is}");
        let err = cfg.build(&ModelFiles::default()).err().unwrap().to_string();
        assert!(err.starts_with("signals.enabled[1]: ") && err.contains("--features onnx"), "{err}");
    }

    #[test]
    fn unknown_name_is_an_error_naming_its_index() {
        let cfg = SignalsConfig { enabled: vec!["ema_cross".into(), "macd".into()], ..Default::default() };
        let err = cfg.build(&ModelFiles::default()).err().unwrap().to_string();
        assert!(err.starts_with("signals.enabled[1]: unknown signal model \"macd\""), "{err}");
        let mut is = Issues::default();
        cfg.validate(&mut is, &ModelFiles::default());
        assert_eq!(is.list.len(), 1);
        assert_eq!(is.list[0].key, "signals.enabled[1]");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let cfg = SignalsConfig { enabled: vec!["rsi".into(), "rsi".into()], ..Default::default() };
        let mut is = Issues::default();
        cfg.validate(&mut is, &ModelFiles::default());
        assert_eq!(is.list[0].key, "signals.enabled[1]");
    }

    #[test]
    fn config_reads_nested_keys_and_refuses_unknown_ones() {
        let cfg: SignalsConfig = yaml_serde::from_str(
            "enabled: [ema_cross, online_ml]\nema_cross: {fast: 8, sample_interval: 5s}\nonline_ml: {lags: [1, 2]}\n",
        )
        .unwrap();
        assert_eq!(cfg.ema_cross.fast, 8);
        assert_eq!(cfg.ema_cross.slow, 48, "other keys keep their defaults");
        assert_eq!(cfg.ema_cross.sample_interval, super::super::time::Span::from_secs(5));
        assert_eq!(cfg.online_ml.lags, [1, 2]);
        assert!(yaml_serde::from_str::<SignalsConfig>("ema_cross: {fats: 8}\n").is_err());
    }

    #[test]
    fn defaults_validate() {
        let mut is = Issues::default();
        SignalsConfig::default().validate(&mut is, &ModelFiles::default());
        assert!(is.is_empty(), "{is}");
    }
}
