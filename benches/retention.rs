//! CPU benches of multi-scale retention at one small size (`cargo bench --bench retention`):
//! parallel vs chunkwise over a whole sequence, and the recurrent step at two sequence positions,
//! whose cost must not depend on the position (constant-size state).

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen_attention::retention::{MultiScaleRetention, MultiScaleRetentionConfig, RetentionState};

type B = burn::backend::Flex;

const D_MODEL: usize = 128;
const N_HEADS: usize = 4;
const LEN: usize = 512;

fn layer() -> MultiScaleRetention<B> {
    MultiScaleRetentionConfig::new(D_MODEL, N_HEADS)
        .init::<B>(&Default::default())
        .unwrap()
}

fn bench_forms(c: &mut Criterion) {
    let device = Default::default();
    let msr = layer();
    let x = Tensor::<B, 3>::random([1, LEN, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("retention parallel [1,512,128] h4", |b| {
        b.iter(|| black_box(msr.forward_parallel(x.clone())).into_data())
    });
    for chunk in [64, 128] {
        c.bench_function(
            &format!("retention chunkwise [1,512,128] h4 chunk {chunk}"),
            |b| {
                b.iter(|| {
                    let (y, _) =
                        msr.forward_chunkwise(x.clone(), chunk, msr.empty_state(1, &device));
                    black_box(y).into_data()
                })
            },
        );
    }
}

/// One recurrent step after `position` tokens of prefill.
fn prefilled(msr: &MultiScaleRetention<B>, position: usize) -> RetentionState<B> {
    let device = Default::default();
    let prompt = Tensor::<B, 3>::random(
        [1, position, D_MODEL],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    msr.forward_chunkwise(prompt, 128, msr.empty_state(1, &device))
        .1
}

fn bench_recurrent(c: &mut Criterion) {
    let device = Default::default();
    let msr = layer();
    let token = Tensor::<B, 2>::random([1, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    for position in [64, 1024] {
        let state = prefilled(&msr, position);
        c.bench_function(
            &format!("retention step [1,128] h4 at position {position}"),
            |b| {
                b.iter(|| {
                    let (y, next) = msr.step(token.clone(), state.clone());
                    black_box(next.kv).into_data();
                    black_box(y).into_data()
                })
            },
        );
    }
}

criterion_group!(benches, bench_forms, bench_recurrent);
criterion_main!(benches);
