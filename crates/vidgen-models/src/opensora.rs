//! Open-Sora 1.2's published STDiT3 checkpoints (hub `hpcai-tech/OpenSora-STDiT-v3`) in
//! [`Stdit`](crate::stdit::Stdit): the `STDiT3Config` → [`StditConfig`](crate::stdit::StditConfig)
//! conversion ([`StditConfig::from_upstream_config`](crate::stdit::StditConfig::from_upstream_config)),
//! weights by upstream key names ([`STDIT3_KEY_MAP`], [`load_stdit3_weights`],
//! [`load_stdit3_dir`]), and a forward over safetensors files holding upstream's forward
//! arguments ([`forward_files`]), and upstream's rectified-flow sampling loop ([`sample_stdit3`],
//! [`sample_files`]).
//!
//! ```no_run
//! use burn::backend::Flex;
//! use vidgen_models::opensora::load_stdit3_dir;
//!
//! let device = Default::default();
//! let (model, report) = load_stdit3_dir::<Flex>("OpenSora-STDiT-v3", &device)?;
//! assert!(report.unknown_keys.is_empty());
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```

mod config;
mod io;
mod json;
mod load;
mod sample;

pub use config::{UPSTREAM_MAX_FRAMES, UpstreamConfigReport};
pub use io::{
    ForwardSummary, forward_files, read_captions, read_forward_inputs, write_safetensors,
};
pub use load::{STDIT3_KEY_MAP, load_stdit3_dir, load_stdit3_weights, stdit3_checkpoint_files};
pub use sample::{SampleSummary, Stdit3Prompt, sample_files, sample_stdit3};
