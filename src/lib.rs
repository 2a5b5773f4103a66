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
    //! line and exit status 2. The text-to-video examples share their flags: [`GenerateArgs`].
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

    use crate::models::GenerateOptions;
    use std::error::Error;
    use std::fmt::Display;
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::str::FromStr;

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

    /// Wall times of `f` for the benchmark examples: `warmup` untimed calls, then `runs` timed
    /// ones; returns `(median, minimum)` in milliseconds (the median of an even count is the mean
    /// of the middle two).
    ///
    /// # Panics
    /// If `runs` is zero.
    ///
    /// ```
    /// let mut calls = 0;
    /// let (median, min) = vidgen::cli::time_ms(1, 3, || calls += 1);
    /// assert_eq!(calls, 4);
    /// assert!(min <= median);
    /// ```
    pub fn time_ms(warmup: usize, runs: usize, mut f: impl FnMut()) -> (f64, f64) {
        assert!(runs > 0, "time_ms: runs = 0");
        for _ in 0..warmup {
            f();
        }
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let t0 = std::time::Instant::now();
                f();
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let median = if runs % 2 == 1 {
            ms[runs / 2]
        } else {
            (ms[runs / 2 - 1] + ms[runs / 2]) / 2.0
        };
        (median, ms[0])
    }

    /// The flags every text-to-video example takes, each optional:
    /// `--prompt TEXT --out FILE --steps N --guidance W --seed S`, and `--weights FILE` where the
    /// example loads a checkpoint. [`apply`](Self::apply) writes the given ones over an example's
    /// [`GenerateOptions`]; the Open-Sora examples spell the same settings the same way.
    ///
    /// ```
    /// use vidgen::cli::GenerateArgs;
    /// use vidgen::models::GenerateOptions;
    ///
    /// let args = ["--prompt", "red square moving up", "--steps", "8", "--seed", "3"];
    /// let args = GenerateArgs::parse(args.map(String::from), false).unwrap();
    /// assert_eq!(args.prompt_or("a default"), "red square moving up");
    /// let options = args.apply(GenerateOptions::default());
    /// assert_eq!((options.num_steps, options.seed, options.guidance_scale), (8, 3, 7.0));
    ///
    /// let bad = GenerateArgs::parse(["--steps", "many"].map(String::from), false);
    /// assert_eq!(bad.unwrap_err(), "--steps \"many\" is not a valid number");
    /// let no_weights = GenerateArgs::parse(["--weights", "w.safetensors"].map(String::from), false);
    /// assert_eq!(no_weights.unwrap_err(), "unknown argument --weights");
    /// ```
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct GenerateArgs {
        /// `--prompt`.
        pub prompt: Option<String>,
        /// `--out`: where the GIF goes.
        pub out: Option<PathBuf>,
        /// `--steps`: sampler steps.
        pub steps: Option<usize>,
        /// `--guidance`: classifier-free guidance weight.
        pub guidance: Option<f64>,
        /// `--seed`: noise seed.
        pub seed: Option<u64>,
        /// `--weights`: a checkpoint to load instead of the example's own.
        pub weights: Option<PathBuf>,
    }

    impl GenerateArgs {
        /// The usage line of these flags, `--weights` excluded.
        pub const USAGE: &'static str =
            "[--prompt TEXT] [--out FILE.gif] [--steps N] [--guidance W] [--seed S]";

        /// Parses `args` (without the program name); `weights` allows `--weights`.
        ///
        /// # Errors
        /// A message naming an unknown flag, a flag without its value, or a value that is not a
        /// number where one is needed.
        pub fn parse(
            args: impl IntoIterator<Item = String>,
            weights: bool,
        ) -> Result<Self, String> {
            fn num<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
                v.parse()
                    .map_err(|_| format!("{flag} {v:?} is not a valid number"))
            }
            let mut parsed = Self::default();
            let mut args = args.into_iter();
            while let Some(flag) = args.next() {
                let known = ["--prompt", "--out", "--steps", "--guidance", "--seed"];
                let allowed = known.contains(&flag.as_str()) || (weights && flag == "--weights");
                if !allowed {
                    return Err(format!("unknown argument {flag}"));
                }
                let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--prompt" => parsed.prompt = Some(v),
                    "--out" => parsed.out = Some(v.into()),
                    "--steps" => parsed.steps = Some(num(&flag, &v)?),
                    "--guidance" => parsed.guidance = Some(num(&flag, &v)?),
                    "--seed" => parsed.seed = Some(num(&flag, &v)?),
                    _ => parsed.weights = Some(v.into()),
                }
            }
            Ok(parsed)
        }

        /// The prompt, or `default`.
        pub fn prompt_or(&self, default: &str) -> String {
            self.prompt.clone().unwrap_or_else(|| default.to_string())
        }

        /// The output path, or `file_name` in the system's temporary directory.
        pub fn out_or(&self, file_name: &str) -> PathBuf {
            self.out
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(file_name))
        }

        /// `options` with the given steps, guidance and seed written over it.
        pub fn apply(&self, mut options: GenerateOptions) -> GenerateOptions {
            options.num_steps = self.steps.unwrap_or(options.num_steps);
            options.guidance_scale = self.guidance.unwrap_or(options.guidance_scale);
            options.seed = self.seed.unwrap_or(options.seed);
            options
        }
    }
}

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
