//! LinGen-style text-to-video: a tiny weight-random linear DiT (bidirectional Mamba2 with
//! Rotary-Major Scan + TESA, see `vidgen::models::lingen`) sampled with rectified flow and
//! classifier-free guidance from a prompt, written as a GIF.
//!
//! ```text
//! cargo run --example lingen_text_to_video                        # CPU (flex), GIF in the temp dir
//! cargo run --example lingen_text_to_video -- --prompt "red square moving right" --out out.gif
//! cargo run --release --example lingen_text_to_video --features cuda
//! ```
//!
//! Flags (all optional, shared by the text-to-video examples: `vidgen::cli::GenerateArgs`):
//! `--prompt`, `--out`, `--steps` (8), `--guidance` (4), `--seed` (0).
//!
//! Data flow: prompt → `WordTokenizer` → `TextEmbedder` `[1, L, d_text]`; noise `[1, C, T, H, W]`
//! → n × (LinGenDit velocity for [zero text; prompt] → CFG → Euler step), all inside
//! `LinGenDit::generate` → latent in `[-1, 1]` → GIF (the latent channels are shown directly as
//! RGB; no VAE). The weights are random: the output demonstrates the pipeline and shapes, not
//! quality.

use burn::tensor::ElementConversion;
use std::process::ExitCode;
use std::time::Instant;
use vidgen::cli::GenerateArgs;
use vidgen::models::lingen::LinGenConfig;
use vidgen::models::{
    GenerateOptions, TextConditioning, TextEmbedderConfig, WordTokenizer, write_gif,
};
use vidgen::schedulers::RectifiedFlowConfig;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const LATENT: [usize; 4] = [3, 8, 16, 16]; // [C, T, H, W] → token grid 8×8×8
const D_TEXT: usize = 32;

fn main() -> ExitCode {
    match GenerateArgs::parse(std::env::args().skip(1), false) {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => {
            let usage = format!("usage: lingen_text_to_video {}", GenerateArgs::USAGE);
            vidgen::cli::usage_error(&usage, e)
        }
    }
}

fn run(args: &GenerateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let prompt = args.prompt_or("a red square moving right");
    let path = args.out_or("lingen_text_to_video.gif");
    let device = Default::default();

    let words = [
        "a", "red", "green", "blue", "square", "circle", "moving", "left", "right",
    ];
    let tokenizer = WordTokenizer::new(&words, 8)?;
    let embedder = TextEmbedderConfig::new(tokenizer.vocab_size(), D_TEXT).init::<B>(&device)?;
    let (ids, lens) = tokenizer.try_encode_batch::<B>(&[prompt.as_str()], &device)?;
    let text = TextConditioning::from_lens(embedder.forward(ids), &lens)?;

    let config = LinGenConfig::new(LATENT[0], 64, 4, 4, D_TEXT)
        .with_max_grid([8, 8, 8])
        .with_mamba_head_dim(32)
        .with_chunk_size(128)
        .with_tesa_window([4, 4, 4])
        .with_review_pool(Some([4, 4, 4]))
        .with_adaln_zero_init(false);
    let model = config.init::<B>(&device)?;
    let grid = [LATENT[1], LATENT[2] / 2, LATENT[3] / 2];
    let flops = config.flops(grid, tokenizer.max_len());
    println!("backend: {}", std::any::type_name::<B>());
    println!(
        "LinGen-style DiT: {} blocks, d_model 64, token grid {grid:?}, {:.2} GFLOPs per forward",
        config.depth,
        flops.total() / 1e9
    );

    let options = args.apply(GenerateOptions {
        latent_size: LATENT,
        num_steps: 8,
        guidance_scale: 4.0,
        flow: RectifiedFlowConfig {
            shift: 3.0,
            ..Default::default()
        },
        ..GenerateOptions::default()
    });
    let start = Instant::now();
    let latent = model.generate(&text, &options)?;
    println!(
        "prompt {prompt:?}: sampled {:?} in {} steps (CFG {}), {:.2} s",
        latent.dims(),
        options.num_steps,
        options.guidance_scale,
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
