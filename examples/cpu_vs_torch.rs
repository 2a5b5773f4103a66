//! The Rust side of the same-run CPU comparison with PyTorch (`bench/cpu_vs_torch.sh` runs this,
//! then `bench/torch_cpu_models.py`, and prints the ratios): the rows of
//! `docs/PERFORMANCE.md` "Whole models on CPU against PyTorch".
//!
//! ```text
//! cargo run --release --example cpu_vs_torch -- [--runs N] [--rows a,b,...] [--check DIR]
//! ```
//!
//! Rows (each: warm-up, then the median and minimum of `--runs` timed calls, 10 by default),
//! printed as one JSON line each (`{"row": .., "median_ms": .., "min_ms": .., "runs": ..}`):
//! - `stdit_train_step_b8`: one training step of the shipped tiny STDiT
//!   (`assets/tiny_stdit.json`) at batch 8 on `Autodiff<Flex>`: the rectified-flow loss of a
//!   moving-shapes batch, backward, AdamW with gradient clipping (norm 1), as `train_tiny` does;
//! - `stdit_sample_30`: one 8×16×16 video, 30 Euler steps, guidance 4 (one batched forward of
//!   the conditional and unconditional inputs per step);
//! - `ssd_L1024`, `ssd_L4096`, `ssd_L16384`: [`ssd_chunked`] at `[B, L, H, P, N]` =
//!   `[1, L, 8, 64, 64]`, one `B`/`C` per head, chunk 256 (Mamba2's default);
//! - `attention_L1024`, `attention_L4096`: [`memory_safe_attention`] on f32 `[1, 8, L, 64]`;
//! - `lingen_train_step_b8`: one training step of the LinGen-style DiT of [`lingen_config`] (the
//!   tiny STDiT's shapes: 3 latent channels, `d_model` 64, 4 heads, 2 blocks, 32-wide text,
//!   `8×16×16` latents = `8×8×8` tokens) at batch 8 on `Autodiff<Flex>`: velocity MSE against a
//!   fixed target, backward, AdamW (no clipping);
//! - `lingen_sample_30`: [`LinGenDit::generate`] of one `3×8×16×16` latent, 30 Euler steps,
//!   guidance 4 against the zero text (batched CFG).
//!
//! `--check DIR` also writes, into `DIR`, the inputs and output of one forward of the shipped
//! STDiT denoiser (`stdit_check.safetensors`) and of the LinGen-style DiT
//! (`lingen_check.safetensors`, with its weights `lingen_weights.safetensors` and
//! `lingen_config.json`), which the PyTorch twins reproduce (`--check DIR` of the Python
//! script). The LinGen rows of both sides use those weights.
//!
//! The thread count is Burn's (rayon: `RAYON_NUM_THREADS`) and the attention kernel's (the
//! available cores); the script sets both sides to 2.

use burn::backend::{Autodiff, Flex};
use burn::config::Config;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vidgen::attention::blocked::{MemoryBudget, memory_safe_attention};
use vidgen::models::lingen::{LinGenConfig, LinGenDit};
use vidgen::models::tiny::{TextVideoModel, TinyTrainConfig};
use vidgen::models::{GenerateOptions, TextConditioning};
use vidgen::models::{MovingShapesBatcher, MovingShapesConfig};
use vidgen::ssm::ssd::ssd_chunked;

type B = Flex;
type AB = Autodiff<Flex>;

const ROWS: [&str; 9] = [
    "stdit_train_step_b8",
    "stdit_sample_30",
    "ssd_L1024",
    "ssd_L4096",
    "ssd_L16384",
    "attention_L1024",
    "attention_L4096",
    "lingen_train_step_b8",
    "lingen_sample_30",
];

/// Seed of the LinGen-style DiT's weights and of every benchmark input.
const SEED: u64 = 0;

