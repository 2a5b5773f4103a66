//! Snap Video's FIT sampled with input-scaled EDM and latent self-conditioning: a tiny random
//! model turns a prompt into a short clip and writes it as a GIF.
//!
//! ```text
//! cargo run --release --example snap_fit_edm                         # CPU (flex), temp dir
//! cargo run --release --example snap_fit_edm -- /tmp/fit.gif        # choose the output path
//! cargo run --release --example snap_fit_edm --features cuda         # NVIDIA GPU
//! ```
//!
//! Data flow: prompt → `WordTokenizer` → `TextEmbedder` → text tokens; standard noise
//! `[1, 3, T, H, W]` → Heun steps of EDM with `σ_in = s·√T` (Snap Video Sec. 3.2), each network
//! call `SnapFit(c_in·x_σ, c_noise, text/fps/resolution, previous latents)` → `(F, latents)`,
//! `D = c_skip·x_σ + c_out·F`, ODE on `D/σ_in` → final sample × `σ_in` → GIF.
//!
//! The weights are random: the clip shows that the pipeline runs end to end and has the right
//! shape, not what a trained model would draw.

use burn::tensor::{Tensor, TensorData};
use std::process::ExitCode;
use std::time::Instant;
use vidgen::models::snap_fit::{EdmSolver, SnapFitCond, SnapFitConfig};
use vidgen::models::{TextConditioning, TextEmbedderConfig, WordTokenizer, write_gif};
use vidgen::schedulers::edm::{EdmConfig, EdmSampler, snap_video_sigma_in};
use vidgen::schedulers::{FiniteCheck, NoiseGenerator};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// `[B, C, T, H, W]` of the generated clip (pixel space: Snap Video is not latent-space).
const VIDEO: [usize; 5] = [1, 3, 8, 16, 16];
const STEPS: usize = 6;
const FPS: f32 = 8.0;
const PROMPT: &str = "a red square moving right";

fn main() -> ExitCode {
    vidgen::cli::report(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("vidgen_snap_fit_edm.gif"));

    // Text: a word tokenizer over a small vocabulary and a random embedding.
    let words = [
        "a", "red", "green", "blue", "square", "circle", "moving", "left", "right",
    ];
    let tokenizer = WordTokenizer::new(&words, 8)?;
    let d_text = 32;
    let embed = TextEmbedderConfig::new(tokenizer.vocab_size(), d_text).init::<B>(&device)?;
    let (ids, lengths) = tokenizer.encode_batch::<B>(&[PROMPT], &device);
    let cond = SnapFitCond {
        text: TextConditioning::from_lens(embed.forward(ids), &lengths)?,
        fps: Tensor::from_data(TensorData::new(vec![FPS], [1]), &device),
        resolution: Tensor::from_data(TensorData::new(vec![16.0f32, 16.0], [1, 2]), &device),
    };

    // Patch grid 8×8×8 (patches 1×2×2), groups of 4×4 patches over all 8 frames → 4 groups.
    let model = SnapFitConfig::new(VIDEO[1], 64, 64, 16, 2, 4, d_text)
        .with_group_size([4, 4])
        .with_n_latent_layers(2)
        .with_self_cond_zero_init(false) // random weights: let self-conditioning act
        .init::<B>(&device)?;

    // Snap Video's EDM: σ_in = s·√T with s = 1 (no upsampling), σ_data = 1, v-prediction sign.
    let sigma_in = snap_video_sigma_in(1.0, VIDEO[2]);
    let edm = EdmConfig::snap_video(sigma_in).init()?;
    let sampler = EdmSampler::new(edm, EdmSolver::Heun, STEPS)?;
    let mut rng = NoiseGenerator::seed_from_u64(0);
    let noise = rng.normal::<B, 5>(VIDEO, &device);

    let start = Instant::now();
    let video = model.sample(&sampler, noise, &cond, &mut rng, FiniteCheck::EveryStep)?;
    let elapsed = start.elapsed();
    println!(
        "prompt {PROMPT:?}: sampled {:?} with {STEPS} Heun steps ({} network calls), σ_in = {sigma_in:.3}, in {elapsed:.2?}",
        video.dims(),
        2 * STEPS - 1
    );

    let [_, c, t, h, w] = video.dims();
    let clip = video.clamp(-1.0, 1.0).reshape([c, t, h, w]);
    write_gif(clip, &path, 12)?;
    println!("wrote {}", path.display());
    Ok(())
}
