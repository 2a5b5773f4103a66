//! CPU benches of vidgen-nn's hot paths at small sizes (`cargo bench --bench nn`).

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen::nn::*;

type B = burn::backend::Flex;

fn bench_nn(c: &mut Criterion) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);

    let patch = PatchEmbed3dConfig::new(4, 256).init::<B>(&device).unwrap();
    let latent = Tensor::<B, 5>::random([1, 4, 8, 32, 32], normal, &device);
    c.bench_function("patch_embed_3d [1,4,8,32,32] -> 2048x256", |b| {
        b.iter(|| black_box(patch.forward(latent.clone())).into_data())
    });

    let tokens = Tensor::<B, 3>::random([1, 2048, 256], normal, &device);
    let mlp = MlpConfig::new(256, 1024).init::<B>(&device).unwrap();
    c.bench_function("mlp_gelu_tanh [1,2048,256] h1024", |b| {
        b.iter(|| black_box(mlp.forward(tokens.clone())).into_data())
    });
    let swiglu = SwiGluMlpConfig::new(256, 683).init::<B>(&device).unwrap();
    c.bench_function("swiglu [1,2048,256] h683", |b| {
        b.iter(|| black_box(swiglu.forward(tokens.clone())).into_data())
    });

    let rope = Rope3dConfig::new(64).init().unwrap();
    let tables = rope.tables::<B>([8, 16, 16], [0, 0, 0], &device);
    let q = Tensor::<B, 4>::random([1, 4, 2048, 64], normal, &device);
    c.bench_function("rope_3d apply [1,4,2048,64]", |b| {
        b.iter(|| black_box(tables.apply(q.clone())).into_data())
    });
    c.bench_function("rope_3d tables 8x16x16 d64", |b| {
        b.iter(|| black_box(rope.tables::<B>([8, 16, 16], [0, 0, 0], &device)))
    });

    let t_embed = TimestepEmbedderConfig::new(256).init::<B>(&device).unwrap();
    let t = Tensor::<B, 1>::from_floats([1.0, 250.0, 500.0, 999.0], &device);
    c.bench_function("timestep_embedder 4 -> 256", |b| {
        b.iter(|| black_box(t_embed.forward(t.clone())).into_data())
    });
}

criterion_group!(benches, bench_nn);
criterion_main!(benches);
