//! Quickstart: text to video with the shipped tiny checkpoint (`assets/tiny_stdit.safetensors`,
//! trained by the `train_tiny` example on the moving-shapes dataset).
//!
//! ```text
//! cargo run --release --example quickstart -- "red square moving right"
//! cargo run --release --example quickstart -- "blue circle moving up" out.gif
//! cargo run --release --example quickstart --features cuda -- "green square moving left"
//! cargo run --release --example quickstart -- "red circle moving up" out.gif my_weights.safetensors
//! ```
//!
//! Prompt → word tokens → learnt text embedding → STDiT sampled with rectified-flow Euler steps
//! and classifier-free guidance → 8 frames of 16×16 RGB (pixel space, no VAE) → GIF, upscaled ×8
//! for viewing. The vocabulary is the dataset's: colours red/green/blue, shapes square/circle,
//! directions left/right/up/down, and "moving". A prompt with any other word is rejected: the
//! example prints the unknown words and the vocabulary and exits with status 1.
//!
//! A third argument replaces the shipped weights with another checkpoint of the same
//! configuration (e.g. one written by `train_tiny`). If the weights make the sampler produce NaN
//! or ±inf, the example names the step and exits with status 1 instead of writing a GIF.

use burn::tensor::{Tensor, backend::Backend};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;
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

fn main() -> ExitCode {
    vidgen::cli::report(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prompt = args
        .first()
        .cloned()
        .unwrap_or_else(|| "red square moving right".into());
    let out = args
        .get(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("quickstart.gif"));
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let device = Default::default();
    let start = Instant::now();
    let checkpoint = args
        .get(2)
        .map(Into::into)
        .unwrap_or_else(|| assets.join("tiny_stdit.safetensors"));
    let (pipeline, config) =
        load_text_to_video::<B>(assets.join("tiny_stdit.json"), checkpoint, &device)?;
    let options = config.generate_options(0);
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
