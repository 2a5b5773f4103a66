//! CPU benches of vidgen-vae's autoencoders at small sizes (`cargo bench --bench vae`).
//!
//! - `bench_kl`: 2D KL-VAE (diffusers `AutoencoderKL` architecture) decode.
//! - `bench_video`: causal 3D video VAE (added by the causal-3D work; see the marked place below).

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_vae::kl::AutoencoderKlConfig;

type B = burn::backend::Flex;

/// Decode of a small two-level KL-VAE (block_out_channels (32, 64), 2 resnets per up block,
/// mid-block attention on): latent `[1, 4, 16, 16]` → image `[1, 3, 32, 32]`.
fn bench_kl(c: &mut Criterion) {
    let device = Default::default();
    let vae = AutoencoderKlConfig::new()
        .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
        .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2])
        .with_block_out_channels(vec![32, 64])
        .with_norm_num_groups(8)
        .init::<B>(&device)
        .unwrap();
    let z = Tensor::<B, 4>::random([1, 4, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("vae_kl decode [1,4,16,16] -> [1,3,32,32] ch(32,64)", |b| {
        b.iter(|| black_box(vae.decode(z.clone())).into_data())
    });
}

/// Video decode through the causal 3D VAE (temporal AE filters 16, levels (1, 2, 2), 4× in time,
/// per-frame GroupNorm; [`PixelShuffleAutoencoder`] 2× in space): latent `[1, 4, 5, 8, 8]` →
/// video `[1, 3, 17, 16, 16]`, whole clip vs streamed one latent frame at a time.
///
/// [`PixelShuffleAutoencoder`]: vidgen_vae::causal3d::PixelShuffleAutoencoder
fn bench_video(c: &mut Criterion) {
    use vidgen_vae::causal3d::{
        PixelShuffleAutoencoderConfig, TemporalAutoencoderConfig, TemporalNorm,
        VideoAutoencoderConfig,
    };
    let device = Default::default();
    let spatial = PixelShuffleAutoencoderConfig::new()
        .with_spatial_factor(2)
        .init::<B>(&device)
        .unwrap();
    let temporal = TemporalAutoencoderConfig::new()
        .with_filters(16)
        .with_num_res_blocks(1)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_temporal_downsample(vec![true, true])
        .with_num_groups(8)
        .with_temporal_norm(TemporalNorm::PerFrame);
    let vae = VideoAutoencoderConfig::new()
        .with_temporal(temporal)
        .init(spatial, &device)
        .unwrap();
    let z = Tensor::<B, 5>::random([1, 4, 5, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("vae_video decode [1,4,5,8,8] -> [1,3,17,16,16]");
    group.bench_function("full", |b| {
        b.iter(|| black_box(vae.decode(z.clone(), 17)).into_data())
    });
    group.bench_function("streamed 1 latent frame/chunk", |b| {
        b.iter(|| {
            let mut cache = vae.temporal.decode_cache().unwrap();
            let frames: Vec<_> = (0..5)
                .map(|i| vae.decode_chunk(z.clone().narrow(2, i, 1), &mut cache, None))
                .collect();
            black_box(Tensor::cat(frames, 2)).into_data()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_kl, bench_video);
criterion_main!(benches);
