//! Test support shared by every vidgen crate.
//!
//! - [`Golden`]: loads a golden `.safetensors` fixture written by a script in `golden/` and hands its
//!   tensors out as Burn tensors on any backend.
//! - [`assert_close`] with named [`Tolerance`]s: compares whole tensors element by element and, on
//!   failure, prints the worst index, both values and the max abs/rel error.
//! - [`backend_tests!`]: instantiates a test body generic over `B: Backend` for the `flex` CPU
//!   backend always, and for `ndarray`, `cuda` and `wgpu` when this crate's features of those names
//!   are on.
//!
//! - [`fuzz`]: a deterministic mutation fuzzer for file loaders (safetensors and JSON inputs).
//!
//! Rust tests never run Python: fixtures are committed under `golden/fixtures/`.

#![warn(missing_docs)]

mod backends;
mod close;
pub mod fuzz;
mod golden;
mod inputs;

pub use backends::*;
pub use close::{CloseReport, REPORT_ENV, Tolerance, assert_close, assert_close_data, compare};
pub use golden::{Golden, GoldenError, fixture_path, golden};
pub use inputs::{det, flags};
