//! Open-Sora 1.2 text to video: STDiT3 + its video VAE + precomputed T5 caption embeddings → an
//! animated GIF, with upstream's rectified-flow sampler (`RFLOW.sample`: 30 steps, guidance 7,
//! resolution- and length-aware timestep transform) and a progress bar per step.
//!
//! ```text
//! cargo run --release --example opensora_t2v -- \
//!     --model OpenSora-STDiT-v3 --vae OpenSora-VAE-v1.2/model.safetensors \
//!     --vae-config OpenSora-VAE-v1.2/config.json --captions captions.safetensors \
//!     --height 240 --width 426 --frames 51 --out video.gif
//! cargo run --release --example opensora_t2v -- --tiny-random --out tiny.gif
//! ```
//!
//! - `--model`: the STDiT3 hub directory (`config.json` + `model.safetensors` or shards; f32,
//!   f16 or bf16);
//! - `--vae`, `--vae-config`: the Open-Sora VAE file (`spatial_vae.module.*`, `temporal_vae.*`,
//!   `scale`, `shift`) and its `VideoAutoencoderPipelineConfig` JSON;
//! - `--captions`: `y` `[B, 1, 300, 4096]` and `mask` `[B, 300]` from T5-XXL, e.g. with
//!   transformers (`T5EncoderModel` / `AutoTokenizer` of `DeepFloyd/t5-v1_1-xxl`, `max_length=300`,
//!   `padding="max_length"`, `truncation=True`, `add_special_tokens=True`): save
//!   `last_hidden_state[:, None]` as `y` and `attention_mask` as `mask` with
//!   `safetensors.torch.save_file`;
//! - `--height`, `--width` (pixels, multiples of the VAE's factor × the patch size), `--frames`
//!   (pixel frames; Open-Sora 1.2 uses 1, 51, 102, …), `--fps` (24), `--steps` (30),
//!   `--guidance` (7), `--seed` (0);
//! - `--tiny-random`: the same code on the golden tiny STDiT3 and VAE configs with random
//!   weights and random captions (runs in seconds; the video is noise).
//!
//! Errors name the file and key (exit code 1); bad arguments print the usage (exit code 2).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use vidgen::models::opensora::{Stdit3Prompt, load_stdit3_dir, read_captions, sample_stdit3};
use vidgen::models::stdit::{Stdit, StditConfig};
use vidgen::schedulers::{FiniteCheck, NoiseGenerator, OpenSoraRflowConfig, PixelExtent, Progress};
use vidgen::vae::opensora::{OpenSoraVae, OpenSoraVaeConfig, load_open_sora_vae};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const USAGE: &str = "usage: opensora_t2v (--model DIR --vae V.safetensors --vae-config C.json \
--captions Y.safetensors | --tiny-random) --out video.gif [--height H] [--width W] [--frames F] \
[--fps N] [--steps N] [--guidance G] [--seed S]";

/// The golden tiny models' configs (`golden/gen_opensora_stdit3.py`, `gen_opensora_vae.py`).
const TINY_STDIT3: &str = include_str!("../golden/fixtures/opensora_stdit3_tiny/config.json");
const TINY_VAE: &str = include_str!("../golden/fixtures/opensora_vae_tiny.json");

