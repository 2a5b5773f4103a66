//! Trains a tiny text-to-video STDiT (d_model 64, depth 2, 4 heads, pixel space 8×16×16 RGB) on
//! the procedural moving-shapes data with rectified flow, through burn-train, on the CPU.
//!
//! ```text
//! cargo run --release --example train_tiny                      # 6000 steps into $TMP/train_tiny
//! cargo run --release --example train_tiny -- 300 out_dir       # steps, output directory
//! cargo run --release --example train_tiny -- 300 out_dir my.json  # and a TinyTrainConfig JSON
//! cargo run --release --example train_tiny -- --resume out_dir  # continue a stopped run
//! cargo run --release --example train_tiny -- --devices 2 300 out_dir  # data parallel
//! cargo run --release --example train_tiny -- --checkpointing 300 out_dir  # activation checkpointing
//! ```
//!
//! Flags, before the other arguments:
//! - `--devices N` trains data-parallel on `N` devices through burn-train's multi-device
//!   strategy: the batch of every step is split evenly between them (it must be divisible by
//!   `N`), the gradients are averaged, and one optimiser step follows: the same weights as one
//!   device up to rounding. On CUDA and wgpu these are GPUs `0..N`; on the CPU the `N` workers
//!   share the one CPU device (a correctness check rather than a speed-up).
//! - `--checkpointing` trains with Burn's balanced activation checkpointing
//!   (`Autodiff<B, BalancedCheckpointing>`: memory-bound intermediate results are recomputed in
//!   the backward pass instead of kept on the tape).
//!
//! Every `checkpoint_every` steps (500 by default) model, optimiser and learning-rate state are
//! written atomically to `out_dir/checkpoint/`; a run that was killed continues with `--resume`
//! from its newest complete checkpoint, to the same weights as an uninterrupted run.
//!
//! A config with `base_checkpoint` and `lora` fine-tunes a trained model with LoRA adapters
//! (base frozen; new colour words get trainable embedding rows), e.g. the yellow fine-tuning of
//! the shipped model, run from the repository root:
//!
//! ```text
//! cargo run --release --example train_tiny -- 600 out_dir assets/tiny_stdit_yellow.json
//! ```
//!
//! and also writes the adapters alone to `adapter.safetensors`.
//!
//! Writes `tiny_stdit.safetensors` (checkpoint, burn-store), `tiny_stdit.json` (its config),
//! `loss.png` (loss curve of the steps run by this invocation) and `sample.gif` ("red square
//! moving right", 16 Euler steps, CFG 4) into the output directory, plus burn-train's logs, then
//! checks every label's motion: one video per label, the centroid of the prompted colour must
//! travel the prompted way.
//!
//! Bad arguments print the usage (exit code 2); a failed run prints its error (exit code 1).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use vidgen::models::tiny::{TinyTrainConfig, check_motion};
use vidgen::models::train::{
    TrainOptions, first_last_means, stored_config, train_with, write_loss_curve_png,
};
use vidgen::models::{save_checkpoint, save_lora, write_gif};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const USAGE: &str = "usage: train_tiny [--devices N] [--checkpointing] [STEPS [OUT_DIR [CONFIG.json]]] | train_tiny [FLAGS] --resume OUT_DIR";

/// The first `n` devices of the backend: GPUs `0..n`, or `n` workers on the one CPU device.
fn devices(n: usize) -> Vec<burn::tensor::Device<B>> {
    #[cfg(feature = "cuda")]
    return (0..n).map(burn::backend::cuda::CudaDevice::new).collect();
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    return (0..n)
        .map(burn::backend::wgpu::WgpuDevice::DiscreteGpu)
        .collect();
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    return vec![Default::default(); n];
}

/// What the command line asks for.
enum Command {
    /// Continue the stopped run in this output directory.
    Resume(PathBuf),
    /// Train `steps` steps into `out`, with the `TinyTrainConfig` JSON at `config_json` if given.
    Train {
        steps: usize,
        out: PathBuf,
        config_json: Option<String>,
    },
}

/// How to train, from the flags before the positional arguments.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// `--devices N`: data-parallel devices.
    devices: usize,
    /// `--checkpointing`: Burn's balanced activation checkpointing.
    checkpointing: bool,
}

