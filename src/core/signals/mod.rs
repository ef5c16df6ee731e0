//! Signal models (pure) and the plug-in trait. OWNER: signals helper.
//!
//! Interface contract (used by the SignalHost actor, the engine and examples/custom_signal.rs).

use serde::{Deserialize, Serialize};

use super::decisions::Signal;
use super::market::MarketEvent;
use super::validate::Issues;

/// A signal model: reads market events in order, sometimes says something.
///
/// Implement this to plug in your own signal; name it in `signals.enabled` (built-ins) or
/// register it with the engine builder (your own). `seq` is the event's global sequence
/// number; models must only use data up to and including this event (no look-ahead).
pub trait SignalModel: Send {
    /// Source name, used in the journal and for weights (e.g. `ema_cross`).
    fn name(&self) -> &str;
    /// Called for every market event, in exchange order.
    fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal>;
}

/// `signals.*`: which built-in models run and their parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Built-in models to run, by name (`ema_cross`, …).
    pub enabled: Vec<String>,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig { enabled: vec!["ema_cross".into()] }
    }
}

impl SignalsConfig {
    /// Adds a problem for every out-of-range key (`signals.…`).
    pub fn validate(&self, _is: &mut Issues) {}
    /// The enabled built-in models, one instance per name.
    pub fn build(&self) -> Result<Vec<Box<dyn SignalModel>>, String> {
        todo!()
    }
}
