//! Trains a tiny text-to-video STDiT (d_model 64, depth 2, 4 heads, pixel space 8×16×16 RGB) on
//! the procedural moving-shapes dataset with rectified flow, through burn-train, on the CPU.
//!
//! ```text
//! cargo run --release --example train_tiny                      # 6000 steps into $TMP/train_tiny
//! cargo run --release --example train_tiny -- 300 out_dir       # steps, output directory
//! cargo run --release --example train_tiny -- 300 out_dir my.json  # and a TinyTrainConfig JSON
//! ```
//!
//! Writes `tiny_stdit.safetensors` (checkpoint, burn-store), `tiny_stdit.json` (its config),
//! `loss.png` (loss curve) and `sample.gif` ("red square moving right", 16 Euler steps, CFG 4)
//! into the output directory, plus burn-train's logs, then checks every label's motion: one video
//! per label, the centroid of the prompted colour must travel the prompted way.

use burn::config::Config;
use std::path::PathBuf;
use std::time::Instant;
use vidgen_models::data::tokenizer;
use vidgen_models::stdit::TextToVideo;
use vidgen_models::train::{
    TinyTrainConfig, check_motion, first_last_means, train, write_loss_curve_png,
};
use vidgen_models::{save_checkpoint, write_gif};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(6000);
    let out: PathBuf = args
        .get(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("train_tiny"));
    std::fs::create_dir_all(&out)?;
    let config = match args.get(2) {
        Some(path) => TinyTrainConfig::load(path)?.with_steps(steps),
        None => TinyTrainConfig::tiny(steps),
    };
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

    let pipeline = TextToVideo::new(model.model, tokenizer(), model.text_embedder)?;
    let options = config.generate_options(0);
    let video = pipeline.generate(&["red square moving right"], &options, &device)?;
    let [_, c, t, h, w] = video.dims();
    write_gif(video.reshape([c, t, h, w]), out.join("sample.gif"), 12)?;
    println!("wrote {}", out.display());

    let checks = check_motion(&pipeline, &config, 7, &device)?;
    for check in &checks {
        println!(
            "{:<28} along {:+5.2} across {:+5.2} min pixels {:>3} {}",
            check.label,
            check.motion.along,
            check.motion.across,
            check.motion.min_pixels(),
            if check.follows { "ok" } else { "--" }
        );
    }
    let ok = checks.iter().filter(|c| c.follows).count();
    println!(
        "motion check: {ok}/{} labels move as prompted (travel {:.0} px)",
        checks.len(),
        config.data.travel()
    );
    Ok(())
}
