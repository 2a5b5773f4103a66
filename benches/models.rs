//! CPU benches of vidgen-models at tiny sizes (`cargo bench --bench models`): one forward of each
//! model on a latent `[1, 4, 4, 16, 16]` (patch 1×2×2 → a 4×8×8 token grid, 256 tokens), width
//! 64, 4 heads, 2 blocks, 8 text tokens of width 32; FlashVideo's RetNet over 256 VQ tokens in
//! the parallel form, and one recurrent step after a 256-token prefill.
//!
//! Weights are random: these time the architectures, not trained checkpoints.

use burn::tensor::{Distribution, Int, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_models::TextConditioning;
use vidgen_models::flashvideo::{FlashVideo, FlashVideoConfig};
use vidgen_models::lingen::LinGenConfig;
use vidgen_models::snap_fit::{SnapFitCond, SnapFitConfig};
use vidgen_models::stdit::StditConfig;

type B = burn::backend::Flex;

const LATENT: [usize; 5] = [1, 4, 4, 16, 16];
const D_MODEL: usize = 64;
const N_HEADS: usize = 4;
const DEPTH: usize = 2;
const D_TEXT: usize = 32;
const TEXT_LEN: usize = 8;
const RETNET_TOKENS: usize = 256;

fn normal<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

fn bench_diffusion_models(c: &mut Criterion) {
    let device = Default::default();
    let (x, text) = (normal(LATENT), normal([1, TEXT_LEN, D_TEXT]));
    let t = Tensor::<B, 1>::from_floats([500.0], &device);
    let mut group = c.benchmark_group("model forward [1,4,4,16,16] d64 h4 depth2");
    group.sample_size(20);

    let stdit = StditConfig::new(D_MODEL, N_HEADS, DEPTH, D_TEXT)
        .with_frequency_dim(64)
        .with_max_frames(8)
        .with_text_max_len(TEXT_LEN)
        .with_zero_init_temporal(false)
        .init::<B>(&device)
        .unwrap();
    let fps = Tensor::<B, 1>::from_floats([8.0], &device);
    let prompt = TextConditioning::new(text.clone());
    group.bench_function("stdit", |b| {
        b.iter(|| {
            let y = stdit.forward(x.clone(), t.clone(), &prompt, fps.clone(), None);
            black_box(y.unwrap()).into_data()
        })
    });

    let lingen = LinGenConfig::new(LATENT[1], D_MODEL, DEPTH, N_HEADS, D_TEXT)
        .with_max_grid([4, 8, 8])
        .with_mamba_head_dim(16)
        .with_tesa_window([2, 4, 4])
        .with_review_pool(Some([2, 4, 4]))
        .with_adaln_zero_init(false)
        .init::<B>(&device)
        .unwrap();
    group.bench_function("lingen", |b| {
        b.iter(|| {
            let y = lingen.forward(x.clone(), t.clone(), &prompt);
            black_box(y.unwrap()).into_data()
        })
    });

    // 8 latent tokens of width 64, groups of 4×4 patches (4 groups per frame).
    let snap = SnapFitConfig::new(LATENT[1], D_MODEL, D_MODEL, 8, DEPTH, N_HEADS, D_TEXT)
        .with_group_size([4, 4])
        .with_frequency_dim(64)
        .with_self_cond_zero_init(false)
        .init::<B>(&device)
        .unwrap();
    let cond = SnapFitCond {
        text: prompt.clone(),
        fps: Tensor::from_floats([8.0], &device),
        resolution: Tensor::from_data(TensorData::new(vec![64.0f32, 64.0], [1, 2]), &device),
    };
    let c_noise = Tensor::<B, 1>::from_floats([0.1], &device);
    group.bench_function("snap_fit", |b| {
        b.iter(|| {
            let (y, latents) = snap
                .forward(x.clone(), c_noise.clone(), &cond, None)
                .unwrap();
            black_box(latents).into_data();
            black_box(y).into_data()
        })
    });
    group.finish();
}

/// Random ids below `vocab + text_vocab + n_frames` (visual, text and frame-serial tokens).
fn ids(model_vocab: usize, len: usize) -> Tensor<B, 2, Int> {
    let ids: Vec<usize> = (0..len).map(|i| (i * 37 + 11) % model_vocab).collect();
    FlashVideo::<B>::ids_tensor(&ids, &Default::default())
}

fn bench_flashvideo(c: &mut Criterion) {
    let device = Default::default();
    let (vocab, text_vocab, frames) = (256, 64, 4);
    let model = FlashVideoConfig::new(vocab, text_vocab, D_MODEL, N_HEADS, DEPTH, [8, 8], frames)
        .init::<B>(&device)
        .unwrap();
    let tokens = ids(vocab + text_vocab + frames, RETNET_TOKENS);
    c.bench_function("flashvideo parallel [1,256] d64 h4 depth2", |b| {
        b.iter(|| black_box(model.forward_parallel(tokens.clone())).into_data())
    });

    let (_, state) = model.forward_chunkwise(tokens.clone(), model.empty_state(1, &device));
    let token = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![5i64], [1]), &device);
    c.bench_function(
        "flashvideo recurrent step after 256 tokens d64 h4 depth2",
        |b| {
            b.iter(|| {
                let (logits, next) = model.step(token.clone(), state.clone());
                for layer in next.layers {
                    black_box(layer.kv.into_data());
                }
                black_box(logits).into_data()
            })
        },
    );
}

criterion_group!(benches, bench_diffusion_models, bench_flashvideo);
criterion_main!(benches);
