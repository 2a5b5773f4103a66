//! Snap Video's FIT sampled with input-scaled EDM and latent self-conditioning: a tiny random
//! model turns a prompt into a short clip and writes it as a GIF.
//!
//! ```text
//! cargo run --release --example snap_fit_edm                         # CPU (flex), temp dir
//! cargo run --release --example snap_fit_edm -- --prompt "a blue circle moving left" --out fit.gif
//! cargo run --release --example snap_fit_edm --features cuda         # NVIDIA GPU
//! ```
//!
//! Flags (all optional, shared by the text-to-video examples: `vidgen::cli::GenerateArgs`):
//! `--prompt`, `--out`, `--steps` (6 Heun steps), `--guidance` (1: no guidance), `--seed` (0).
//!
//! Data flow (`SnapFit::generate`): prompt → `WordTokenizer` → `TextEmbedder` → text tokens;
//! standard noise `[1, 3, T, H, W]` → Heun steps of EDM with `σ_in = s·√T` (Snap Video Sec. 3.2),
//! each network call `SnapFit(c_in·x_σ, c_noise, text/fps/resolution, previous latents)` →
//! `(F, latents)`, `D = c_skip·x_σ + c_out·F`, ODE on `D/σ_in` → final sample × `σ_in` → GIF.
//!
//! The weights are random: the clip shows that the pipeline runs end to end and has the right
//! shape, not what a trained model would draw.

use std::process::ExitCode;
use std::time::Instant;
use vidgen::cli::GenerateArgs;
use vidgen::models::snap_fit::SnapFitConfig;
use vidgen::models::{
    GenerateOptions, TextConditioning, TextEmbedderConfig, WordTokenizer, write_gif,
};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// `[C, T, H, W]` of the generated clip (pixel space: Snap Video is not latent-space).
const VIDEO: [usize; 4] = [3, 8, 16, 16];

fn main() -> ExitCode {
    match GenerateArgs::parse(std::env::args().skip(1), false) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => {
            let usage = format!("usage: snap_fit_edm {}", GenerateArgs::USAGE);
            vidgen::cli::usage_error(&usage, e)
        }
    }
}

fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let prompt = args.prompt_or("a red square moving right");
    let path = args.out_or("vidgen_snap_fit_edm.gif");

    // Text: a word tokenizer over a small vocabulary and a random embedding.
    let words = [
        "a", "red", "green", "blue", "square", "circle", "moving", "left", "right",
    ];
    let tokenizer = WordTokenizer::new(&words, 8)?;
    let d_text = 32;
    let embed = TextEmbedderConfig::new(tokenizer.vocab_size(), d_text).init::<B>(&device)?;
    let (ids, lengths) = tokenizer.try_encode_batch::<B>(&[prompt.as_str()], &device)?;
    let text = TextConditioning::from_lens(embed.forward(ids), &lengths)?;

    // Patch grid 8×8×8 (patches 1×2×2), groups of 4×4 patches over all 8 frames → 4 groups.
    let model = SnapFitConfig::new(VIDEO[0], 64, 64, 16, 2, 4, d_text)
        .with_group_size([4, 4])
        .with_n_latent_layers(2)
        .with_self_cond_zero_init(false) // random weights: let self-conditioning act
        .init::<B>(&device)?;

    // Snap Video's EDM inside `generate`: σ_in = √T, σ_data = 1, v-prediction sign, Heun.
    let options = args.apply(GenerateOptions {
        latent_size: VIDEO,
        num_steps: 6,
        guidance_scale: 1.0,
        fps: 8.0,
        ..GenerateOptions::default()
    });
    let start = Instant::now();
    let video = model.generate(&text, &options)?;
    println!(
        "prompt {prompt:?}: sampled {:?} with {} Heun steps ({} network calls per guidance pass) in {:.2?}",
        video.dims(),
        options.num_steps,
        2 * options.num_steps - 1,
        start.elapsed()
    );

    let [_, c, t, h, w] = video.dims();
    let clip = video.clamp(-1.0, 1.0).reshape([c, t, h, w]);
    write_gif(clip, &path, 12)?;
    println!("wrote {}", path.display());
    Ok(())
}