#[derive(Default)]
struct Args {
    model: Option<PathBuf>,
    vae: Option<PathBuf>,
    vae_config: Option<PathBuf>,
    captions: Option<PathBuf>,
    out: Option<PathBuf>,
    tiny_random: bool,
    height: Option<usize>,
    width: Option<usize>,
    frames: Option<usize>,
    fps: f64,
    steps: usize,
    guidance: f64,
    seed: u64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        fps: 24.0,
        steps: 30,
        guidance: 7.0,
        ..Default::default()
    };
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{flag} {v:?} is not a valid number"))
    }
    while let Some(flag) = args.next() {
        if flag == "--tiny-random" {
            a.tiny_random = true;
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = Some(v.into()),
            "--vae" => a.vae = Some(v.into()),
            "--vae-config" => a.vae_config = Some(v.into()),
            "--captions" => a.captions = Some(v.into()),
            "--out" => a.out = Some(v.into()),
            "--height" => a.height = Some(num(&flag, &v)?),
            "--width" => a.width = Some(num(&flag, &v)?),
            "--frames" => a.frames = Some(num(&flag, &v)?),
            "--fps" => a.fps = num(&flag, &v)?,
            "--steps" => a.steps = num(&flag, &v)?,
            "--guidance" => a.guidance = num(&flag, &v)?,
            "--seed" => a.seed = num(&flag, &v)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.out.is_none() {
        return Err("--out is required".into());
    }
    if !a.tiny_random
        && (a.model.is_none() || a.vae.is_none() || a.vae_config.is_none() || a.captions.is_none())
    {
        return Err(
            "--model, --vae, --vae-config and --captions are required (or --tiny-random)".into(),
        );
    }
    Ok(a)
}

/// Prints `step/steps` with a bar on one line.
fn progress(start: Instant) -> impl FnMut(Progress<'_, B, 5>) {
    move |p| {
        let (step, steps) = (p.step + 1, p.num_steps);
        let filled = 30 * step / steps.max(1);
        eprint!(
            "\r[{}{}] step {step}/{steps} {:.1?}",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            start.elapsed()
        );
        if step == steps {
            eprintln!();
        }
    }
}

type Models = (
    Stdit<B>,
    OpenSoraVae<B>,
    Tensor<B, 3>,
    Option<Tensor<B, 2, burn::tensor::Bool>>,
);

fn load(args: &Args, device: &burn::tensor::Device<B>) -> Result<Models, Box<dyn Error>> {
    if args.tiny_random {
        let (config, _) = StditConfig::from_upstream_config(TINY_STDIT3)?;
        let model = config.init::<B>(device)?;
        let vae = OpenSoraVaeConfig::from_json_str(TINY_VAE, "the tiny VAE config")
            .and_then(|c| c.init::<B>(device))?;
        let y = Tensor::random(
            [1, config.text_max_len, config.d_text],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        return Ok((model, vae, y, None));
    }
    let (model, report) = load_stdit3_dir::<B>(args.model.as_ref().expect("checked"), device)?;
    if !report.unknown_keys.is_empty() {
        eprintln!(
            "note: config keys not understood: {}",
            report.unknown_keys.join(", ")
        );
    }
    let mut vae = OpenSoraVaeConfig::from_json_file(args.vae_config.as_ref().expect("checked"))
        .and_then(|c| c.init::<B>(device))?;
    load_open_sora_vae(&mut vae, args.vae.as_ref().expect("checked"))?;
    let (y, mask) = read_captions::<B>(args.captions.as_ref().expect("checked"), device)?;
    Ok((model, vae, y, mask))
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let device = Default::default();
    let start = Instant::now();
    let (model, vae, y, mask) = load(args, &device)?;
    let factor = vae.spatial_factor();
    let (height, width, frames) = if args.tiny_random {
        (
            args.height.unwrap_or(8 * factor),
            args.width.unwrap_or(12 * factor),
            args.frames.unwrap_or(17),
        )
    } else {
        (
            args.height.unwrap_or(240),
            args.width.unwrap_or(426),
            args.frames.unwrap_or(51),
        )
    };
    if height % factor != 0 || width % factor != 0 || height == 0 || width == 0 || frames == 0 {
        return Err(format!(
            "--height {height} and --width {width} must be positive multiples of the VAE's \
             spatial factor {factor}, and --frames positive"
        )
        .into());
    }
    eprintln!("loaded in {:.2?}", start.elapsed());
    let batch = y.dims()[0];
    let shape = [
        batch,
        model.in_channels(),
        vae.latent_frames(frames),
        height / factor,
        width / factor,
    ];
    let z = NoiseGenerator::seed_from_u64(args.seed).normal::<B, 5>(shape, &device);
    let sampler = OpenSoraRflowConfig {
        num_sampling_steps: args.steps,
        cfg_scale: args.guidance,
        ..Default::default()
    }
    .init()?;
    let prompt = Stdit3Prompt {
        y,
        mask,
        fps: Tensor::full([batch], args.fps, &device),
        extent: PixelExtent::uniform(batch, height, width, frames),
    };
    let z = sample_stdit3(
        &model,
        &sampler,
        z,
        &prompt,
        progress(Instant::now()),
        FiniteCheck::EveryStep,
    )?;
    let video = vae.decode(z, frames);
    let out = args.out.as_ref().expect("checked");
    let [_, c, t, h, w] = video.dims();
    let first = video.narrow(0, 0, 1).reshape([c, t, h, w]).clamp(-1.0, 1.0);
    let delay = (100.0 / args.fps).round().clamp(1.0, 100.0) as u16;
    vidgen::models::write_gif(first, out, delay)?;
    println!(
        "{} ({t} frames of {h}×{w}, {:.2?})",
        out.display(),
        start.elapsed()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(message) => vidgen::cli::usage_error(USAGE, message),
    }
}
