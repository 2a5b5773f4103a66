//! Loads an Open-Sora STDiT3 hub directory (`config.json` + `model.safetensors` or shards) and
//! reports the load time and the process's peak resident memory, e.g. for the XL-shaped bf16
//! file of `bench/make_stdit3_xl_bf16.py`:
//!
//! ```text
//! golden/.venv/bin/python bench/make_stdit3_xl_bf16.py /tmp/stdit3_xl_bf16
//! cargo run --release --example opensora_load -- /tmp/stdit3_xl_bf16
//! ```
//!
//! Prints the time to build the model (random init), the time to load the weights into it, the
//! parameter count, and the peak resident set size (`VmHWM`, Linux) before and after loading.
//! A missing `DIR` prints the usage (exit code 2); a failed load prints its error (exit code 1).

use burn::module::Module;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;
use vidgen::models::opensora::{load_stdit3_weights, stdit3_checkpoint_files};
use vidgen::models::stdit::StditConfig;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

const USAGE: &str = "usage: opensora_load DIR   (a hub directory with config.json)";

/// Peak resident set size in MiB (`VmHWM` in `/proc/self/status`), where the system has it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> ExitCode {
    match std::env::args().nth(1) {
        Some(dir) => vidgen::cli::report(run(Path::new(&dir))),
        None => vidgen::cli::usage_error(USAGE, "DIR is required"),
    }
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let (config, _) = StditConfig::from_upstream_config_file(dir.join("config.json"))?;
    let files = stdit3_checkpoint_files(dir)?;
    let start = Instant::now();
    let mut model = config.init::<B>(&device)?;
    let built = start.elapsed();
    let before = peak_rss_mib();
    let start = Instant::now();
    let n = load_stdit3_weights(&mut model, &files)?;
    let loaded = start.elapsed();
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} parameters; built in {built:.2?}; {n} tensors ({:.2} GB on disk) loaded in \
         {loaded:.2?}; peak RSS {:.0} MiB after building, {:.0} MiB after loading",
        model.num_params(),
        bytes as f64 / 1e9,
        before.unwrap_or(f64::NAN),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
