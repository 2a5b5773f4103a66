//! GPU benchmark: warm-up + median timings of vidgen's hot paths, with a device sync around every
//! timed call, printed as a table that `bench/torch_gpu_bench.py` mirrors for PyTorch.
//!
//! ```text
//! cargo run --release --example gpu_bench --features cuda   # NVIDIA GPU (see bench/run_gpu.sh)
//! cargo run --release --example gpu_bench --features wgpu   # any GPU through wgpu
//! cargo run --example gpu_bench                             # CPU (flex), tiny sizes, a smoke run
//! cargo run --example gpu_bench -- --help                   # sizes and options
//! ```
//!
//! Cases (each timed `--iters` times after `--warmup` untimed calls; median and minimum in ms):
//! - `sdpa`: vidgen's `scaled_dot_product_attention` (memory-safe dispatch: on `cuda` / `wgpu`
//!   the fused CubeCL kernel of `vidgen::attention::gpu`; elsewhere Burn's fused op, or the
//!   blocked online-softmax path when the score matrix exceeds its budget), `[B, H, L, Dh]`, f32;
//!   `sdpa_causal`: the same with a causal mask; `sdpa_bf16` / `sdpa_f16`: bf16 / f16 inputs
//!   (f32 accumulation; skipped where the device lacks the type); `sdpa_bf16_tc` / `sdpa_f16_tc`:
//!   `flash_attention_gpu_tensor_cores` (both products on tensor cores; only where the device
//!   has 16×16×16 cooperative matrices), first checked against `sdpa` on the same inputs (a
//!   `CHECK` line with the largest difference; a mismatch is reported and not timed);
//!   `attention_burn_fused`: Burn's `module::attention` itself on the f32 inputs;
//! - `matmul` / `matmul_bf16`: an `N×N` by `N×N` product (`--matmul-n`), the roofline the
//!   attention TFLOP/s (printed after the attention cases, `4·B·H·L²·Dh` per call) compare to;
//! - `ssd_chunked`: the SSD chunked scan (Mamba2 Listing 1) with `H` heads of width `Dh`, one
//!   group of `d_state`, against `sdpa` at the same `L`: the crossover (the first `L` where the
//!   scan is faster) and the time per token as `L` grows (flat = linear scaling);
//! - `spatial_temporal`: STDiT's spatial + temporal attention pair over `T` frames of `H×W` tokens;
//! - `window_tesa`: LinGen's TESA (shifted 3D windows) over the same grid;
//! - `retention_parallel`: multi-scale retention, parallel form over `L` tokens;
//!   `retention_step`: one recurrent step after `p` tokens of prefill (flat in `p` = constant cost);
//! - `vae_decode_full` / `vae_decode_streamed`: the causal 3D video VAE decoding a whole clip at
//!   once against one latent frame at a time through its causal cache.
//!
//! Output lines `RESULT<TAB>vidgen<TAB>case<TAB>size<TAB>median_ms<TAB>min_ms<TAB>iters` are what
//! `bench/run_gpu.sh` joins with the PyTorch script's lines of the same case and size. `--help`
//! prints the options and cases; bad options print the usage (exit code 2).

use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Device, Distribution, Tensor};
use std::process::ExitCode;
use std::time::Instant;
use vidgen::attention::full::scaled_dot_product_attention;
use vidgen::attention::retention::MultiScaleRetentionConfig;
use vidgen::attention::spatial_temporal::SpatialTemporalConfig;
use vidgen::attention::window::{TesaConfig, WindowPlanCache};
use vidgen::ssm::ssd::ssd_chunked;
use vidgen::vae::causal3d::{
    PixelShuffleAutoencoderConfig, TemporalAutoencoderConfig, TemporalNorm, VideoAutoencoderConfig,
};

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// Whether the backend is a GPU one (picks the default sizes).
const ON_GPU: bool = cfg!(any(feature = "cuda", feature = "wgpu"));

const ALL_CASES: &[&str] = &[
    "sdpa",
    "sdpa_causal",
    "sdpa_bf16",
    "sdpa_f16",
    "sdpa_bf16_tc",
    "sdpa_f16_tc",
    "attention_burn_fused",
    "matmul",
    "matmul_bf16",
    "ssd_chunked",
    "spatial_temporal",
    "window_tesa",
    "retention_parallel",
    "retention_step",
    "vae_decode_full",
    "vae_decode_streamed",
];

