//! Diffusion schedulers for vidgen, with diffusers' and k-diffusion's numbers and fewer ways to
//! misuse them:
//!
//! - **explicit step index** — `step(i, model_output, sample, noise)`, no hidden counter;
//! - **schedule math in f64 on the host** — timesteps, alphas and sigmas are `Vec<f64>`; tensors
//!   only see per-step scalars, so no bf16/f32 timestep drift and no float-equality lookups;
//! - **caller-supplied noise** — passed in, or drawn from a seeded [`NoiseGenerator`];
//! - **any rank** — samples and model outputs are `Tensor<B, D>`;
//! - **one object for training and sampling** — each scheduler also builds [`TrainingBatch`]es
//!   (noisy input, model time, target, loss weight).
//!
//! | module | what |
//! |---|---|
//! | [`betas`] | beta schedules (linear, scaled_linear, squaredcos_cap_v2, sigmoid, trained), zero-SNR rescale |
//! | [`ddpm`] | DDPM (Ho et al. 2020) |
//! | [`ddim`] | DDIM (Song et al. 2021) |
//! | [`edm`] | EDM (Karras et al. 2022) and Snap Video's input-scaled variant |
//! | [`rectified_flow`] | rectified flow (Open-Sora 1.2; diffusers' FlowMatchEulerDiscrete) |
//! | [`guidance`] | classifier-free guidance with rescale |
//! | [`config`] | JSON configs, diffusers `scheduler_config.json` loading |

#![warn(missing_docs)]

pub mod betas;
pub mod common;
pub mod config;
pub mod ddim;
pub mod ddpm;
pub mod edm;
pub mod error;
pub mod finite;
pub mod guidance;
pub mod noise;
pub mod rectified_flow;

pub use common::{
    PredictionType, Progress, Sampler, SamplingLoop, TimestepSpacing, TrainingBatch, sample,
    try_sample,
};
pub use config::{ConfigEnum, Loaded, SchedulerConfig};
pub use ddim::{Ddim, DdimConfig};
pub use ddpm::{Ddpm, DdpmConfig, DiscreteNoising, VarianceType};
pub use edm::{
    Churn, Edm, EdmConfig, EdmEulerConfig, EdmEulerScheduler, EdmSampler, EdmSolver,
    EulerDiscreteConfig, EulerDiscreteScheduler,
};
pub use error::SchedulerError;
pub use finite::FiniteCheck;
pub use guidance::ClassifierFreeGuidance;
pub use noise::{FixedNoise, NoiseGenerator, NoiseSource};
pub use rectified_flow::{
    FlowTrainingConfig, FrameMask, MaskedTrainingBatch, OpenSoraRflow, OpenSoraRflowConfig,
    PixelExtent, RectifiedFlow, RectifiedFlowConfig, TimeSampling, TimeShiftType, TransformFrames,
};
