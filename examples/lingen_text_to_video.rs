//! LinGen-style text-to-video: a tiny weight-random linear DiT (bidirectional Mamba2 with
//! Rotary-Major Scan + TESA, see `vidgen::models::lingen`) sampled with rectified flow and
//! classifier-free guidance from a prompt, written as a GIF.
//!
//! ```text
//! cargo run --example lingen_text_to_video                        # CPU (flex), GIF in the temp dir
//! cargo run --example lingen_text_to_video -- out.gif "red square moving right"
//! cargo run --release --example lingen_text_to_video --features cuda
//! ```
//!
//! Data flow: prompt → `WordTokenizer` → `TextEmbedder` `[1, L, d_text]`; noise `[1, C, T, H, W]`
//! → n × (LinGenDit velocity for [null; prompt] → CFG → Euler step) → latent in `[-1, 1]` → GIF
//! (the latent channels are shown directly as RGB; no VAE). The weights are random: the output
//! demonstrates the pipeline and shapes, not quality.

use burn::tensor::{ElementConversion, Tensor};
use std::process::ExitCode;
use std::time::Instant;
use vidgen::models::lingen::LinGenConfig;
use vidgen::models::{
    Conditioning, Guidance, TextConditioning, TextEmbedderConfig, WordTokenizer, sample, write_gif,
};
use vidgen::schedulers::{FiniteCheck, NoiseGenerator, RectifiedFlowConfig};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const LATENT: [usize; 5] = [1, 3, 8, 16, 16]; // [B, C, T, H, W] → token grid 8×8×8
const D_TEXT: usize = 32;
const STEPS: usize = 8;
const GUIDANCE: f64 = 4.0;

fn main() -> ExitCode {
    vidgen::cli::report(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("lingen_text_to_video.gif"));
    let prompt = args
        .next()
        .unwrap_or_else(|| "a red square moving right".to_string());
    let device = Default::default();

    let words = [
        "a", "red", "green", "blue", "square", "circle", "moving", "left", "right",
    ];
    let tokenizer = WordTokenizer::new(&words, 8)?;
    let embedder = TextEmbedderConfig::new(tokenizer.vocab_size(), D_TEXT).init::<B>(&device)?;
    let (ids, lens) = tokenizer.encode_batch::<B>(&[prompt.as_str()], &device);
    let text = TextConditioning::from_lens(embedder.forward(ids), &lens)?;
    let null = TextConditioning::new(Tensor::zeros([1, tokenizer.max_len(), D_TEXT], &device));
    let cond = Conditioning::guided(text, Guidance::new(GUIDANCE, 0.0, null)?);

    let config = LinGenConfig::new(LATENT[1], 64, 4, 4, D_TEXT)
        .with_max_grid([8, 8, 8])
        .with_mamba_head_dim(32)
        .with_chunk_size(128)
        .with_tesa_window([4, 4, 4])
        .with_review_pool(Some([4, 4, 4]))
        .with_adaln_zero_init(false);
    let model = config.init::<B>(&device)?;
    let grid = [LATENT[2], LATENT[3] / 2, LATENT[4] / 2];
    let flops = config.flops(grid, tokenizer.max_len());
    println!("backend: {}", std::any::type_name::<B>());
    println!(
        "LinGen-style DiT: {} blocks, d_model 64, token grid {grid:?}, {:.2} GFLOPs per forward",
        config.depth,
        flops.total() / 1e9
    );

    let flow = RectifiedFlowConfig {
        shift: 3.0,
        ..Default::default()
    }
    .init(STEPS, None)?;
    let mut rng = NoiseGenerator::seed_from_u64(0);
    let noise = rng.normal::<B, 5>(LATENT, &device);
    let start = Instant::now();
    let check = FiniteCheck::EveryStep;
    let latent = sample(&flow, &model, &cond, noise, &mut rng, check, |p| {
        println!("  step {}/{} (t = {:.0})", p.step + 1, p.num_steps, p.time)
    })?;
    println!(
        "prompt {prompt:?}: sampled {:?} in {STEPS} steps (CFG {GUIDANCE}), {:.2} s",
        latent.dims(),
        start.elapsed().as_secs_f64()
    );

    // Per-video normalisation to [-1, 1] for display (random weights give arbitrary ranges).
    let video = latent.squeeze_dim::<4>(0);
    let (lo, hi) = (
        video.clone().min().into_scalar(),
        video.clone().max().into_scalar(),
    );
    let (lo, hi): (f32, f32) = (lo.elem(), hi.elem());
    let video = (video - lo) * (2.0 / (hi - lo).max(1e-6)) - 1.0;
    write_gif(video, &path, 12)?;
    println!("wrote {}", path.display());
    Ok(())
}