/// Command-line options; defaults depend on the backend (GPU sizes, or tiny CPU sizes).
#[derive(Clone, Debug)]
struct Args {
    warmup: usize,
    iters: usize,
    batch: usize,
    heads: usize,
    head_dim: usize,
    d_state: usize,
    chunk: usize,
    lens: Vec<usize>,
    retention_lens: Vec<usize>,
    positions: Vec<usize>,
    d_model: usize,
    grid: Vec<usize>,
    vae_latent: Vec<usize>,
    vae_filters: usize,
    matmul_n: usize,
    only: Vec<String>,
}

impl Args {
    fn defaults() -> Self {
        if ON_GPU {
            Self {
                warmup: 3,
                iters: 10,
                batch: 1,
                heads: 8,
                head_dim: 64,
                d_state: 64,
                chunk: 256,
                lens: vec![1024, 2048, 4096, 8192, 16384, 32768],
                retention_lens: vec![1024, 2048, 4096],
                positions: vec![64, 1024, 16384],
                d_model: 512,
                grid: vec![16, 32, 32],
                vae_latent: vec![9, 32, 32],
                vae_filters: 64,
                matmul_n: 8192,
                only: Vec::new(),
            }
        } else {
            Self {
                warmup: 1,
                iters: 3,
                batch: 1,
                heads: 2,
                head_dim: 16,
                d_state: 16,
                chunk: 32,
                lens: vec![64, 128, 256],
                retention_lens: vec![64, 128],
                positions: vec![16, 256],
                d_model: 64,
                grid: vec![4, 8, 8],
                vae_latent: vec![3, 8, 8],
                vae_filters: 16,
                matmul_n: 256,
                only: Vec::new(),
            }
        }
    }

    const USAGE: &'static str = "usage: gpu_bench [--warmup N] [--iters N] [--batch N] [--heads N] \
[--head-dim N] [--d-state N] [--chunk N] [--lens L,L,..] [--retention-lens L,..] \
[--positions P,..] [--d-model N] [--grid T,H,W] [--vae-latent T,H,W] [--vae-filters N] \
[--matmul-n N] [--only CASE,..]";

    /// Parses `--name value` pairs over the defaults; `None` for `-h` / `--help`.
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut a = Self::defaults();
        while let Some(flag) = argv.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = argv.next().ok_or(format!("{flag} needs a value"))?;
            let one = || {
                value
                    .parse::<usize>()
                    .map_err(|e| format!("{flag} {value}: {e}"))
            };
            let list = || -> Result<Vec<usize>, String> {
                value
                    .split(',')
                    .map(|v| v.trim().parse().map_err(|e| format!("{flag} {value}: {e}")))
                    .collect()
            };
            match flag.as_str() {
                "--warmup" => a.warmup = one()?,
                "--iters" => a.iters = one()?,
                "--batch" => a.batch = one()?,
                "--heads" => a.heads = one()?,
                "--head-dim" => a.head_dim = one()?,
                "--d-state" => a.d_state = one()?,
                "--chunk" => a.chunk = one()?,
                "--lens" => a.lens = list()?,
                "--retention-lens" => a.retention_lens = list()?,
                "--positions" => a.positions = list()?,
                "--d-model" => a.d_model = one()?,
                "--grid" => a.grid = list()?,
                "--vae-latent" => a.vae_latent = list()?,
                "--vae-filters" => a.vae_filters = one()?,
                "--matmul-n" => a.matmul_n = one()?,
                "--only" => a.only = value.split(',').map(|s| s.trim().to_string()).collect(),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        a.check()?;
        Ok(Some(a))
    }

    fn check(&self) -> Result<(), String> {
        if self.iters == 0 || self.batch == 0 || self.heads == 0 || self.chunk == 0 {
            return Err("--iters, --batch, --heads and --chunk must be positive".into());
        }
        if self.grid.len() != 3 || self.vae_latent.len() != 3 {
            return Err("--grid and --vae-latent take three sizes T,H,W".into());
        }
        if let Some(bad) = self.only.iter().find(|c| !ALL_CASES.contains(&c.as_str())) {
            return Err(format!(
                "unknown case {bad}; cases: {}",
                ALL_CASES.join(", ")
            ));
        }
        Ok(())
    }

    fn wants(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|c| c == case)
    }
}

/// Median and minimum of the timed calls, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Timing {
    median_ms: f64,
    min_ms: f64,
}