struct Args {
    runs: usize,
    rows: Vec<String>,
    check: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 10,
        rows: ROWS.iter().map(|r| r.to_string()).collect(),
        check: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => {
                let v = value()?;
                args.runs = v
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or(format!("--runs {v}: not a positive integer"))?;
            }
            "--rows" => {
                let v = value()?;
                args.rows = v.split(',').map(str::to_string).collect();
                if let Some(bad) = args.rows.iter().find(|r| !ROWS.contains(&r.as_str())) {
                    return Err(format!("--rows: unknown row {bad:?} (rows: {ROWS:?})"));
                }
            }
            "--check" => args.check = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Runs `f` twice untimed, then `runs` times; prints the row's JSON line.
fn time_row(row: &str, runs: usize, f: impl FnMut()) {
    let (median, min) = vidgen::cli::time_ms(2, runs, f);
    println!(
        "{{\"row\": \"{row}\", \"median_ms\": {median:.3}, \"min_ms\": {min:.3}, \"runs\": {runs}}}"
    );
}

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The shipped tiny model and its config on backend `B`.
fn shipped<Bk: burn::tensor::backend::Backend>(
    device: &Bk::Device,
) -> Result<(TextVideoModel<Bk>, TinyTrainConfig), Box<dyn std::error::Error>> {
    let config = TinyTrainConfig::load(assets().join("tiny_stdit.json"))?;
    let mut model = config.init::<Bk>(device)?;
    vidgen::models::load_checkpoint(&mut model, assets().join("tiny_stdit.safetensors"))?;
    Ok((model, config))
}

fn train_step(runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let (model, config) = shipped::<AB>(&device)?;
    let data = MovingShapesConfig {
        len: 8,
        ..config.data.clone()
    }
    .init()?;
    let items: Vec<_> = (0..8).filter_map(|i| data.get(i)).collect();
    let batcher = MovingShapesBatcher {
        tokenizer: config.tokenizer(),
    };
    let batch = batcher.batch(items, &device);
    let mut optim = AdamWConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init::<AB, TextVideoModel<AB>>();
    time_training("stdit_train_step_b8", runs, model, |m| {
        match m.flow_loss(&batch) {
            Ok(loss) => {
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                (optim.step(config.learning_rate, m, grads), None)
            }
            Err(e) => (m, Some(e)),
        }
    })
}

/// Times `step` as [`time_row`] does, handing the model it returns (updated, or as it was with
/// an error) to the next step; the first error fails the row.
fn time_training<M, E: std::error::Error + 'static>(
    row: &str,
    runs: usize,
    model: M,
    mut step: impl FnMut(M) -> (M, Option<E>),
) -> Result<(), Box<dyn std::error::Error>> {
    let mut model = Some(model);
    let mut failure = None;
    time_row(row, runs, || {
        let m = model.take().expect("the model is put back after each step");
        let (m, error) = step(m);
        model = Some(m);
        if let Some(e) = error {
            failure.get_or_insert(e);
        }
    });
    failure.map_or(Ok(()), |e| Err(e.into()))
}

fn sample(runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let (model, config) = shipped::<B>(&device)?;
    let pipeline = config.pipeline(model)?;
    let options = vidgen::models::GenerateOptions {
        num_steps: 30,
        ..config.generate_options(0)
    };
    let mut failure = None;
    time_row("stdit_sample_30", runs, || {
        match pipeline.generate(&["red square moving right"], &options, &device) {
            Ok(video) => drop(video.into_data()),
            Err(e) => drop(failure.get_or_insert(e)),
        }
    });
    failure.map_or(Ok(()), |e| Err(e.into()))
}

