//! Open-Sora 1.2's video VAE, file to file: encode a video to the normalised latent and decode it
//! back.
//!
//! ```text
//! cargo run --release --example opensora_vae -- \
//!     --config golden/fixtures/opensora_vae_tiny.json \
//!     --checkpoint golden/fixtures/opensora_vae_tiny.safetensors \
//!     --inputs I.safetensors --out O.safetensors [--sample SEED]
//! ```
//!
//! - `--config`: the pipeline's `config.json` (Open-Sora's `VideoAutoencoderPipelineConfig`, as
//!   published with `hpcai-tech/OpenSora-VAE-v1.2`);
//! - `--checkpoint`: its `model.safetensors` (`scale`, `shift`, `spatial_vae.module.*`,
//!   `temporal_vae.*`);
//! - `--inputs`: a `.safetensors` file with `x` `[B, 3, T, H, W]` in [−1, 1], `H` and `W`
//!   multiples of 8 (of the 2D VAE's factor);
//! - `--out`: receives `z` `[B, 4, T', H/8, W/8]` and `x_rec` `[B, 3, T, H, W]` (f32);
//! - `--sample SEED`: sample both posteriors with noise drawn from `SEED` instead of taking their
//!   means.
//!
//! Data flow: `x` → 2D VAE per frame → temporal VAE per 17-frame piece → `(z − shift)/scale` = `z`
//! → `z·scale + shift` → temporal decode per 5-latent-frame piece → 2D decode per frame = `x_rec`.
//! A malformed file stops the program with an error naming the file and key (exit code 1); bad
//! arguments print the usage (exit code 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const USAGE: &str = "usage: opensora_vae --config C.json --checkpoint V.safetensors \
--inputs I.safetensors --out O.safetensors [--sample SEED]";

struct Args {
    config: PathBuf,
    checkpoint: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
    sample: Option<u64>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut config, mut checkpoint, mut inputs, mut out, mut sample) =
        (None, None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value)),
            "--checkpoint" => checkpoint = Some(PathBuf::from(value)),
            "--inputs" => inputs = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--sample" => {
                let seed = value
                    .parse()
                    .map_err(|_| format!("--sample {value}: not a non-negative integer seed"))?;
                sample = Some(seed);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let need = |v: Option<PathBuf>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
    Ok(Args {
        config: need(config, "--config")?,
        checkpoint: need(checkpoint, "--checkpoint")?,
        inputs: need(inputs, "--inputs")?,
        out: need(out, "--out")?,
        sample,
    })
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(message) => vidgen::cli::usage_error(USAGE, message),
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let start = Instant::now();
    let output = vidgen::vae::opensora::run_files::<B>(
        &args.config,
        &args.checkpoint,
        &args.inputs,
        &args.out,
        args.sample,
        &device,
    )?;
    println!(
        "z {:?}, x_rec {:?} → {} ({:.2?})",
        output.z.dims(),
        output.x_rec.dims(),
        args.out.display(),
        start.elapsed()
    );
    Ok(())
}