/// Runs `f` `warmup` times untimed, then `iters` times, each timed from a synced device to a
/// synced device. `f`'s result is kept alive until after the sync, so that a lazy (fusion)
/// backend cannot skip or defer its work.
fn time_it<T>(device: &Device<B>, args: &Args, mut f: impl FnMut() -> T) -> Timing {
    let sync = || B::sync(device).expect("device sync failed");
    for _ in 0..args.warmup {
        let out = f();
        sync();
        drop(out);
    }
    let mut ms: Vec<f64> = (0..args.iters)
        .map(|_| {
            sync();
            let start = Instant::now();
            let out = f();
            sync();
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            drop(out);
            elapsed
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        0.5 * (ms[n / 2 - 1] + ms[n / 2])
    };
    Timing {
        median_ms: median,
        min_ms: ms[0],
    }
}

/// Prints one result line in the format shared with the PyTorch script.
fn report(case: &str, size: &str, t: Timing, args: &Args) {
    println!(
        "RESULT\tvidgen\t{case}\t{size}\t{:.4}\t{:.4}\t{}",
        t.median_ms, t.min_ms, args.iters
    );
}

fn normal<const D: usize>(shape: [usize; D], device: &Device<B>) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Whether `scaled_dot_product_attention` runs `dtype` inputs with head dimension `dim` on this
/// backend: f32 everywhere, f16 / bf16 where the fused GPU kernel takes them.
fn dtype_runs(dtype: DType, dim: usize, device: &Device<B>) -> bool {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if dtype != DType::F32 {
        return vidgen::attention::gpu::gpu_flash_supported::<B>(dtype, dim, dim, device);
    }
    let _ = (dim, device);
    dtype == DType::F32
}

/// The attention cases per length; returns `(L, sdpa median)`. Prints the achieved TFLOP/s
/// (`4·B·H·L²·Dh` per call; causal counted as full) after each length.
fn bench_attention(args: &Args, device: &Device<B>) -> Vec<(usize, f64)> {
    let mut sdpa = Vec::new();
    for &len in &args.lens {
        let shape = [args.batch, args.heads, len, args.head_dim];
        let (q, k, v) = (
            normal(shape, device),
            normal(shape, device),
            normal(shape, device),
        );
        let size = format!("L={len}");
        let flops = 4.0 * (args.batch * args.heads * args.head_dim) as f64 * (len * len) as f64;
        let tflops = |t: Timing| flops / (t.median_ms * 1e-3) / 1e12;
        let cases = [
            ("sdpa", DType::F32, false),
            ("sdpa_causal", DType::F32, true),
            ("sdpa_bf16", DType::BF16, false),
            ("sdpa_f16", DType::F16, false),
        ];
        for (case, dtype, causal) in cases {
            if !args.wants(case) {
                continue;
            }
            if !dtype_runs(dtype, args.head_dim, device) {
                println!("skip {case} {size}: {dtype:?} is not run on this backend");
                continue;
            }
            let (q, k, v) = (
                q.clone().cast(dtype),
                k.clone().cast(dtype),
                v.clone().cast(dtype),
            );
            let t = time_it(device, args, || {
                scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), None, causal, None)
            });
            report(case, &size, t, args);
            println!("{case} {size}: {:.2} TFLOP/s", tflops(t));
            if case == "sdpa" {
                sdpa.push((len, t.median_ms));
            }
        }
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        bench_tensor_cores(args, device, (&q, &k, &v), &size, tflops);
        if args.wants("attention_burn_fused") {
            let t = time_it(device, args, || {
                let options = AttentionModuleOptions::default();
                attention(q.clone(), k.clone(), v.clone(), None, None, options)
            });
            report("attention_burn_fused", &size, t, args);
            println!("attention_burn_fused {size}: {:.2} TFLOP/s", tflops(t));
        }
    }
    sdpa
}

/// `sdpa_bf16_tc` / `sdpa_f16_tc`: the tensor-core kernel on the f32 inputs cast down, checked
/// first against `scaled_dot_product_attention` on the same cast inputs (the f32-unit kernel):
/// prints `CHECK<TAB>case<TAB>size<TAB>max_abs_diff` and times only when the difference is
/// within the half-precision bound (bf16 5e-2, f16 1e-2).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn bench_tensor_cores(
    args: &Args,
    device: &Device<B>,
    (q, k, v): (&Tensor<B, 4>, &Tensor<B, 4>, &Tensor<B, 4>),
    size: &str,
    tflops: impl Fn(Timing) -> f64,
) {
    use burn::tensor::ElementConversion;
    use vidgen::attention::gpu::{flash_attention_gpu_tensor_cores, gpu_tensor_cores_supported};
    for (case, dtype, bound) in [
        ("sdpa_bf16_tc", DType::BF16, 5e-2),
        ("sdpa_f16_tc", DType::F16, 1e-2),
    ] {
        if !args.wants(case) {
            continue;
        }
        if !gpu_tensor_cores_supported::<B>(dtype, args.head_dim, args.head_dim, device) {
            println!("skip {case} {size}: no {dtype:?} cooperative matrices on this device");
            continue;
        }
        let (q, k, v) = (
            q.clone().cast(dtype),
            k.clone().cast(dtype),
            v.clone().cast(dtype),
        );
        let run = || {
            let options = AttentionModuleOptions::default();
            flash_attention_gpu_tensor_cores(q.clone(), k.clone(), v.clone(), None, options)
        };
        let expected =
            scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), None, false, None);
        let diff = (run().cast(DType::F32) - expected.cast(DType::F32))
            .abs()
            .max()
            .into_scalar()
            .elem::<f32>();
        println!("CHECK\t{case}\t{size}\t{diff:.3e}");
        if diff.is_nan() || diff > bound {
            println!(
                "MISMATCH {case} {size}: max |tc − sdpa| = {diff:.3e} > {bound:.0e}; not timed"
            );
            continue;
        }
        let t = time_it(device, args, run);
        report(case, size, t, args);
        println!("{case} {size}: {:.2} TFLOP/s", tflops(t));
    }
}

