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
//! - `attention_L1024`, `attention_L4096`: [`memory_safe_attention`] on f32 `[1, 8, L, 64]`.
//!
//! `--check DIR` also writes `DIR/stdit_check.safetensors`: inputs and output of one forward of
//! the shipped denoiser, which the PyTorch twin reproduces (`--check` of the Python script).
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
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vidgen::attention::blocked::{MemoryBudget, memory_safe_attention};
use vidgen::models::TextConditioning;
use vidgen::models::tiny::{TextVideoModel, TinyTrainConfig};
use vidgen::models::{MovingShapesBatcher, MovingShapesConfig};
use vidgen::ssm::ssd::ssd_chunked;

type B = Flex;
type AB = Autodiff<Flex>;

const ROWS: [&str; 7] = [
    "stdit_train_step_b8",
    "stdit_sample_30",
    "ssd_L1024",
    "ssd_L4096",
    "ssd_L16384",
    "attention_L1024",
    "attention_L4096",
];

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
    let mut model = Some(model);
    let mut failure = None;
    time_row("stdit_train_step_b8", runs, || {
        let m = model.take().expect("the model is put back after each step");
        match m.flow_loss(&batch) {
            Ok(loss) => {
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                model = Some(optim.step(config.learning_rate, m, grads));
            }
            Err(e) => {
                failure.get_or_insert(e);
                model = Some(m);
            }
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

/// Inputs and output of one forward of the shipped denoiser, for the twin's check.
fn write_check(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let (model, _) = shipped::<AB>(&device)?;
    let model = model.valid();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 5>::random([2, 3, 8, 16, 16], normal, &device);
    let t = Tensor::<B, 1>::from_floats([250.0, 900.0], &device);
    let y = Tensor::<B, 3>::random([2, 4, 32], normal, &device);
    let lens = [4usize, 2];
    let mask: Vec<f32> = lens
        .iter()
        .flat_map(|&n| (0..4).map(move |i| if i < n { 1.0 } else { 0.0 }))
        .collect();
    let fps = Tensor::<B, 1>::from_floats([8.0, 8.0], &device);
    let text = TextConditioning::from_lens(y.clone(), &lens)?;
    let out = model
        .model
        .forward(x.clone(), t.clone(), &text, fps.clone(), None)?;
    let tensors = [
        ("x", x.into_data()),
        ("t", t.into_data()),
        ("y", y.into_data()),
        ("mask", TensorData::new(mask, [2, 4])),
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
    }
    for row in &args.rows {
        match row.as_str() {
            "stdit_train_step_b8" => train_step(args.runs)?,
            "stdit_sample_30" => sample(args.runs)?,
            "attention_L1024" => attention(1024, args.runs),
            "attention_L4096" => attention(4096, args.runs),
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
