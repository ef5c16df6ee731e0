//! `onnx`: a signal from a model trained elsewhere (scikit-learn, PyTorch, …) and exported to
//! ONNX, run in-process by tract (pure Rust). Only in builds with `--features onnx`; the
//! config section exists in every build, so a config naming `onnx` in a build without the
//! feature is refused with a clear message instead of an unknown key.
//!
//! Per pair, on the `sample_interval` grid, the model computes the feature vector of
//! [`features`](super::features) — the one `online_ml` learns on and
//! `examples/export_features.rs` writes for training — and runs the model on it:
//!
//! - input: one float tensor of shape `[1, n_features]` (the model may declare `[N, F]`
//!   with a symbolic batch dimension; F must equal the number of features);
//! - output: the one named `probabilities` if the model has it (scikit-learn classifiers
//!   exported with skl2onnx and `zipmap: False`), otherwise the first output; of shape
//!   `[1, 2]` (column 1 = P(up), i.e. class label 1) or `[1, 1]` / `[1]` (P(up) itself).
//!
//! `p` = P(up over `horizon`); score = 2p − 1, confidence = |2p − 1|, a side opens at
//! `|2p − 1| ≥ min_confidence` and closes below half of it, and a signal is emitted when the
//! side changes — exactly as `online_ml` does. Nothing is learned at run time, so there is no
//! label and nothing that could look ahead: the output at an event depends on the events up
//! to it and the fixed model.
//!
//! Determinism: the one exemption from the engine's `libm` rule (docs/architecture.md, Time
//! and determinism). tract's kernels use the platform's floats and run-time SIMD choice, so
//! a run with this signal is byte-identical on the same platform and build only.
//!
//! The model file is read by the caller (core reads no files: [`super::ModelFiles`]) and
//! prepared once, when the signal is built (at config validation and start-up); every
//! problem with it — missing, not ONNX, unsupported operators, wrong input shape, an output
//! that is not a probability — is an error naming the file and `signals.onnx.model`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::super::time::Span;
use super::super::validate::Issues;
use super::common::{count_in, positive_span};
use super::features::FeatureSpec;

/// `signals.onnx.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxConfig {
    /// The `.onnx` file (relative paths are relative to the working directory). Required
    /// when `onnx` is enabled.
    pub model: Option<PathBuf>,
    /// Event-time grid features are sampled on (default 10s). Must match the training data.
    pub sample_interval: Span,
    /// What the model predicts: the sign of the return over this span; also the signal's
    /// validity (default 1m).
    pub horizon: Span,
    /// Return lags in samples (default [1, 6, 30]). Must match the training data.
    pub lags: Vec<u32>,
    /// Samples in the realised-volatility window (default 30). Must match the training data.
    pub vol_samples: u32,
    /// Feature vectors per pair before the first signal, so the running standardisation has
    /// settled (default 100).
    pub warmup: u32,
    /// |2p − 1| needed to open a side (default 0.4, i.e. p ≥ 0.7 or ≤ 0.3).
    pub min_confidence: f64,
}

impl Default for OnnxConfig {
    fn default() -> Self {
        OnnxConfig {
            model: None,
            sample_interval: Span::from_secs(10),
            horizon: Span::from_secs(60),
            lags: vec![1, 6, 30],
            vol_samples: 30,
            warmup: 100,
            min_confidence: 0.4,
        }
    }
}

impl OnnxConfig {
    /// Adds a problem for every out-of-range key (`signals.onnx.…`). The model file itself is
    /// checked by [`SignalsConfig::validate`](super::SignalsConfig::validate) when `onnx` is
    /// enabled.
    pub fn validate(&self, is: &mut Issues) {
        self.features().validate(is, "signals.onnx");
        positive_span(is, "signals.onnx.horizon", self.horizon);
        count_in(is, "signals.onnx.warmup", self.warmup, 0, 10_000_000);
        is.fraction_f64("signals.onnx.min_confidence", self.min_confidence, true);
    }

