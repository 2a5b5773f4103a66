//! CPU benches of vidgen-attention's full and spatial-temporal attention at one small size
//! (`cargo bench --bench attention_full`): B = 1, 4 frames × 16×16 tokens, d_model 128, 4 heads.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_attention::full::*;
use vidgen_attention::spatial_temporal::SpatialTemporalConfig;

type B = burn::backend::Flex;

const FRAMES: usize = 4;
const SPATIAL: usize = 16 * 16;
const D_MODEL: usize = 128;
const HEADS: usize = 4;

fn bench_attention_full(c: &mut Criterion) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 3>::random([1, FRAMES * SPATIAL, D_MODEL], normal, &device);

    let frame = x.clone().narrow(1, 0, SPATIAL);
    let attn = MultiHeadAttentionConfig::new(D_MODEL, HEADS)
        .with_qk_norm(true)
        .init::<B>(&device)
        .unwrap();
    c.bench_function("self_attention qk_norm [1,256,128] h4", |b| {
        b.iter(|| black_box(attn.forward(frame.clone())).into_data())
    });

    let st = SpatialTemporalConfig::new(D_MODEL, HEADS)
        .with_zero_init_temporal(false)
        .init::<B>(&device)
        .unwrap();
    c.bench_function("spatial_attention 4x(16x16) d128 h4", |b| {
        b.iter(|| black_box(st.spatial.forward(x.clone(), FRAMES, SPATIAL).unwrap()).into_data())
    });
    c.bench_function("temporal_attention+rope 4x(16x16) d128 h4", |b| {
        b.iter(|| black_box(st.temporal.forward(x.clone(), FRAMES, SPATIAL).unwrap()).into_data())
    });
    c.bench_function("spatial_temporal pair 4x(16x16) d128 h4", |b| {
        b.iter(|| black_box(st.forward(x.clone(), FRAMES, SPATIAL).unwrap()).into_data())
    });

    // The attention op alone on the spatial layout: [B·T, H, S, Dh].
    let shape = [FRAMES, HEADS, SPATIAL, D_MODEL / HEADS];
    let q = Tensor::<B, 4>::random(shape, normal, &device);
    let k = Tensor::<B, 4>::random(shape, normal, &device);
    let v = Tensor::<B, 4>::random(shape, normal, &device);
    c.bench_function("sdpa fused [4,4,256,32]", |b| {
        b.iter(|| {
            let y =
                scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), None, false, None);
            black_box(y).into_data()
        })
    });
    c.bench_function("sdpa reference [4,4,256,32]", |b| {
        b.iter(|| {
            let y = attention_reference(q.clone(), k.clone(), v.clone(), None, false, None);
            black_box(y).into_data()
        })
    });
}

criterion_group!(benches, bench_attention_full);
criterion_main!(benches);
