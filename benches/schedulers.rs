//! CPU benches of vidgen-schedulers at one small size (`cargo bench --bench schedulers`): a latent
//! `[2, 4, 4, 16, 16]` (`[B, C, T, H, W]`), one step of DDPM / DDIM / EDM-Euler / rectified flow,
//! a whole 20-step sampling loop with a trivial model (`out = 0.1·x`, so the time is the
//! scheduler's own work plus host-side noise), and a training batch of each family.
//!
//! Schedule math is f64 on the host; what is timed here is the per-step tensor work (a few
//! fused multiply-adds over the latent) and, in the loops, the per-step overhead.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen::schedulers::edm::EdmConfig;
use vidgen::schedulers::*;

type B = burn::backend::Flex;

const LATENT: [usize; 5] = [2, 4, 4, 16, 16];
const STEPS: usize = 20;

fn normal(seed: u64) -> Tensor<B, 5> {
    NoiseGenerator::seed_from_u64(seed).normal(LATENT, &Default::default())
}

/// One step at index 0 of a 20-step schedule (stochastic for DDPM, deterministic otherwise).
fn bench_step(c: &mut Criterion) {
    let (x, out, z) = (normal(0), normal(1), normal(2));
    let mut group = c.benchmark_group("scheduler step [2,4,4,16,16]");

    let ddpm = DdpmConfig::default().init(STEPS).unwrap();
    group.bench_function("ddpm (with noise)", |b| {
        b.iter(|| {
            let y = ddpm.step(0, out.clone(), x.clone(), Some(z.clone()));
            black_box(y.unwrap()).into_data()
        })
    });
    let ddim = DdimConfig::default().init(STEPS, 0.0).unwrap();
    group.bench_function("ddim eta 0", |b| {
        b.iter(|| black_box(ddim.step(0, out.clone(), x.clone(), None).unwrap()).into_data())
    });
    let edm = EdmEulerConfig::default().init(STEPS).unwrap();
    group.bench_function("edm euler", |b| {
        b.iter(|| black_box(edm.step(0, out.clone(), x.clone(), None).unwrap()).into_data())
    });
    let flow = RectifiedFlowConfig::default().init(STEPS, None).unwrap();
    group.bench_function("rectified flow", |b| {
        b.iter(|| black_box(flow.step(0, out.clone(), x.clone(), None).unwrap()).into_data())
    });
    group.finish();
}

/// Runs [`sample`] over `scheduler` with the trivial model `0.1·x`, noise from a fixed seed.
fn run_loop<S: Sampler>(scheduler: &S, initial: &Tensor<B, 5>) -> Tensor<B, 5> {
    let mut rng = NoiseGenerator::seed_from_u64(3);
    sample(scheduler, |x, _t| x * 0.1, initial.clone(), &mut rng).unwrap()
}

/// A whole 20-step sampling loop per scheduler.
fn bench_loop(c: &mut Criterion) {
    let initial = normal(4);
    let mut group = c.benchmark_group("20-step loop, model 0.1·x [2,4,4,16,16]");
    group.sample_size(20);
    let ddpm = DdpmConfig::default().init(STEPS).unwrap();
    group.bench_function("ddpm", |b| {
        b.iter(|| black_box(run_loop(&ddpm, &initial)).into_data())
    });
    let ddim = DdimConfig::default().init(STEPS, 0.0).unwrap();
    group.bench_function("ddim eta 0", |b| {
        b.iter(|| black_box(run_loop(&ddim, &initial)).into_data())
    });
    let edm = EdmEulerConfig::default().init(STEPS).unwrap();
    group.bench_function("edm euler", |b| {
        b.iter(|| black_box(run_loop(&edm, &initial)).into_data())
    });
    let flow = RectifiedFlowConfig::default().init(STEPS, None).unwrap();
    group.bench_function("rectified flow", |b| {
        b.iter(|| black_box(run_loop(&flow, &initial)).into_data())
    });
    group.finish();
}

/// One training batch (noisy input, model time, target, loss weight) plus its loss against a
/// random prediction.
fn bench_training(c: &mut Criterion) {
    let (x0, noise) = (normal(5), normal(6));
    let prediction =
        Tensor::<B, 5>::random(LATENT, Distribution::Normal(0.0, 1.0), &Default::default());
    let mut group = c.benchmark_group("training_batch + loss [2,4,4,16,16]");

    let ddpm = DdpmConfig::default().init(STEPS).unwrap();
    group.bench_function("ddpm epsilon", |b| {
        b.iter(|| {
            let batch = ddpm
                .training_batch(x0.clone(), noise.clone(), &[10, 900])
                .unwrap();
            black_box(batch.loss(prediction.clone())).into_data()
        })
    });
    let edm = EdmConfig::default().init().unwrap();
    group.bench_function("edm", |b| {
        b.iter(|| {
            let batch = edm
                .training_batch(x0.clone(), noise.clone(), &[0.05, 20.0])
                .unwrap();
            black_box(batch.loss(prediction.clone())).into_data()
        })
    });
    let flow = RectifiedFlowConfig::default().init(STEPS, None).unwrap();
    group.bench_function("rectified flow", |b| {
        b.iter(|| {
            let batch = flow
                .training_batch(x0.clone(), noise.clone(), &[0.1, 0.8])
                .unwrap();
            black_box(batch.loss(prediction.clone())).into_data()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_step, bench_loop, bench_training);
criterion_main!(benches);