    /// The feature keys of this section.
    pub fn features(&self) -> FeatureSpec {
        FeatureSpec {
            sample_interval: self.sample_interval,
            lags: self.lags.clone(),
            vol_samples: self.vol_samples,
        }
    }
}

/// Source name of the signal.
pub const NAME: &str = "onnx";

/// What `signals.enabled` naming `onnx` in a build without the feature says.
pub const NOT_BUILT: &str = "the \"onnx\" signal needs a build with the onnx feature: \
                             cargo build --release --features onnx (or cargo run --release --features onnx -- …)";

/// Why an ONNX model cannot be prepared or run. The text names the key or the file and is the
/// whole message (tract's own error is folded into it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// `signals.onnx.model` is unset, unreadable, malformed, or of the wrong shape.
    #[error("{0}")]
    Load(String),
    /// A prediction failed (wrong number of features, tract refused the input).
    #[error("{0}")]
    Predict(String),
}

impl OnnxError {
    /// The message without the `signals.onnx.model: ` key prefix (config issues name the key
    /// themselves).
    pub fn without_key(&self) -> &str {
        let (OnnxError::Load(m) | OnnxError::Predict(m)) = self;
        m.strip_prefix("signals.onnx.model: ").unwrap_or(m)
    }
}

impl crate::core::error::Classified for OnnxError {
    /// A model that cannot load refuses the start; a failed prediction is counted and the
    /// signal skipped.
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            OnnxError::Load(_) => crate::core::error::Disposition::Halt,
            OnnxError::Predict(_) => crate::core::error::Disposition::Recoverable,
        }
    }
}

#[cfg(feature = "onnx")]
pub use runtime::{OnnxModel, OnnxSignal};

#[cfg(feature = "onnx")]
mod runtime {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::infer::Factoid;

    use super::super::super::decisions::Signal;
    use super::super::super::instrument::Symbol;
    use super::super::super::market::MarketEvent;
    use super::super::SignalModel;
    use super::super::common::{hysteresis_side, make_signal};
    use super::super::features::Features;
    use super::OnnxError;
    use super::*;

    /// A loaded ONNX model that maps one feature vector to P(up).
    pub struct OnnxModel {
        plan: Arc<TypedRunnableModel>,
        n_features: usize,
        input_f64: bool,
        file: String,
    }

