//! CPU benches of window attention at small sizes (`cargo bench --bench attention_window`):
//! Swin 2D shifted windows with a cached plan, and LinGen's TESA (3D windows, shifted layer) on a
//! latent grid that no window divides, against the dense reference twin.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_attention::window::{TesaConfig, WindowAttentionConfig, WindowPlanCache};

type B = burn::backend::Flex;

fn bench_window(c: &mut Criterion) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);

    // Swin-T stage-1 width and heads, window 7, shift 3, on a 28×28 feature map.
    let swin = WindowAttentionConfig::new_2d(96, 3, [7, 7])
        .with_shift_2d([3, 3])
        .init::<B>(&device)
        .unwrap();
    let image = Tensor::<B, 4>::random([1, 28, 28, 96], normal, &device);
    let mut cache = WindowPlanCache::new();
    c.bench_function("swin_2d shifted w7 s3 [1,28,28,96] h3", |b| {
        b.iter(|| black_box(swin.forward_2d_cached(image.clone(), &mut cache)).into_data())
    });

    // TESA, shifted (odd) layer, default window 8×4×4 on a 10×14×14 grid (padded to 16×16×16).
    let tesa = TesaConfig::new(128, 4).init_layer::<B>(1, &device).unwrap();
    let video = Tensor::<B, 5>::random([1, 10, 14, 14, 128], normal, &device);
    let mut cache = WindowPlanCache::new();
    c.bench_function("tesa shifted w8x4x4 [1,10,14,14,128] h4", |b| {
        b.iter(|| black_box(tesa.forward_3d_cached(video.clone(), &mut cache)).into_data())
    });

    // The dense reference twin on a smaller grid, for scale (it is O(L²)).
    let small = Tensor::<B, 5>::random([1, 8, 8, 8, 128], normal, &device);
    c.bench_function("tesa reference dense [1,8,8,8,128] h4", |b| {
        b.iter(|| black_box(tesa.forward_reference(small.clone()).0).into_data())
    });
}

criterion_group!(benches, bench_window);
criterion_main!(benches);
