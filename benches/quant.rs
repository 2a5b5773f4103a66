//! CPU benches of vidgen-quant (`cargo bench --bench quant`): eqs. 13–14 on a 1M-element tensor
//! and post-training quantization of a small MLP.

use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vidgen::nn::MlpConfig;
use vidgen_quant::ptq::PtqConfig;
use vidgen_quant::uniform::{Granularity, QuantMode, QuantParams, QuantSpec, dequantize, quantize};

type B = burn::backend::Flex;

fn bench_quant(c: &mut Criterion) {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([1024, 1024], Distribution::Normal(0.0, 1.0), &device);
    let spec = QuantSpec::new()
        .with_mode(QuantMode::Affine)
        .with_granularity(Granularity::PerChannel { axis: 1 });
    let params = QuantParams::calibrate(&spec, &x).unwrap();
    c.bench_function("calibrate int8 per-channel [1024,1024]", |b| {
        b.iter(|| black_box(QuantParams::calibrate(&spec, &x).unwrap()))
    });
    c.bench_function("quantize int8 per-channel [1024,1024]", |b| {
        b.iter(|| black_box(quantize(x.clone(), &params)).into_data())
    });
    let codes = quantize(x.clone(), &params);
    c.bench_function("dequantize int8 per-channel [1024,1024]", |b| {
        b.iter(|| black_box(dequantize(codes.clone(), &params)).into_data())
    });

    let mlp = MlpConfig::new(256, 1024).init::<B>(&device).unwrap();
    for bits in [8, 4] {
        let config = PtqConfig::new().with_bits(bits);
        c.bench_function(&format!("ptq int{bits} mlp 256-1024-256"), |b| {
            b.iter(|| black_box(config.quantize(&mlp).unwrap()))
        });
    }
}

criterion_group!(benches, bench_quant);
criterion_main!(benches);