    impl std::fmt::Debug for OnnxModel {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "OnnxModel({}, {} features)", self.file, self.n_features)
        }
    }

    impl OnnxModel {
        /// Prepares a model from the bytes of an `.onnx` file for vectors of `n_features`
        /// features; `file` names it in errors. Shape errors give the model's and the
        /// features' shapes.
        pub fn from_bytes(bytes: &[u8], n_features: usize, file: &str) -> Result<OnnxModel, OnnxError> {
            // tract indexes into the graph while parsing; a malformed file must be an error
            // naming it, not a crash of the engine.
            std::panic::catch_unwind(|| Self::prepare(bytes, n_features, file))
                .unwrap_or_else(|_| {
                    Err(format!(
                        "ONNX model {file}: tract failed while parsing it (a malformed or truncated file?)"
                    ))
                })
                .map_err(OnnxError::Load)
        }

        fn prepare(bytes: &[u8], n_features: usize, file: &str) -> Result<OnnxModel, String> {
            let fail = |what: &str, e: TractError| format!("ONNX model {file}: {what}: {e:#}");
            let mut model =
                tract_onnx::onnx().model_for_read(&mut &bytes[..]).map_err(|e| fail("cannot load it", e))?;
            let inputs = model.input_outlets().map_err(|e| fail("no inputs", e))?.len();
            if inputs != 1 {
                return Err(format!(
                    "ONNX model {file} has {inputs} inputs; a signal model takes exactly one, \
                     the feature vector of shape [1, {n_features}]"
                ));
            }
            let fact = model.input_fact(0).map_err(|e| fail("no input", e))?.clone();
            let declared = describe_shape(&fact);
            let dims: Vec<Option<i64>> =
                fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok())).collect();
            let wrong_rank = !fact.shape.is_open() && dims.len() != 2;
            let wrong_width = dims.len() == 2 && dims[1].is_some_and(|w| w != n_features as i64);
            let wrong_batch = dims.len() == 2 && dims[0].is_some_and(|b| b != 1);
            if wrong_rank || wrong_width || wrong_batch {
                return Err(format!(
                    "ONNX model {file} expects an input of shape {declared}, but the signal feeds one \
                     feature vector of shape [1, {n_features}] ({n_features} features: one per \
                     signals.onnx.lags entry plus vol, spread, imbalance, flow); set signals.onnx.lags \
                     to the lags the model was trained with, or retrain it"
                ));
            }
            let input_f64 = fact.datum_type.concretize() == Some(DatumType::F64);
            let dt = if input_f64 { f64::datum_type() } else { f32::datum_type() };
            model
                .set_input_fact(0, InferenceFact::dt_shape(dt, [1, n_features]))
                .map_err(|e| fail("cannot set the input shape", e))?;
            let outlets = model.output_outlets().map_err(|e| fail("no outputs", e))?.to_vec();
            let chosen = outlets
                .iter()
                .copied()
                .find(|o| model.outlet_label(*o) == Some("probabilities"))
                .or_else(|| outlets.first().copied())
                .ok_or_else(|| format!("ONNX model {file} has no output"))?;
            model.select_output_outlets(&[chosen]).map_err(|e| fail("cannot select its output", e))?;
            let plan = model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(|e| fail("cannot prepare it for input [1, {n_features}]", e))?;
            let loaded = OnnxModel { plan, n_features, input_f64, file: file.to_string() };
            // One run on a zero vector checks the output's shape and range now, not mid-run.
            loaded.run(&vec![0.0; n_features])?;
            Ok(loaded)
        }

        /// Number of features the model takes.
        pub fn n_features(&self) -> usize {
            self.n_features
        }

        /// The file it was loaded from.
        pub fn file(&self) -> &str {
            &self.file
        }

        /// P(up) for one feature vector.
        pub fn predict(&self, x: &[f64]) -> Result<f64, OnnxError> {
            self.run(x).map_err(OnnxError::Predict)
        }

        fn run(&self, x: &[f64]) -> Result<f64, String> {
            let file = &self.file;
            if x.len() != self.n_features {
                return Err(format!(
                    "ONNX model {file}: got {} features, expects {}",
                    x.len(),
                    self.n_features
                ));
            }
            let shape = [1, self.n_features];
            let input = if self.input_f64 {
                Tensor::from_shape(&shape, x)
            } else {
                let v: Vec<f32> = x.iter().map(|v| *v as f32).collect();
                Tensor::from_shape(&shape, &v)
            }
            .map_err(|e| format!("ONNX model {file}: cannot build the input: {e:#}"))?;
            let out = self
                .plan
                .run(tvec![input.into()])
                .map_err(|e| format!("ONNX model {file}: run failed: {e:#}"))?;
            let t = out.first().ok_or_else(|| format!("ONNX model {file} returned no output"))?;
            let shape = t.shape().to_vec();
            let t =
                t.cast_to::<f64>().map_err(|e| format!("ONNX model {file}: output is not numeric: {e:#}"))?;
            let values: Vec<f64> = t
                .to_plain_array_view::<f64>()
                .map_err(|e| format!("ONNX model {file}: cannot read the output: {e:#}"))?
                .iter()
                .copied()
                .collect();
            let p = match (shape.as_slice(), values.as_slice()) {
                ([1, 2], [_, up]) => *up,
                ([1, 1] | [1], [up]) => *up,
                _ => {
                    return Err(format!(
                        "ONNX model {file}: output of shape {shape:?}; a signal model returns P(up) as \
                         [1, 2] (column 1 = class 1 = up) or [1, 1]"
                    ));
                }
            };
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "ONNX model {file}: output {p} is not a probability in [0, 1] (export probabilities, \
                     not raw scores or labels)"
                ));
            }
            Ok(p)
        }
    }

    /// The input shape as declared by the model, e.g. `[N, 7]` or `[?, ?]`.
    fn describe_shape(fact: &InferenceFact) -> String {
        let dims: Vec<String> = fact
            .shape
            .dims()
            .map(|d| d.concretize().map_or_else(|| "?".to_string(), |d| d.to_string()))
            .collect();
        let open = if fact.shape.is_open() { ", .." } else { "" };
        format!("[{}{open}]", dims.join(", "))
    }

    #[derive(Clone, Debug, Default)]
    struct PairState {
        vectors: u64,
        side: i8,
    }

    /// The `onnx` signal: features → model → p → signal.
    pub struct OnnxSignal {
        name: Arc<str>,
        cfg: OnnxConfig,
        model: OnnxModel,
        features: Features,
        pairs: BTreeMap<Symbol, PairState>,
        failures: u64,
    }

    impl OnnxSignal {
        /// Prepares `cfg.model` from `file`, what the caller's read of it gave (core reads
        /// no files; `None`: not read). Errors name the key and the file.
        pub fn new(
            cfg: &OnnxConfig,
            file: Option<&std::io::Result<Vec<u8>>>,
        ) -> Result<OnnxSignal, OnnxError> {
            Self::prepare(cfg, file).map_err(OnnxError::Load)
        }

        fn prepare(cfg: &OnnxConfig, file: Option<&std::io::Result<Vec<u8>>>) -> Result<OnnxSignal, String> {
            let Some(path) = &cfg.model else {
                return Err("signals.onnx.model: set it to the .onnx file of the model".to_string());
            };
            let name = path.display().to_string();
            let bytes = match file {
                Some(Ok(bytes)) => bytes,
                Some(Err(e)) => {
                    return Err(format!("signals.onnx.model: cannot read ONNX model {name}: {e}"));
                }
                None => return Err(format!("signals.onnx.model: ONNX model {name} was not read")),
            };
            let model = OnnxModel::from_bytes(bytes, cfg.features().n_features(), &name)
                .map_err(|e| format!("signals.onnx.model: {e}"))?;
            Ok(Self::with_model(cfg, model))
        }

        /// Uses an already loaded model (its feature count must match `cfg`).
        pub fn with_model(cfg: &OnnxConfig, model: OnnxModel) -> OnnxSignal {
            OnnxSignal {
                name: Arc::from(NAME),
                cfg: cfg.clone(),
                model,
                features: Features::new(cfg.features()),
                pairs: BTreeMap::new(),
                failures: 0,
            }
        }

        /// Runs that failed (no signal was emitted for them); 0 for a model that loaded,
        /// since loading already ran it once on the same input shape.
        pub fn failures(&self) -> u64 {
            self.failures
        }
    }

    impl SignalModel for OnnxSignal {
        fn name(&self) -> &str {
            &self.name
        }

        fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal> {
            let sample = self.features.on_event(ev)?;
            let x = sample.x?;
            let st = self.pairs.entry(sample.pair.clone()).or_default();
            st.vectors += 1;
            if st.vectors <= u64::from(self.cfg.warmup) {
                return None;
            }
            let p = match self.model.predict(&x) {
                Ok(p) => p,
                Err(_) => {
                    self.failures += 1;
                    return None;
                }
            };
            let score = 2.0 * p - 1.0;
            let side = hysteresis_side(score, self.cfg.min_confidence, st.side);
            let changed = side != st.side;
            st.side = side;
            if !changed || side == 0 {
                return None;
            }
            let file = Path::new(self.model.file())
                .file_name()
                .map_or_else(|| self.model.file().to_string(), |f| f.to_string_lossy().into_owned());
            Some(make_signal(
                &self.name,
                &sample.pair,
                score,
                score.abs(),
                self.cfg.horizon,
                sample.time,
                seq,
                format!("p(up over {}) = {p:.3} from {file}", self.cfg.horizon),
            ))
        }
    }
}

