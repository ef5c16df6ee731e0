//! Integration tests: one test binary, one file per behaviour. They run the real binary (or
//! the engine in-process) against the embedded simulated exchange on 127.0.0.1 only.

mod support;

mod config_errors;
mod crash_resume;
mod determinism;
mod end_to_end;
mod exits;
mod external_signals;
mod feed_mock;
mod http;
mod live_resume;
#[cfg(feature = "onnx")]
mod onnx_signal;
mod replay;
mod rest;
mod rest_startup;
mod resume_sources;
mod risk_stop;
mod shorts;
mod supervision;