fn ssd(len: usize, runs: usize) {
    let device = Default::default();
    let (h, p, n) = (8, 64, 64);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 4>::random([1, len, h, p], normal, &device);
    // dt·A < 0: a decay per step, as softplus(dt)·(−exp(A_log)) is.
    let a = Tensor::<B, 3>::random([1, len, h], Distribution::Uniform(-0.1, -0.001), &device);
    let b = Tensor::<B, 4>::random([1, len, h, n], normal, &device);
    let c = Tensor::<B, 4>::random([1, len, h, n], normal, &device);
    time_row(&format!("ssd_L{len}"), runs, || {
        let out = ssd_chunked(x.clone(), a.clone(), b.clone(), c.clone(), 256, None);
        drop(out.y.into_data());
    });
}

fn attention(len: usize, runs: usize) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let [q, k, v] = [0; 3].map(|_| Tensor::<B, 4>::random([1, 8, len, 64], normal, &device));
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    let budget = MemoryBudget::default();
    time_row(&format!("attention_L{len}"), runs, || {
        let out = memory_safe_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            None,
            None,
            options,
            &budget,
        );
        drop(out.into_data());
    });
}

/// The text of the check forwards: `[2, 4, 32]` tokens, the second sample padded after 2, its
/// 1/0 mask (`[2, 4]`, 1 = token) for the twins, and the conditioning.
type CheckText = (Tensor<B, 3>, TensorData, TextConditioning<B>);

fn check_text(
    device: &burn::backend::flex::FlexDevice,
) -> Result<CheckText, Box<dyn std::error::Error>> {
    let y = Tensor::<B, 3>::random([2, 4, 32], Distribution::Normal(0.0, 1.0), device);
    let lens = [4usize, 2];
    let mask: Vec<f32> = lens
        .iter()
        .flat_map(|&n| (0..4).map(move |i| if i < n { 1.0 } else { 0.0 }))
        .collect();
    let text = TextConditioning::from_lens(y.clone(), &lens)?;
    Ok((y, TensorData::new(mask, [2, 4]), text))
}

/// The LinGen-style DiT of the `lingen_*` rows: the tiny STDiT's shapes (3 latent channels,
/// `d_model` 64, 4 heads, 2 blocks, 32-wide text, patch `1×2×2`) with Mamba2 heads of 32
/// (`d_inner` 128: 4 heads, `d_state` 16, chunk 64), TESA windows `4×4×4` and review tokens
/// pooled over `4×4×4`; adaLN not zero-initialised, so every branch contributes.
fn lingen_config() -> LinGenConfig {
    LinGenConfig::new(3, 64, 2, 4, 32)
        .with_max_grid([8, 8, 8])
        .with_mamba_head_dim(32)
        .with_tesa_window([4, 4, 4])
        .with_review_pool(Some([4, 4, 4]))
        .with_adaln_zero_init(false)
}

/// [`lingen_config`]'s model with the weights drawn from [`SEED`].
fn lingen_model<Bk: Backend>(
    device: &Bk::Device,
) -> Result<LinGenDit<Bk>, Box<dyn std::error::Error>> {
    Bk::seed(device, SEED);
    Ok(lingen_config().init::<Bk>(device)?)
}

fn lingen_train_step(runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let model = lingen_model::<AB>(&device)?;
    AB::seed(&device, SEED + 1);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<AB, 5>::random([8, 3, 8, 16, 16], normal, &device);
    let target = Tensor::<AB, 5>::random([8, 3, 8, 16, 16], normal, &device);
    let t = Tensor::<AB, 1>::random([8], Distribution::Uniform(0.0, 1000.0), &device);
    let text = TextConditioning::new(Tensor::<AB, 3>::random([8, 4, 32], normal, &device));
    let mut optim = AdamWConfig::new().init::<AB, LinGenDit<AB>>();
    time_training("lingen_train_step_b8", runs, model, |m| {
        match m.forward(x.clone(), t.clone(), &text) {
            Ok(out) => {
                let loss = (out - target.clone()).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                (optim.step(1e-3, m, grads), None)
            }
            Err(e) => (m, Some(e)),
        }
    })
}