#[cfg(all(test, feature = "onnx"))]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::testdata;
    use super::super::{ModelFiles, SignalsConfig};
    use super::*;
    use crate::core::decisions::Signal;
    use crate::core::validate::Issues;

    fn example(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/onnx").join(file)
    }

    fn cfg() -> OnnxConfig {
        OnnxConfig { model: Some(example("signal_model.onnx")), ..OnnxConfig::default() }
    }

    /// What the engine's read of `cfg.model` gives.
    fn read(c: &OnnxConfig) -> std::io::Result<Vec<u8>> {
        std::fs::read(c.model.as_deref().unwrap())
    }

    /// The signal as the engine builds it: the caller reads the file, core prepares it.
    fn signal(c: &OnnxConfig) -> Result<OnnxSignal, OnnxError> {
        OnnxSignal::new(c, Some(&read(c)))
    }

    /// The model files a run of `sc` reads.
    fn files(sc: &SignalsConfig) -> ModelFiles {
        ModelFiles { onnx: sc.onnx_model_path().map(std::fs::read) }
    }

    /// A model prepared from a file, as `OnnxSignal::new` does.
    fn load(path: &Path, n_features: usize) -> Result<OnnxModel, OnnxError> {
        let bytes = std::fs::read(path).unwrap();
        OnnxModel::from_bytes(&bytes, n_features, &path.display().to_string())
    }

    #[test]
    fn reproduces_the_probabilities_scikit_learn_and_onnxruntime_computed() {
        let text = std::fs::read_to_string(example("signal_model_vectors.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&str> =
            v["features"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert_eq!(
            names,
            cfg().features().names(),
            "the committed model was trained on the default features"
        );
        let model = load(&example("signal_model.onnx"), names.len()).unwrap();
        let vectors = v["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 5);
        let num = |x: &serde_json::Value| x.to_string().parse::<f64>().unwrap();
        for rec in vectors {
            let x: Vec<f64> = rec["x"].as_array().unwrap().iter().map(num).collect();
            let p = model.predict(&x).unwrap();
            for reference in ["p_up_onnxruntime", "p_up_sklearn"] {
                let want = num(&rec[reference]);
                assert!((p - want).abs() < 1e-5, "x {x:?}: tract {p}, {reference} {want}");
            }
        }
    }

    #[test]
    fn a_model_for_another_feature_count_is_refused_with_both_shapes() {
        // lags [1, 2] → 6 features; the model takes 7.
        let c = OnnxConfig { lags: vec![1, 2], ..cfg() };
        let err = signal(&c).err().unwrap().to_string();
        assert!(err.starts_with("signals.onnx.model: ONNX model "), "{err}");
        assert!(err.contains("signal_model.onnx"), "names the file: {err}");
        assert!(err.contains(", 7]") && err.contains("[1, 6]"), "gives both shapes: {err}");
        // The same through the config: one issue at the model key, none elsewhere.
        let sc = SignalsConfig { enabled: vec!["onnx".into()], onnx: c, ..SignalsConfig::default() };
        let mut is = Issues::default();
        sc.validate(&mut is, &files(&sc));
        assert_eq!(is.list.len(), 1, "{is}");
        assert_eq!(is.list[0].key, "signals.onnx.model");
        assert!(sc.build(&files(&sc)).is_err());
    }

    #[test]
    fn missing_unreadable_or_unset_models_are_errors_naming_the_key_and_file() {
        let missing = OnnxConfig { model: Some(PathBuf::from("/nonexistent/m.onnx")), ..cfg() };
        let err =
            OnnxSignal::new(&missing, Some(&std::fs::read("/nonexistent/m.onnx"))).err().unwrap().to_string();
        assert!(err.starts_with("signals.onnx.model: cannot read ONNX model /nonexistent/m.onnx"), "{err}");

        let dir = std::env::temp_dir().join(format!("kp-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read(example("signal_model.onnx")).unwrap();
        for (name, bytes) in
            [("garbage.onnx", b"not a model at all".to_vec()), ("cut.onnx", good[..good.len() / 2].to_vec())]
        {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let err =
                OnnxModel::from_bytes(&bytes, 7, &path.display().to_string()).err().unwrap().to_string();
            assert!(err.starts_with(&format!("ONNX model {}", path.display())), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);

        let unset = SignalsConfig { enabled: vec!["onnx".into()], ..SignalsConfig::default() };
        let mut is = Issues::default();
        unset.validate(&mut is, &files(&unset));
        assert_eq!(is.list.len(), 1, "{is}");
        assert_eq!(is.list[0].key, "signals.onnx.model");
    }

    #[test]
    fn builds_under_its_name_from_the_config() {
        let sc = SignalsConfig {
            enabled: vec!["ema_cross".into(), "onnx".into()],
            onnx: cfg(),
            ..Default::default()
        };
        let mut is = Issues::default();
        sc.validate(&mut is, &files(&sc));
        assert!(is.is_empty(), "{is}");
        let names: Vec<_> = sc.build(&files(&sc)).unwrap().iter().map(|m| m.name().to_string()).collect();
        assert_eq!(names, ["ema_cross", "onnx"]);
    }

    /// A threshold the demo model reaches: it has little edge, |2p − 1| is mostly < 0.06.
    fn eager() -> OnnxConfig {
        OnnxConfig { warmup: 50, min_confidence: 0.01, ..cfg() }
    }

    #[test]
    fn output_up_to_t_ignores_what_comes_after_t() {
        // Two streams identical for the first 4 h, then different markets (other seed).
        let a = testdata::trend_then_revert("BTC/USD", 21).events;
        let b_tail = testdata::trend_then_revert("BTC/USD", 99).events;
        let cut = testdata::at(4 * 3600);
        let mut b: Vec<_> = a.iter().filter(|e| e.time() < cut).cloned().collect();
        b.extend(b_tail.into_iter().filter(|e| e.time() >= cut));
        assert_ne!(a, b);
        let sa = testdata::run(&mut signal(&eager()).unwrap(), &a);
        let sb = testdata::run(&mut signal(&eager()).unwrap(), &b);
        let before = |s: &Vec<Signal>| s.iter().filter(|x| x.event_time < cut).cloned().collect::<Vec<_>>();
        assert!(before(&sa).len() >= 5, "the test needs signals before the cut: {}", before(&sa).len());
        assert_eq!(before(&sa), before(&sb));
        assert_ne!(sa, sb, "the streams differ afterwards, so the comparison had something to catch");
    }

    #[test]
    fn signals_carry_the_models_probability_and_wait_for_the_warmup() {
        let stream = testdata::random_walk(&["BTC/USD", "ETH/USD"], 4 * 3600, 5);
        let c = eager();
        let mut m = signal(&c).unwrap();
        let sigs = testdata::run(&mut m, &stream);
        assert_eq!(m.failures(), 0);
        assert!(sigs.iter().any(|s| &*s.pair == "BTC/USD") && sigs.iter().any(|s| &*s.pair == "ETH/USD"));
        // First vector after 31 samples (lags up to 30), then 50 of warm-up, on a 10 s grid.
        let first_allowed = testdata::at((31 + 50 - 1) * 10);
        // The features of the same stream, run through the model directly: each signal's score
        // is 2p − 1 of the vector of its grid sample.
        let mut f = super::super::features::Features::new(c.features());
        let model = load(c.model.as_deref().unwrap(), 7).unwrap();
        let mut p_at = std::collections::BTreeMap::new();
        for e in &stream {
            if let Some(s) = f.on_event(e)
                && let Some(x) = s.x
            {
                p_at.insert((s.pair.clone(), s.time), model.predict(&x).unwrap());
            }
        }
        for s in &sigs {
            assert!(s.validate().is_ok());
            assert!(s.event_time >= first_allowed, "signal during warm-up at {}", s.event_time);
            let p = p_at[&(s.pair.clone(), s.event_time)];
            assert!(
                (s.score - (2.0 * p - 1.0)).abs() < 1e-12 && (s.confidence - s.score.abs()).abs() < 1e-12
            );
            assert!(s.confidence >= c.min_confidence);
            assert_eq!(s.horizon, c.horizon);
        }
    }
}
