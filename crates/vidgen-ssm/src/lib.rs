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

pub use bidirectional::{BiMamba2, BiMamba2Config, BiMerge};
pub use error::{ConfigError, SsmError};
pub use flops::{attention_flops, bimamba2_flops, mamba2_flops};
pub use mamba2::{GatedRmsNorm, Mamba2, Mamba2Cache, Mamba2Config};
pub use scan_order::{
    AdjacencyCubes, Axis, ReviewTokens, ReviewTokensConfig, RotaryMajorScan, ScanOrder, ScanPlan,
    adjacency_curve, adjacency_distance,
};
pub use ssd::{SsdOutput, segsum, ssd_chunked, ssd_reference, ssd_step};
pub use vidgen_nn::{Kernel, WithKernel};
