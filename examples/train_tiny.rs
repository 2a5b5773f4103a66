//! Trains a tiny text-to-video STDiT (d_model 64, depth 2, 4 heads, pixel space 8×16×16 RGB) on
//! the procedural moving-shapes dataset with rectified flow, through burn-train, on the CPU.
//!
//! ```text
//! cargo run --release --example train_tiny                      # 1500 steps into $TMP/train_tiny
//! cargo run --release --example train_tiny -- 300 out_dir       # steps, output directory
//! ```
//!
//! Writes `tiny_stdit.safetensors` (checkpoint, burn-store), `tiny_stdit.json` (its config),
//! `loss.png` (loss curve) and `sample.gif` ("red square moving right", 16 Euler steps, CFG 4)
//! into the output directory, plus burn-train's logs.

use burn::config::Config;
use std::path::PathBuf;
use std::time::Instant;
use vidgen_models::data::tokenizer;
use vidgen_models::stdit::{GenerateOptions, TextToVideo};
use vidgen_models::train::{TinyTrainConfig, first_last_means, train, write_loss_curve_png};
use vidgen_models::{save_checkpoint, write_gif};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1500);
    let out: PathBuf = args
        .get(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("train_tiny"));
    std::fs::create_dir_all(&out)?;
    let config = TinyTrainConfig::tiny(steps);
    let device: burn::tensor::Device<B> = Default::default();
    println!("training {steps} steps of {} videos", config.batch_size);
    let start = Instant::now();
    let (model, losses) = train::<burn::backend::Autodiff<B>>(
        &config,
        std::slice::from_ref(&device),
        out.join("logs"),
    )?;
    let (first, last) = first_last_means(&losses, 0.1);
    println!(
        "trained in {:.1} s; loss: first 10 % {first:.4}, last 10 % {last:.4}",
        start.elapsed().as_secs_f64()
    );

    write_loss_curve_png(&losses, out.join("loss.png"), [480, 240])?;
    save_checkpoint(&model, out.join("tiny_stdit.safetensors"))?;
    config.save(out.join("tiny_stdit.json"))?;

    let (frames, size) = (config.data.frames, config.data.size);
    let options = GenerateOptions {
        latent_size: [3, frames, size, size],
        num_steps: 16,
        guidance_scale: 4.0,
        fps: config.fps,
        ..GenerateOptions::default()
    };
    let pipeline = TextToVideo::new(model.model, tokenizer(), model.text_embedder)?;
    let video = pipeline.generate(&["red square moving right"], &options, &device)?;
    let [_, c, t, h, w] = video.dims();
    write_gif(video.reshape([c, t, h, w]), out.join("sample.gif"), 12)?;
    println!("wrote {}", out.display());
    Ok(())
}