/// `matmul` (f32) and `matmul_bf16`: `[N, N]·[N, N]`, with the achieved TFLOP/s (`2·N³`).
fn bench_matmul(args: &Args, device: &Device<B>) {
    let n = args.matmul_n;
    let (a, b) = (normal([n, n], device), normal([n, n], device));
    for (case, dtype) in [("matmul", DType::F32), ("matmul_bf16", DType::BF16)] {
        if !args.wants(case) {
            continue;
        }
        if !dtype_runs(dtype, 64, device) {
            println!("skip {case}: {dtype:?} is not run on this backend");
            continue;
        }
        let (a, b) = (a.clone().cast(dtype), b.clone().cast(dtype));
        let t = time_it(device, args, || a.clone().matmul(b.clone()));
        let size = format!("N={n}");
        report(case, &size, t, args);
        let tflops = 2.0 * (n as f64).powi(3) / (t.median_ms * 1e-3) / 1e12;
        println!("{case} {size}: {tflops:.2} TFLOP/s");
    }
}

/// `ssd_chunked` per length; returns `(L, median)`.
fn bench_ssd(args: &Args, device: &Device<B>) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for &len in &args.lens {
        let (b, h) = (args.batch, args.heads);
        let x = normal([b, len, h, args.head_dim], device);
        let a = Tensor::<B, 3>::random([b, len, h], Distribution::Uniform(-0.5, 0.0), device);
        let bb = normal([b, len, 1, args.d_state], device);
        let cc = normal([b, len, 1, args.d_state], device);
        let t = time_it(device, args, || {
            ssd_chunked(
                x.clone(),
                a.clone(),
                bb.clone(),
                cc.clone(),
                args.chunk,
                None,
            )
            .y
        });
        report("ssd_chunked", &format!("L={len}"), t, args);
        out.push((len, t.median_ms));
    }
    out
}

/// Prints SSD against attention per length, the crossover, and the time per token.
fn summarize_scaling(attn: &[(usize, f64)], ssd: &[(usize, f64)]) {
    println!("\nSSD chunked scan vs full attention (median ms; µs per token):");
    println!("L\tsdpa_ms\tssd_ms\tssd/sdpa\tsdpa_us_per_tok\tssd_us_per_tok");
    for &(len, s) in ssd {
        let a = attn.iter().find(|(l, _)| *l == len).map(|(_, a)| *a);
        let per_tok = |ms: f64| ms * 1e3 / len as f64;
        match a {
            Some(a) => println!(
                "{len}\t{a:.3}\t{s:.3}\t{:.3}\t{:.3}\t{:.3}",
                s / a,
                per_tok(a),
                per_tok(s)
            ),
            None => println!("{len}\t-\t{s:.3}\t-\t-\t{:.3}", per_tok(s)),
        }
    }
    let crossover = ssd.iter().find(|(len, s)| {
        attn.iter()
            .find(|(l, _)| l == len)
            .is_some_and(|(_, a)| s < a)
    });
    match crossover {
        Some((len, _)) => println!("crossover: the SSD scan is faster from L = {len}"),
        None => println!("crossover: not reached at these lengths"),
    }
}

