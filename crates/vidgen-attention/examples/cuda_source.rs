//! Writes the CUDA C++ source of the flash-attention kernel, for the configurations a CUDA
//! device would compile, into a folder (default `target/cuda-source`), without a CUDA device.
//! `bench/cuda_compile_check.sh` runs this and compiles the files with NVRTC and `ptxas`.
//!
//! ```text
//! cargo run -p vidgen-attention --features cuda,wgpu --example cuda_source -- [DIR]
//! ```
//! Needs a wgpu adapter (Mesa's lavapipe will do): the kernel's representation is built with a
//! wgpu client and compiled by the CUDA runtime's compiler.

use burn::tensor::DType;
use vidgen_attention::gpu::{
    FlashTiles, TensorCoreTiles, flash_kernel_cuda_source, tensor_core_kernel_cuda_source,
};

/// Shared memory the f32-unit kernel plans with on a CUDA device (48 KiB).
const SHARED_BYTES: usize = 48 * 1024;
/// Shared memory per block an H100 allows (opt-in), which the tensor-core kernel plans with.
const H100_SHARED_BYTES: usize = 227 * 1024;
/// Threads per block on CUDA devices.
const MAX_UNITS: usize = 1024;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/cuda-source".into());
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir}: {e}"));
    let dtypes = [
        (DType::F32, "f32"),
        (DType::F16, "f16"),
        (DType::BF16, "bf16"),
    ];
    let masks = [(false, false, "nomask"), (true, true, "causal_padded")];
    let mut failed = 0;
    for (dtype, name) in dtypes {
        for head_dim in [64, 128] {
            for (causal, padded, mask) in masks {
                // The f32-unit kernel (every dtype).
                let tiles = FlashTiles::for_device(head_dim, head_dim, SHARED_BYTES, MAX_UNITS)
                    .expect("tiles fit a CUDA device");
                let file = format!("{dir}/flash_{name}_d{head_dim}_{mask}.cu");
                let source = flash_kernel_cuda_source(dtype, tiles, causal, padded);
                failed += write(&file, source, &tiles);
                // The tensor-core kernel (f16, bf16).
                if dtype == DType::F32 {
                    continue;
                }
                let tiles =
                    TensorCoreTiles::for_device(head_dim, head_dim, H100_SHARED_BYTES, MAX_UNITS)
                        .expect("tiles fit an H100");
                let file = format!("{dir}/flash_tc_{name}_d{head_dim}_{mask}.cu");
                let source = tensor_core_kernel_cuda_source(dtype, tiles, causal, padded);
                failed += write(&file, source, &tiles);
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Writes `source` to `file` and prints the file and its tiles; on a codegen error prints it
/// and returns 1 (else 0).
fn write(file: &str, source: Result<String, String>, tiles: &dyn std::fmt::Debug) -> usize {
    match source {
        Ok(source) => {
            std::fs::write(file, source).unwrap_or_else(|e| panic!("{file}: {e}"));
            println!("{file}\t{tiles:?}");
            0
        }
        Err(e) => {
            eprintln!("{file}: CUDA codegen failed: {e}");
            1
        }
    }
}
