//! CPU attention at [1, 8, 1024, 64] and [1, 8, 4096, 64] (`cargo bench --bench attention_cpu`):
//! Burn's fused op on `flex`, vidgen's blocked path (automatic threads and one thread), the
//! fused host kernel on slices (block sizes, threads), the dispatcher (which runs the host
//! kernel on flex, including the tensor ↔ host copies), and the naive reference. Compare with `bench/torch_sdpa_cpu.py` run on the same
//! machine; results in docs/PERFORMANCE.md.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use vidgen_attention::blocked::{MemoryBudget, blocked_attention, memory_safe_attention};
use vidgen_attention::full::attention_reference;
use vidgen_attention::host::{HostOptions, HostShape, flash_attention_host};

type B = burn::backend::Flex;

fn bench_attention_cpu(c: &mut Criterion) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    for len in [1024, 4096] {
        let shape = [1, 8, len, 64];
        let q = Tensor::<B, 4>::random(shape, normal, &device);
        let k = Tensor::<B, 4>::random(shape, normal, &device);
        let v = Tensor::<B, 4>::random(shape, normal, &device);
        let mut group = c.benchmark_group(format!("attention_cpu [1,8,{len},64]"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(if len > 1024 { 8 } else { 3 }));
        let run = |budget: MemoryBudget| {
            blocked_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                None,
                None,
                options,
                &budget,
            )
        };
        group.bench_function("fused (flex module::attention)", |b| {
            b.iter(|| {
                black_box(attention(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    None,
                    None,
                    options,
                ))
                .into_data()
            })
        });
        group.bench_function("blocked (auto threads)", |b| {
            b.iter(|| black_box(run(MemoryBudget::default())).into_data())
        });
        group.bench_function("blocked (1 thread)", |b| {
            b.iter(|| black_box(run(MemoryBudget::default().with_threads(1))).into_data())
        });
        let host = |t: &Tensor<B, 4>| t.to_data().into_vec::<f32>().unwrap();
        let (qh, kh, vh) = (host(&q), host(&k), host(&v));
        let mut out = vec![0.0f32; qh.len()];
        let host_shape = HostShape {
            batch_heads: 8,
            len_q: len,
            len_k: len,
            head_dim: 64,
            value_dim: 64,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (block_q, block_k, threads) in [
            (64, 256, cores),
            (128, 256, cores),
            (64, 512, cores),
            (32, 256, cores),
            (64, 256, 1),
        ] {
            let host_options = HostOptions {
                scale: 0.125,
                block_q,
                block_k,
                threads,
                ..HostOptions::default()
            };
            let name = format!("host kernel (bq {block_q}, bk {block_k}, {threads} threads)");
            group.bench_function(name, |b| {
                b.iter(|| {
                    flash_attention_host(&qh, &kh, &vh, &mut out, host_shape, &host_options);
                    black_box(out[0])
                })
            });
        }
        group.bench_function("memory_safe_attention (dispatch → host kernel)", |b| {
            b.iter(|| {
                let (q, k, v) = (q.clone(), k.clone(), v.clone());
                let budget = MemoryBudget::default();
                black_box(memory_safe_attention(q, k, v, None, None, options, &budget)).into_data()
            })
        });
        group.bench_function("reference (matmul-softmax-matmul)", |b| {
            b.iter(|| {
                let (q, k, v) = (q.clone(), k.clone(), v.clone());
                black_box(attention_reference(q, k, v, None, false, None)).into_data()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_attention_cpu);
criterion_main!(benches);
