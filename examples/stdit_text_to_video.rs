//! Text-to-video with a tiny, randomly initialised Open-Sora-style STDiT: prompt → word tokens →
//! text features → rectified-flow Euler sampling with classifier-free guidance → latent video →
//! pixels → GIF.
//!
//! ```text
//! cargo run --example stdit_text_to_video                                   # CPU (flex)
//! cargo run --example stdit_text_to_video -- --prompt "blue circle moving left" --out out.gif
//! cargo run --release --example stdit_text_to_video --features cuda         # NVIDIA GPU
//! ```
//!
//! Flags (all optional, shared by the text-to-video examples: `vidgen::cli::GenerateArgs`):
//! `--prompt`, `--out`, `--steps`, `--guidance`, `--seed`.
//!
//! The weights are random, so the video is structured noise: the example shows the pipeline runs
//! end to end and produces a correctly shaped video, nothing about quality. The latent is mapped
//! to RGB directly, without a VAE decoder: its first three channels, squashed by `tanh`, become
//! the colours, upsampled ×4 (nearest) for viewing (a random VAE would only add random weights).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use std::process::ExitCode;
use std::time::Instant;
use vidgen::cli::GenerateArgs;
use vidgen::models::GenerateOptions;
use vidgen::models::stdit::{StditConfig, TextToVideo};
use vidgen::models::text::{TextEmbedderConfig, WordTokenizer};
use vidgen::models::write_gif;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// Words the toy tokenizer knows.
const VOCAB: &[&str] = &[
    "red", "green", "blue", "square", "circle", "moving", "left", "right", "up", "down",
];
/// Latent `[C, T, H, W]` per video.
const LATENT: [usize; 4] = [4, 8, 8, 8];
/// Euler steps.
const STEPS: usize = 10;
/// Nearest-neighbour upsampling of the latent grid for the GIF.
const UPSCALE: usize = 4;

/// Latent `[C, T, H, W]` → RGB video `[3, T, H·s, W·s]` in `[-1, 1]`.
fn latent_to_rgb<B2: Backend>(latent: Tensor<B2, 4>) -> Tensor<B2, 4> {
    let [_, t, h, w] = latent.dims();
    let rgb = latent.narrow(0, 0, 3).tanh();
    rgb.reshape([3, t, h, 1, w, 1])
        .expand([3, t, h, UPSCALE, w, UPSCALE])
        .reshape([3, t, h * UPSCALE, w * UPSCALE])
}

fn main() -> ExitCode {
    match GenerateArgs::parse(std::env::args().skip(1), false) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => {
            let usage = format!("usage: stdit_text_to_video {}", GenerateArgs::USAGE);
            vidgen::cli::usage_error(&usage, e)
        }
    }
}

fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let prompt = args.prompt_or("red square moving right");
    let out = args.out_or("stdit_text_to_video.gif");
    let device = Default::default();

    let config = StditConfig::new(64, 4, 2, 32)
        .with_in_channels(LATENT[0])
        .with_frequency_dim(64)
        .with_text_max_len(16);
    let model = config.init::<B>(&device)?;
    let tokenizer = WordTokenizer::new(VOCAB, 8)?;
    let embedder = TextEmbedderConfig::new(tokenizer.vocab_size(), config.d_text).init(&device)?;
    let pipeline = TextToVideo::new(model, tokenizer, embedder)?;

    let options = args.apply(GenerateOptions {
        latent_size: LATENT,
        num_steps: STEPS,
        guidance_scale: 7.0,
        fps: 8.0,
        seed: 42,
        ..Default::default()
    });
    let start = Instant::now();
    let latent = pipeline.generate(&[prompt.as_str()], &options, &device)?;
    println!(
        "prompt {prompt:?}: latent {:?} after {} guided Euler steps in {:.2?}",
        latent.dims(),
        options.num_steps,
        start.elapsed()
    );
    let [_, c, t, h, w] = latent.dims();
    let video = latent_to_rgb(latent.reshape([c, t, h, w]));
    write_gif(video, &out, 12)?;
    println!("wrote {}", out.display());
    Ok(())
}
