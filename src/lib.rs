//! # vidgen
//!
//! Backend-generic model components for video generation, built on [Burn](https://burn.dev).
//! This facade re-exports each vidgen crate as a module and owns the runnable examples, the
//! cross-crate tests and the benches.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`nn`] | `vidgen-nn` | timestep embeddings, adaLN, MLPs, patchify, positional embeddings, RoPE, QK-norm |
//! | [`schedulers`] | `vidgen-schedulers` | DDPM/DDIM, EDM (+ Snap Video input scaling), rectified flow, guidance |
//! | [`attention`] | `vidgen-attention` | full, spatial-temporal, Swin/TESA window and retention attention |
//! | [`ssm`] | `vidgen-ssm` | Mamba2 (chunked SSD, recurrent step), bidirectional scans, video scan orders |
//! | [`vae`] | `vidgen-vae` | diffusers-compatible 2D KL-VAE, causal 3D video VAE (streaming, tiling), VQ/FSQ/LFQ |
//! | [`quant`] | `vidgen-quant` | uniform quantization, fake-quant, post-training int8/int4, distillation losses |
//! | [`models`] | `vidgen-models` | STDiT, LinGen-style DiT, Snap Video FIT, FlashVideo RetNet; GIF output, checkpoints |
//!
//! [`cli`] holds what the runnable examples share: ending `main` with an exit code and printing
//! errors with their `Display` text.
//!
//! Pick a backend with a cargo feature: `flex` (default CPU), `ndarray`, `cuda`, `wgpu`, and
//! `autodiff` for training.
//!
//! ```
//! use vidgen::nn::{PatchEmbed3dConfig, unpatchify_3d};
//! use burn::tensor::Tensor;
//!
//! type B = burn::backend::Flex;
//! let device = Default::default();
//! let embed = PatchEmbed3dConfig::new(4, 32).init::<B>(&device)?;
//! let latent = Tensor::<B, 5>::zeros([1, 4, 2, 8, 8], &device);
//! let tokens = embed.forward(latent);
//! assert_eq!(tokens.dims(), [1, 2 * 4 * 4, 32]);
//! # Ok::<(), vidgen::nn::NnError>(())
//! ```

#![warn(missing_docs)]

pub use burn;
pub use vidgen_attention as attention;
pub use vidgen_models as models;
pub use vidgen_nn as nn;
pub use vidgen_quant as quant;
pub use vidgen_schedulers as schedulers;
pub use vidgen_ssm as ssm;
pub use vidgen_vae as vae;

pub mod cli {
    //! What the runnable examples share at the command line.
    //!
    //! Each example's `main` returns [`ExitCode`] and hands its fallible body to [`report`], which
    //! prints an error with its `Display` text (and the chain of its sources), never `Debug`. An
    //! example that parses arguments answers bad ones with [`usage_error`]: the message, the usage
    //! line and exit status 2.
    //!
    //! ```no_run
    //! use std::process::ExitCode;
    //!
    //! fn run() -> Result<(), Box<dyn std::error::Error>> {
    //!     let out = std::env::args().nth(1).unwrap_or_else(|| "out.txt".into());
    //!     std::fs::write(&out, "hello").map_err(|e| format!("cannot write {out}: {e}"))?;
    //!     Ok(())
    //! }
    //!
    //! fn main() -> ExitCode {
    //!     vidgen::cli::report(run())
    //! }
    //! ```

    use std::error::Error;
    use std::fmt::Display;
    use std::process::ExitCode;

    /// Turns the result of an example's body into its exit code.
    ///
    /// `Ok` gives [`ExitCode::SUCCESS`]. An error is printed to stderr as `error: {e}` with its
    /// `Display` text, followed by one `  caused by: {s}` line for each error in its
    /// [`Error::source`] chain, and gives [`ExitCode::FAILURE`].
    ///
    /// ```
    /// use std::process::ExitCode;
    /// use vidgen::cli::report;
    ///
    /// assert_eq!(report(Ok(())), ExitCode::SUCCESS);
    /// assert_eq!(report(Err("no such file".into())), ExitCode::FAILURE);
    /// ```
    pub fn report(result: Result<(), Box<dyn Error>>) -> ExitCode {
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                let mut source = e.source();
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
                ExitCode::FAILURE
            }
        }
    }

    /// Reports bad command-line arguments: prints `error: {message}` and then `usage` to stderr,
    /// and gives exit status 2.
    ///
    /// ```
    /// use std::process::ExitCode;
    /// use vidgen::cli::usage_error;
    ///
    /// let code = usage_error("usage: demo FILE", "FILE is required");
    /// assert_eq!(code, ExitCode::from(2));
    /// ```
    pub fn usage_error(usage: &str, message: impl Display) -> ExitCode {
        eprintln!("error: {message}\n{usage}");
        ExitCode::from(2)
    }
}

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
