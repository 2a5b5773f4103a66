//! CPU benches of vidgen-ssm's SSD scan (`cargo bench --bench ssd`): the chunked scan at 256–2048
//! tokens (tiny widths: 4 heads × 16, d_state 16, chunk 64), whose time should grow linearly with
//! the length, beside the per-timestep recurrence at 256 tokens, and one Mamba2 layer forward.

use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_ssm::mamba2::Mamba2Config;
use vidgen_ssm::ssd::{ssd_chunked, ssd_reference};

type B = burn::backend::Flex;

const HEADS: usize = 4;
const HEAD_DIM: usize = 16;
const D_STATE: usize = 16;
const CHUNK: usize = 64;

/// `x`, `a = dt·A`, `B`, `C` for one sequence of `len` tokens, one group.
fn inputs(len: usize) -> (Tensor<B, 4>, Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    (
        Tensor::random([1, len, HEADS, HEAD_DIM], normal, &device),
        Tensor::random([1, len, HEADS], Distribution::Uniform(-0.5, 0.0), &device),
        Tensor::random([1, len, 1, D_STATE], normal, &device),
        Tensor::random([1, len, 1, D_STATE], normal, &device),
    )
}

fn bench_ssd(c: &mut Criterion) {
    let mut group = c.benchmark_group("ssd_chunked h4 p16 n16 q64");
    for len in [256, 512, 1024, 2048] {
        let (x, a, b, cc) = inputs(len);
        group.bench_with_input(BenchmarkId::from_parameter(len), &len, |bench, _| {
            bench.iter(|| {
                let out = ssd_chunked(x.clone(), a.clone(), b.clone(), cc.clone(), CHUNK, None);
                black_box(out.y.into_data())
            })
        });
    }
    group.finish();

    let (x, a, b, cc) = inputs(256);
    c.bench_function("ssd_reference (recurrence) h4 p16 n16 L256", |bench| {
        bench.iter(|| {
            let out = ssd_reference(x.clone(), a.clone(), b.clone(), cc.clone(), None);
            black_box(out.y.into_data())
        })
    });

    let device = Default::default();
    let layer = Mamba2Config::new(64)
        .with_d_state(16)
        .with_head_dim(16)
        .with_chunk_size(CHUNK)
        .init::<B>(&device)
        .unwrap();
    let u = Tensor::<B, 3>::random([1, 1024, 64], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("mamba2 forward [1,1024,64] d_state16 head_dim16", |bench| {
        bench.iter(|| black_box(layer.forward(u.clone())).into_data())
    });
}

criterion_group!(benches, bench_ssd);
criterion_main!(benches);
