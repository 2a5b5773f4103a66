//! FlashVideo end to end with random weights: a RetNet over VQ tokens generates key frames token by
//! token in its recurrent form, fills the frames between them with redundancy-free interpolation,
//! and a random VQ codebook of RGB patches turns the tokens into a GIF.
//!
//! ```text
//! cargo run --example flashvideo_retnet                            # CPU (flex)
//! cargo run --example flashvideo_retnet -- --prompt "a blue circle moving left" --out fv.gif
//! cargo run --release --example flashvideo_retnet --features cuda   # NVIDIA GPU
//! ```
//!
//! Flags (optional, those of `vidgen::cli::GenerateArgs` that apply to token-by-token sampling):
//! `--prompt`, `--out`, `--seed` (2024).
//!
//! Data flow: prompt → word ids → `[text][serial 1][key frame 1]…[text][serial K][key frame K]`
//! sampled token by token (constant-size retention state) → per key-frame pair: different /
//! unstable / stable / inheritable tokens, inheritable ones copied, the rest sampled with serial
//! numbers `1, m+2, 2..=m+1` → frames in display order → codebook lookup of `3·p·p` RGB patches →
//! `[3, T, H, W]` → GIF. The weights are random: the result shows that the pipeline runs and has
//! the right shape, not what a trained model would draw. A random model's key frames differ almost
//! everywhere (nothing to inherit), so the example also interpolates between two given key frames
//! that differ in a 2×2 block, where the skipped inheritable tokens show in the call count.

use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use std::process::ExitCode;
use std::time::Instant;
use vidgen::cli::GenerateArgs;
use vidgen::models::flashvideo::{
    Decoder, FlashVideoConfig, Sampling, TokenClass, Video, classify_tokens, decode_video,
    generate_video, interpolate,
};
use vidgen::models::{WordTokenizer, write_gif};
use vidgen::vae::VectorQuantizerConfig;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// Visual codebook size.
const N_CODES: usize = 64;
/// Token grid of a frame and pixels per token side.
const GRID: [usize; 2] = [6, 8];
const PATCH: usize = 4;
/// Frames: key frames 0, 4, 8 and three interpolated frames between each pair.
const N_FRAMES: usize = 9;
const STRIDE: usize = 4;

const USAGE: &str = "usage: flashvideo_retnet [--prompt TEXT] [--out FILE.gif] [--seed S]";

fn main() -> ExitCode {
    match GenerateArgs::parse(std::env::args().skip(1), false) {
        Ok(args) if args.steps.is_some() || args.guidance.is_some() => vidgen::cli::usage_error(
            USAGE,
            "FlashVideo samples token by token: --steps and --guidance do not apply",
        ),
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => vidgen::cli::usage_error(USAGE, e),
    }
}

fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let words = [
        "a", "red", "green", "blue", "square", "circle", "moving", "left", "right",
    ];
    let tokenizer = WordTokenizer::new(&words, 8)?;
    let prompt = args.prompt_or("a red square moving right");
    let (ids, len) = tokenizer.try_encode(&prompt)?;
    let text = &ids[..len];

    let config = FlashVideoConfig::new(N_CODES, tokenizer.vocab_size(), 64, 4, 2, GRID, N_FRAMES)
        .with_key_frame_stride(STRIDE)
        .with_chunk_size(32);
    let key_model = config.init::<B>(&device)?;
    let interp_model = config.init::<B>(&device)?;
    println!("backend: {}", std::any::type_name::<B>());
    println!("prompt {prompt:?} → text ids {text:?}");

    // A random codebook of 3·p·p RGB patch values in [−1, 1] (the tokenizer's decoder stand-in).
    let mut vq = VectorQuantizerConfig::new(N_CODES, 3 * PATCH * PATCH).init::<B>(&device)?;
    let codebook = Tensor::<B, 2>::random(
        [N_CODES, 3 * PATCH * PATCH],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    vq.embedding = Param::from_tensor(codebook);

    let start = Instant::now();
    let sampling = Sampling::Seeded {
        seed: args.seed.unwrap_or(2024),
        temperature: 1.0,
    };
    let video = generate_video(&key_model, &interp_model, text, sampling, 7, &device)?;
    let elapsed = start.elapsed();
    print_stats(&video, elapsed.as_secs_f64());

    let rgb = decode_video(&vq, &video.frames, GRID, PATCH, &device)?;
    println!("video [C, T, H, W] = {:?}", rgb.dims());
    let path = args.out_or("flashvideo_retnet.gif");
    write_gif::<B>(rgb, &path, 12)?;
    println!("wrote {}", path.display());

    // A random model's key frames differ almost everywhere, so the pipeline above inherits
    // little. Interpolating between two given key frames that differ in a 2×2 block shows the skip.
    let key_a = video.frames[0].clone();
    let mut key_b = key_a.clone();
    for (r, c) in [(2, 3), (2, 4), (3, 3), (3, 4)] {
        key_b[r * GRID[1] + c] = (key_a[r * GRID[1] + c] + 1) % N_CODES;
    }
    let plan = classify_tokens(&key_a, &key_b, GRID, 1, 0.2, 11);
    let mut dec = Decoder::new(&interp_model, sampling, &device);
    let frames = interpolate(&mut dec, text, &key_a, &key_b, STRIDE - 1, &plan)?;
    println!(
        "given key frames: {} frames interpolated with {} model calls for {} tokens \
         ({} different, {} unstable, {} inheritable per frame)",
        frames.len(),
        dec.stats.model_calls,
        frames.len() * GRID[0] * GRID[1],
        plan.count(TokenClass::Different),
        plan.count(TokenClass::Unstable),
        plan.count(TokenClass::Inheritable)
    );
    Ok(())
}

/// Prints the generated video's frame count, timing, model calls and token classes per pair.
fn print_stats(video: &Video, seconds: f64) {
    let tpf = GRID[0] * GRID[1];
    let k = video.key_frame_stats;
    let s = video.interpolation_stats;
    println!(
        "{} frames of {tpf} tokens in {:.2} s: key frames {} model calls; interpolation {} calls \
         for {} tokens ({} inherited)",
        video.frames.len(),
        seconds,
        k.model_calls,
        s.model_calls,
        s.sampled_tokens + s.inherited_tokens,
        s.inherited_tokens
    );
    for (p, plan) in video.plans.iter().enumerate() {
        println!(
            "pair {p}: different {}, unstable {}, stable {}, inheritable {}",
            plan.count(TokenClass::Different),
            plan.count(TokenClass::Unstable),
            plan.count(TokenClass::Stable),
            plan.count(TokenClass::Inheritable)
        );
    }
}
