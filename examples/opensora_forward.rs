//! One forward pass of Open-Sora 1.2's STDiT3, file to file, with upstream's arguments.
//!
//! ```text
//! cargo run --release --example opensora_forward -- \
//!     --config golden/fixtures/opensora_stdit3_tiny/config.json \
//!     --checkpoint golden/fixtures/opensora_stdit3_tiny/model.safetensors \
//!     --inputs I.safetensors --out O.safetensors
//! ```
//!
//! - `--config`: the model's hub `config.json` (Open-Sora's `STDiT3Config`, as published with
//!   `hpcai-tech/OpenSora-STDiT-v3`); keys it does not know are listed, not fatal;
//! - `--checkpoint`: its `model.safetensors` (f32, f16 or bf16), a
//!   `model.safetensors.index.json` of shards, or the hub directory holding either;
//! - `--inputs`: a `.safetensors` file with upstream `STDiT3.forward`'s arguments by name: `x`
//!   `[B, C, T, H, W]`, `timestep` `[B]`, `y` `[B, 1, N, C_cap]`, `fps` `[B]`, and optionally
//!   `mask` `[B, N]` (nonzero = valid caption token), `x_mask` `[B, T]` (int or bool; zero =
//!   conditioning frame), `height` and `width` `[B]` (pixels; they scale the positional
//!   embedding);
//! - `--out`: receives `out` `[B, C_out, T, H, W]` (f32; with `pred_sigma` all `2·C` channels,
//!   the velocity first).
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

const USAGE: &str = "usage: opensora_forward --config C.json --checkpoint M.safetensors \
--inputs I.safetensors --out O.safetensors";

struct Args {
    config: PathBuf,
    checkpoint: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut config, mut checkpoint, mut inputs, mut out) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
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
    let summary = vidgen::models::opensora::forward_files::<B>(
        &args.config,
        &args.checkpoint,
        &args.inputs,
        &args.out,
        &device,
    )?;
    let unknown = &summary.config_report.unknown_keys;
    if !unknown.is_empty() {
        eprintln!("note: config keys not understood: {}", unknown.join(", "));
    }
    println!(
        "out {:?} → {} ({} checkpoint file(s), {:.2?})",
        summary.out_shape,
        args.out.display(),
        summary.checkpoint_files.len(),
        start.elapsed()
    );
    Ok(())
}
