//! State-space layers for video generation, generic over `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`ssd`] | Mamba2's SSD scan: chunked algorithm for any length, and the per-timestep recurrence reference |
//! | [`mamba2`] | the Mamba2 layer (state-spaces/mamba key names), inference cache, prefill and step |
//! | [`bidirectional`] | forward + reversed Mamba2 scans merged by sum, mean or concat-then-linear (LinGen) |
//! | [`scan_order`] | video token scan orders as invertible permutations, LinGen's Rotary-Major Scan, review tokens, the adjacency metric `d_k` |
//! | [`flops`] | FLOPs of (bi)Mamba2 and full attention (LinGen supplement eqs. 1–3) |

#![warn(missing_docs)]

pub mod bidirectional;
pub mod error;
pub mod flops;
pub mod mamba2;
pub mod scan_order;
pub mod ssd;

pub use error::SsmError;