fn lingen_sample(runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let model = lingen_model::<B>(&device)?;
    B::seed(&device, SEED + 2);
    let text = Tensor::<B, 3>::random([1, 4, 32], Distribution::Normal(0.0, 1.0), &device);
    let text = TextConditioning::new(text);
    let options = GenerateOptions {
        latent_size: [3, 8, 16, 16],
        num_steps: 30,
        guidance_scale: 4.0,
        ..GenerateOptions::default()
    };
    let mut failure = None;
    time_row("lingen_sample_30", runs, || {
        match model.generate(&text, &options) {
            Ok(video) => drop(video.into_data()),
            Err(e) => drop(failure.get_or_insert(e)),
        }
    });
    failure.map_or(Ok(()), |e| Err(e.into()))
}

/// The LinGen-style DiT's weights, config and one forward on a grid that pads the TESA windows
/// and leaves partial review-token pools (`6×6×7` tokens, text padded in the second sample), for
/// the twin's check.
fn write_lingen_check(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let model = lingen_model::<B>(&device)?;
    B::seed(&device, SEED + 3);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 5>::random([2, 3, 6, 12, 14], normal, &device);
    let t = Tensor::<B, 1>::from_floats([250.0, 900.0], &device);
    let (y, mask, text) = check_text(&device)?;
    let out = model.forward(x.clone(), t.clone(), &text)?;
    let tensors = [
        ("x", x.into_data()),
        ("t", t.into_data()),
        ("y", y.into_data()),
        ("mask", mask),
        ("out", out.into_data()),
    ];
    vidgen::models::opensora::write_safetensors(dir.join("lingen_check.safetensors"), &tensors)?;
    vidgen::models::save_checkpoint(&model, dir.join("lingen_weights.safetensors"))?;
    lingen_config().save(dir.join("lingen_config.json"))?;
    eprintln!(
        "wrote {}/lingen_{{check,weights}}.safetensors",
        dir.display()
    );
    Ok(())
}

/// Inputs and output of one forward of the shipped denoiser, for the twin's check.
fn write_check(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let (model, _) = shipped::<AB>(&device)?;
    let model = model.valid();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 5>::random([2, 3, 8, 16, 16], normal, &device);
    let t = Tensor::<B, 1>::from_floats([250.0, 900.0], &device);
    let (y, mask, text) = check_text(&device)?;
    let fps = Tensor::<B, 1>::from_floats([8.0, 8.0], &device);
    let out = model
        .model
        .forward(x.clone(), t.clone(), &text, fps.clone(), None)?;
    let tensors = [
        ("x", x.into_data()),
        ("t", t.into_data()),
        ("y", y.into_data()),
        ("mask", mask),
        ("fps", fps.into_data()),
        ("out", out.into_data()),
    ];
    std::fs::create_dir_all(dir)?;
    let path = dir.join("stdit_check.safetensors");
    vidgen::models::opensora::write_safetensors(&path, &tensors)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = &args.check {
        write_check(dir)?;
        write_lingen_check(dir)?;
    }
    for row in &args.rows {
        match row.as_str() {
            "stdit_train_step_b8" => train_step(args.runs)?,
            "stdit_sample_30" => sample(args.runs)?,
            "attention_L1024" => attention(1024, args.runs),
            "attention_L4096" => attention(4096, args.runs),
            "lingen_train_step_b8" => lingen_train_step(args.runs)?,
            "lingen_sample_30" => lingen_sample(args.runs)?,
            ssd_row => {
                let len = ssd_row
                    .strip_prefix("ssd_L")
                    .and_then(|l| l.parse().ok())
                    .ok_or(format!("unknown row {ssd_row}"))?;
                ssd(len, args.runs);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    const USAGE: &str =
        "usage: cpu_vs_torch [--runs N] [--rows stdit_train_step_b8,...] [--check DIR]";
    match parse_args() {
        Ok(args) => vidgen::cli::report(run(&args)),
        Err(e) => vidgen::cli::usage_error(USAGE, e),
    }
}
