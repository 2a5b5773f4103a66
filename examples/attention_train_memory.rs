//! Peak memory and time of one training step (forward + backward) of an attention block on
//! `Autodiff<Flex>`, with the attention materialised (Burn's `module::attention`, whose
//! autodiff form keeps the `[B, H, L, L]` scores on the tape) or blocked (`blocked_attention`,
//! whose backward recomputes score tiles from the saved log-sum-exp rows).
//!
//! ```text
//! cargo run --release --example attention_train_memory            # the table, L = 1K, 4K, 16K
//! cargo run --release --example attention_train_memory -- --len 4096 --path blocked
//! ```
//!
//! The block: `x: [1, L, 128]` → one linear to q, k, v (2 heads of 64) → causal attention →
//! output linear → `mean(y²)` → backward. Every configuration runs in its own process (the
//! table mode starts this program once per row), and the peak is the growth of the resident
//! set's high-water mark (`VmHWM`, reset through `/proc/self/clear_refs`) over the step, so
//! Linux only. Time: the median of `--iters` steps after the measured one.

use burn::backend::{Autodiff, Flex};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor};
use std::process::{Command, ExitCode};
use std::time::Instant;
use vidgen::attention::blocked::{MemoryBudget, blocked_attention};

type B = Autodiff<Flex>;

const DIM: usize = 128;
const HEADS: usize = 2;
const USAGE: &str =
    "usage: attention_train_memory [--len L --path materialised|blocked] [--iters N]";

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One step; returns the loss (so nothing is optimised away), or an error if a gradient of
/// the q/k/v projection is NaN.
fn step(qkv: &Linear<B>, proj: &Linear<B>, x: Tensor<B, 3>, blocked: bool) -> Result<f32, String> {
    let [b, len, _] = x.dims();
    let heads = |t: Tensor<B, 3>| t.reshape([b, len, HEADS, DIM / HEADS]).swap_dims(1, 2);
    let qkv_out = qkv.forward(x).chunk(3, 2);
    let [q, k, v] = <[Tensor<B, 3>; 3]>::try_from(qkv_out)
        .expect("three chunks")
        .map(heads);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let out = if blocked {
        blocked_attention(q, k, v, None, None, options, &MemoryBudget::default())
    } else {
        attention(q, k, v, None, None, options)
    };
    let y = proj.forward(out.swap_dims(1, 2).reshape([b, len, DIM]));
    let loss = (y.clone() * y).mean();
    let value = loss.clone().into_scalar();
    let grads = loss.backward();
    let g = qkv
        .weight
        .grad(&grads)
        .ok_or("no gradient for the qkv weight")?;
    if g.is_nan().any().into_scalar() {
        return Err("NaN in the qkv weight gradient".into());
    }
    Ok(value)
}

fn run_one(len: usize, blocked: bool, iters: usize) -> Result<(), String> {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 0);
    let qkv = LinearConfig::new(DIM, 3 * DIM).init::<B>(&device);
    let proj = LinearConfig::new(DIM, DIM).init::<B>(&device);
    let x = Tensor::<B, 3>::random([1, len, DIM], Distribution::Normal(0.0, 1.0), &device);
    // Touch the parameters (Burn initialises them lazily) before the baseline.
    let _ = (
        qkv.weight.val().sum().into_scalar(),
        proj.weight.val().sum().into_scalar(),
    );
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| format!("clear_refs: {e}"))?;
    let before = status_kib("VmRSS:").ok_or("no VmRSS")?;
    let start = Instant::now();
    let loss = step(&qkv, &proj, x.clone(), blocked)?;
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    let peak = status_kib("VmHWM:")
        .ok_or("no VmHWM")?
        .saturating_sub(before);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        step(&qkv, &proj, x.clone(), blocked)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(first_ms);
    println!(
        "RESULT\t{len}\t{}\t{:.1}\t{median:.1}\t{loss:.4}",
        if blocked { "blocked" } else { "materialised" },
        peak as f64 / 1024.0
    );
    Ok(())
}

fn table(iters: usize) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!(
        "| L | scores [1, {HEADS}, L, L] f32 | materialised peak | blocked peak | materialised step | blocked step | time ratio (blocked / materialised) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for len in [1024usize, 4096, 16384] {
        let mut rows = Vec::new();
        for path in ["materialised", "blocked"] {
            let out = Command::new(&exe)
                .args([
                    "--len",
                    &len.to_string(),
                    "--path",
                    path,
                    "--iters",
                    &iters.to_string(),
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let row = text
                .lines()
                .find_map(|l| l.strip_prefix("RESULT\t"))
                .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>());
            rows.push(row.ok_or_else(|| format!("{path} at L = {len} failed: {:?}", out.status))?);
        }
        let (m, b) = (&rows[0], &rows[1]);
        let ratio =
            b[3].parse::<f64>().unwrap_or(f64::NAN) / m[3].parse::<f64>().unwrap_or(f64::NAN);
        let scores = (HEADS * len * len * 4) as f64 / (1 << 20) as f64;
        println!(
            "| {len} | {scores:.0} MiB | {} MiB | {} MiB | {} ms | {} ms | {ratio:.2} |",
            m[2], b[2], m[3], b[3]
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut len = None;
    let mut path = None;
    let mut iters = 3usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--len", Some(v)) => match v.parse::<usize>() {
                Ok(l) if l > 0 => len = Some(l),
                _ => {
                    eprintln!("--len {v}: expected a positive token count\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--path", Some(v)) if v == "materialised" || v == "blocked" => {
                path = Some(v == "blocked")
            }
            ("--iters", Some(v)) => match v.parse() {
                Ok(n) => iters = n,
                Err(_) => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match (len, path) {
        (Some(len), Some(blocked)) => run_one(len, blocked, iters),
        (None, None) => table(iters),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attention_train_memory: {e}");
            ExitCode::FAILURE
        }
    }
}