/// Parses the arguments into the command and its setup; `None` for `-h` / `--help`.
fn parse_args(mut args: &[String]) -> Result<Option<(Command, Setup)>, String> {
    let mut setup = Setup {
        devices: 1,
        checkpointing: false,
    };
    loop {
        match args.first().map(String::as_str) {
            Some("--devices") => {
                let n = args.get(1).ok_or("--devices needs a count")?;
                setup.devices = n
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or(format!("--devices {n:?}: expected a positive count"))?;
                args = &args[2..];
            }
            Some("--checkpointing") => {
                setup.checkpointing = true;
                args = &args[1..];
            }
            _ => break,
        }
    }
    Ok(parse_command(args)?.map(|command| (command, setup)))
}

/// Parses the arguments after the flags.
fn parse_command(args: &[String]) -> Result<Option<Command>, String> {
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => Ok(None),
        Some("--resume") => {
            let dir = args.get(1).ok_or("--resume needs the output directory")?;
            Ok(Some(Command::Resume(dir.into())))
        }
        _ => {
            let steps: usize = match args.first() {
                Some(s) => s
                    .parse()
                    .map_err(|e| format!("STEPS = {s:?} is not a count: {e}"))?,
                None => 6000,
            };
            let out: PathBuf = args
                .get(1)
                .map(Into::into)
                .unwrap_or_else(|| std::env::temp_dir().join("train_tiny"));
            Ok(Some(Command::Train {
                steps,
                out,
                config_json: args.get(2).cloned(),
            }))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Some((command, setup))) => vidgen::cli::report(run(command, setup)),
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(message) => vidgen::cli::usage_error(USAGE, message),
    }
}

fn run(command: Command, setup: Setup) -> Result<(), Box<dyn std::error::Error>> {
    let (config, out, resume) = match command {
        Command::Resume(dir) => (stored_config(&dir)?, dir, true),
        Command::Train {
            steps,
            out,
            config_json,
        } => {
            let config = match config_json {
                Some(path) => TinyTrainConfig::load(&path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?
                    .with_steps(steps),
                None => TinyTrainConfig::tiny(steps),
            };
            (config, out, false)
        }
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let devices = devices(setup.devices);
    let device = devices.first().cloned().ok_or("no device")?;
    println!(
        "{} {} steps of {} videos on {} device(s){} in {}",
        if resume { "resuming" } else { "training" },
        config.steps,
        config.batch_size,
        setup.devices,
        if setup.checkpointing {
            ", balanced activation checkpointing"
        } else {
            ""
        },
        out.display()
    );
    let start = Instant::now();
    let options = TrainOptions {
        resume,
        ..Default::default()
    };
    let (model, losses) = if setup.checkpointing {
        train_with::<Autodiff<B, BalancedCheckpointing>>(&config, &devices, &out, &options)?
    } else {
        train_with::<Autodiff<B>>(&config, &devices, &out, &options)?
    };
    if losses.is_empty() {
        println!("the run was already complete: nothing left to train");
    } else {
        let (first, last) = first_last_means(&losses, 0.1);
        println!(
            "trained {} steps in {:.1} s; loss: first 10 % {first:.4}, last 10 % {last:.4}",
            losses.len(),
            start.elapsed().as_secs_f64()
        );
        write_loss_curve_png(&losses, out.join("loss.png"), [480, 240])?;
    }
    save_checkpoint(&model, out.join("tiny_stdit.safetensors"))?;
    if config.lora.is_some() {
        let adapter = out.join("adapter.safetensors");
        let tensors = save_lora(&model, &adapter)?;
        println!(
            "adapters: {tensors} tensors in {} ({} bytes)",
            adapter.display(),
            std::fs::metadata(&adapter)?.len()
        );
    }
    let config_path = out.join("tiny_stdit.json");
    config
        .save(&config_path)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;

    let pipeline = config.pipeline(model)?;
    let options = config.generate_options(0);
    let video = pipeline.generate(&["red square moving right"], &options, &device)?;
    let [_, c, t, h, w] = video.dims();
    let gif_path = out.join("sample.gif");
    write_gif(video.reshape([c, t, h, w]), &gif_path, 12)?;
    println!("wrote {}", out.display());

    let checks = check_motion(&pipeline, &config, 7, &device)?;
    for check in &checks {
        println!(
            "{:<28} along {:+5.2} across {:+5.2} min pixels {:>3} {}",
            check.label,
            check.motion.along,
            check.motion.across,
            check.motion.min_pixels(),
            if check.follows { "ok" } else { "--" }
        );
    }
    let ok = checks.iter().filter(|c| c.follows).count();
    println!(
        "motion check: {ok}/{} labels move as prompted (travel {:.0} px)",
        checks.len(),
        config.data.travel()
    );
    Ok(())
}
