//! Open-Sora 1.2's sampling loop (upstream `RFLOW.sample`) on its STDiT3, file to file: the
//! same initial noise and caption embeddings in, the same final latent out.
//!
//! ```text
//! cargo run --release --example opensora_sample -- \
//!     --config golden/fixtures/opensora_stdit3_tiny/config.json \
//!     --checkpoint golden/fixtures/opensora_stdit3_tiny/model.safetensors \
//!     --inputs golden/fixtures/opensora_sample_cases.safetensors --out O.safetensors \
//!     --steps 5 --guidance 7
//! ```
//!
//! - `--config`: the model's hub `config.json` (Open-Sora's `STDiT3Config`, as published with
//!   `hpcai-tech/OpenSora-STDiT-v3`); keys it does not know are listed, not fatal;
//! - `--checkpoint`: its `model.safetensors` (f32, f16 or bf16), a
//!   `model.safetensors.index.json` of shards, or the hub directory holding either;
//! - `--inputs`: a `.safetensors` file with `z` `[B, C, T, H, W]` (the initial noise), `y`
//!   `[B, 1, N, C_cap]` (T5 caption embeddings), `mask` `[B, N]` (int; nonzero = valid token),
//!   and `height`, `width` (pixels), `num_frames` (pixel frames, int) and `fps`, all `[B]`;
//! - `--out`: receives `z`, the final latent `[B, C, T, H, W]` (f32);
//! - `--steps`, `--guidance`: upstream's `num_sampling_steps` and `cfg_scale` (defaults 30 and
//!   7, its inference config). The resolution- and length-aware timestep transform is on, as in
//!   upstream's inference configs; the null caption is the checkpoint's `y_embedding`.
//!
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

const USAGE: &str = "usage: opensora_sample --config C.json --checkpoint M.safetensors \
--inputs I.safetensors --out O.safetensors [--steps N] [--guidance G]";

struct Args {
    config: PathBuf,
    checkpoint: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
    steps: usize,
    guidance: f64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut config, mut checkpoint, mut inputs, mut out) = (None, None, None, None);
    let (mut steps, mut guidance) = (30, 7.0);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--steps" => {
                steps = value
                    .parse()
                    .map_err(|_| format!("--steps {value:?} is not a whole number"))?;
                continue;
            }
            "--guidance" => {
                guidance = value
                    .parse()
                    .map_err(|_| format!("--guidance {value:?} is not a number"))?;
                continue;
            }
            "--config" => &mut config,
            "--checkpoint" => &mut checkpoint,
            "--inputs" => &mut inputs,
            "--out" => &mut out,
            other => return Err(format!("unknown argument {other}")),
        };
        *slot = Some(PathBuf::from(value));
    }
    let need = |v: Option<PathBuf>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
    Ok(Args {
        config: need(config, "--config")?,
        checkpoint: need(checkpoint, "--checkpoint")?,
        inputs: need(inputs, "--inputs")?,
        out: need(out, "--out")?,
        steps,
        guidance,
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
    let result = vidgen::models::opensora::sample_files::<B>(
        &args.config,
        &args.checkpoint,
        &args.inputs,
        &args.out,
        args.steps,
        args.guidance,
        |p| eprint!("\rstep {}/{}", p.step + 1, p.num_steps),
        &device,
    );
    eprintln!();
    let summary = result?;
    let unknown = &summary.config_report.unknown_keys;
    if !unknown.is_empty() {
        eprintln!("note: config keys not understood: {}", unknown.join(", "));
    }
    println!(
        "z → {} ({} steps, {} checkpoint file(s), {:.2?})",
        args.out.display(),
        summary.timesteps.len(),
        summary.checkpoint_files.len(),
        start.elapsed()
    );
    Ok(())
}
