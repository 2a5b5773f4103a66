//! Quickstart: text to video with the shipped tiny checkpoint (`assets/tiny_stdit.safetensors`,
//! trained by the `train_tiny` example on the moving-shapes dataset).
//!
//! ```text
//! cargo run --release --example quickstart -- --prompt "red square moving right"
//! cargo run --release --example quickstart -- --prompt "blue circle moving up" --out out.gif
//! cargo run --release --example quickstart --features cuda -- --prompt "green square moving left"
//! cargo run --release --example quickstart -- --weights my_weights.safetensors --seed 3
//! ```
//!
//! Flags (all optional, shared by the text-to-video examples: `vidgen::cli::GenerateArgs`):
//! `--prompt`, `--out` (default: `quickstart.gif` in the temp dir), `--steps` (16),
//! `--guidance` (4), `--seed` (0), `--weights`.
//!
//! Prompt → word tokens → learnt text embedding → STDiT sampled with rectified-flow Euler steps
//! and classifier-free guidance → 8 frames of 16×16 RGB (pixel space, no VAE) → GIF, upscaled ×8
//! for viewing. The vocabulary is the dataset's: colours red/green/blue, shapes square/circle,
//! directions left/right/up/down, and "moving". A prompt with any other word is rejected: the
//! example prints the unknown words and the vocabulary and exits with status 1.
//!
//! `--weights` replaces the shipped weights with another checkpoint of the same
//! configuration (e.g. one written by `train_tiny`). If the weights make the sampler produce NaN
//! or ±inf, the example names the step and exits with status 1 instead of writing a GIF.

use burn::tensor::{Tensor, backend::Backend};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;
use vidgen::cli::GenerateArgs;
use vidgen::models::tiny::load_text_to_video;
use vidgen::models::write_gif;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// Nearest-neighbour upsampling for the GIF.
const UPSCALE: usize = 8;

/// `[C, T, H, W]` → `[C, T, H·s, W·s]`.
fn upscale<B2: Backend>(video: Tensor<B2, 4>) -> Tensor<B2, 4> {
    let [c, t, h, w] = video.dims();
    video
        .reshape([c, t, h, 1, w, 1])
        .expand([c, t, h, UPSCALE, w, UPSCALE])
        .reshape([c, t, h * UPSCALE, w * UPSCALE])
}

const USAGE: &str = "usage: quickstart [--prompt TEXT] [--out FILE.gif] [--steps N] \
                     [--guidance W] [--seed S] [--weights FILE.safetensors]";

fn main() -> ExitCode {
    match GenerateArgs::parse(std::env::args().skip(1), true) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => vidgen::cli::usage_error(USAGE, e),
    }
}

fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let prompt = args.prompt_or("red square moving right");
    let out = args.out_or("quickstart.gif");
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let device = Default::default();
    let start = Instant::now();
    let checkpoint = args
        .weights
        .clone()
        .unwrap_or_else(|| assets.join("tiny_stdit.safetensors"));
    let (pipeline, config) =
        load_text_to_video::<B>(assets.join("tiny_stdit.json"), checkpoint, &device)?;
    let options = args.apply(config.generate_options(0));
    let video = pipeline.generate(&[prompt.as_str()], &options, &device)?;
    let [_, c, t, h, w] = video.dims();
    write_gif(upscale(video.reshape([c, t, h, w])), &out, 12)?;
    println!(
        "\"{prompt}\" → {} ({t} frames of {h}×{w}) in {:.2} s",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
