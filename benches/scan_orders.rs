//! CPU benches of vidgen-ssm's scan orders at small sizes (`cargo bench --bench scan_orders`):
//! gather-based apply/restore of a Rotary-Major Scan layer, and the adjacency metric `d_k`.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_ssm::scan_order::{
    AdjacencyCubes, RotaryMajorScan, ScanOrder, adjacency_curve, adjacency_distance_reference,
};

type B = burn::backend::Flex;

fn bench_scan_orders(c: &mut Criterion) {
    let device = Default::default();
    let grid = [8, 16, 16];
    let x = Tensor::<B, 3>::random([1, 2048, 256], Distribution::Normal(0.0, 1.0), &device);
    let order = RotaryMajorScan::for_layer(2);
    let plan = order.plan::<B>(grid, &device);
    c.bench_function("rms layer 2 apply+restore (plan) [1,2048,256]", |b| {
        b.iter(|| black_box(plan.restore(plan.apply(x.clone()))).into_data())
    });
    c.bench_function("rms layer 2 apply (builds indices) [1,2048,256]", |b| {
        b.iter(|| black_box(order.apply(x.clone(), grid)).into_data())
    });
    c.bench_function("permutation zigzag 32x32x32", |b| {
        b.iter(|| black_box(ScanOrder::ZIGZAG.permutation(black_box([32, 32, 32]))))
    });

    let layers = RotaryMajorScan::layers(3);
    c.bench_function("d_k curve rms k=3 16x16x16", |b| {
        b.iter(|| {
            black_box(adjacency_curve(
                [16, 16, 16],
                &layers,
                AdjacencyCubes::Sliding,
            ))
        })
    });
    c.bench_function("d_k brute force rms k=3 4x4x4", |b| {
        b.iter(|| {
            black_box(adjacency_distance_reference(
                [4, 4, 4],
                &layers,
                AdjacencyCubes::Sliding,
            ))
        })
    });
}

criterion_group!(benches, bench_scan_orders);
criterion_main!(benches);