/// `spatial_temporal` and `window_tesa` on a `T×H×W` token grid.
fn bench_video_attention(args: &Args, device: &Device<B>) {
    let [t, h, w] = [args.grid[0], args.grid[1], args.grid[2]];
    let size = format!("{t}x{h}x{w} d{} h{}", args.d_model, args.heads);
    if args.wants("spatial_temporal") {
        let st = SpatialTemporalConfig::new(args.d_model, args.heads)
            .with_zero_init_temporal(false)
            .init::<B>(device)
            .expect("spatial-temporal config");
        let x = normal([args.batch, t * h * w, args.d_model], device);
        let timing = time_it(device, args, || {
            st.forward(x.clone(), t, h * w).expect("spatial-temporal")
        });
        report("spatial_temporal", &size, timing, args);
    }
    if args.wants("window_tesa") {
        let tesa = TesaConfig::new(args.d_model, args.heads)
            .init_layer::<B>(1, device)
            .expect("TESA config");
        let x = normal([args.batch, t, h, w, args.d_model], device);
        let mut cache = WindowPlanCache::new();
        let timing = time_it(device, args, || {
            tesa.forward_3d_cached(x.clone(), &mut cache)
        });
        report("window_tesa", &size, timing, args);
    }
}

/// `retention_parallel` per length and `retention_step` per prefill position.
fn bench_retention(args: &Args, device: &Device<B>) {
    let msr = MultiScaleRetentionConfig::new(args.d_model, args.heads)
        .init::<B>(device)
        .expect("retention config");
    if args.wants("retention_parallel") {
        for &len in &args.retention_lens {
            let x = normal([args.batch, len, args.d_model], device);
            let t = time_it(device, args, || msr.forward_parallel(x.clone()));
            report("retention_parallel", &format!("L={len}"), t, args);
        }
    }
    if args.wants("retention_step") {
        let token = normal([args.batch, args.d_model], device);
        for &position in &args.positions {
            let prompt = normal([args.batch, position, args.d_model], device);
            let empty = msr.empty_state(args.batch, device);
            let state = msr.forward_chunkwise(prompt, args.chunk, empty).1;
            let t = time_it(device, args, || msr.step(token.clone(), state.clone()));
            report("retention_step", &format!("pos={position}"), t, args);
        }
    }
}

/// `vae_decode_full` and `vae_decode_streamed`: causal 3D VAE (4× in time, 2× in space).
fn bench_vae(args: &Args, device: &Device<B>) {
    let spatial = PixelShuffleAutoencoderConfig::new()
        .with_spatial_factor(2)
        .init::<B>(device)
        .expect("spatial autoencoder config");
    let temporal = TemporalAutoencoderConfig::new()
        .with_filters(args.vae_filters)
        .with_num_res_blocks(1)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_temporal_downsample(vec![true, true])
        .with_num_groups(8)
        .with_temporal_norm(TemporalNorm::PerFrame);
    let vae = VideoAutoencoderConfig::new()
        .with_temporal(temporal)
        .init(spatial, device)
        .expect("video autoencoder config");
    let [t, h, w] = [args.vae_latent[0], args.vae_latent[1], args.vae_latent[2]];
    let frames = 4 * t - 3; // ⌈frames / 4⌉ = t latent frames
    let z = normal([args.batch, 4, t, h, w], device);
    let size = format!(
        "latent {t}x{h}x{w} -> {frames} frames, filters {}",
        args.vae_filters
    );
    if args.wants("vae_decode_full") {
        let timing = time_it(device, args, || vae.decode(z.clone(), frames));
        report("vae_decode_full", &size, timing, args);
    }
    if args.wants("vae_decode_streamed") {
        let timing = time_it(device, args, || {
            let mut cache = vae.temporal.decode_cache().expect("per-frame norm streams");
            (0..t)
                .map(|i| vae.decode_chunk(z.clone().narrow(2, i, 1), &mut cache, None))
                .collect::<Vec<_>>()
        });
        report("vae_decode_streamed", &size, timing, args);
    }
}

fn main() -> ExitCode {
    match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => vidgen::cli::report(run(&args)),
        Ok(None) => {
            println!("{}\ncases: {}", Args::USAGE, ALL_CASES.join(", "));
            ExitCode::SUCCESS
        }
        Err(message) => vidgen::cli::usage_error(Args::USAGE, message),
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    println!("backend: {}", std::any::type_name::<B>());
    println!("options: {args:?}");
    let attn = bench_attention(args, &device);
    bench_matmul(args, &device);
    let ssd = if args.wants("ssd_chunked") {
        bench_ssd(args, &device)
    } else {
        Vec::new()
    };
    bench_video_attention(args, &device);
    bench_retention(args, &device);
    if args.wants("vae_decode_full") || args.wants("vae_decode_streamed") {
        bench_vae(args, &device);
    }
    if !ssd.is_empty() {
        summarize_scaling(&attn, &ssd);
    }
    Ok(())
}
