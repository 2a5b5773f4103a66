//! Post-training quantization of whole modules (int8 / packed int4, per channel) and Burn-native
//! quantization: output change of a small MLP, SSM parameters kept in f32, byte ratios, errors.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use vidgen_nn::{Mlp, MlpConfig};
use vidgen_quant::ConfigError;
use vidgen_quant::QuantError;
use vidgen_quant::native::NativeQuantConfig;
use vidgen_quant::ptq::*;
use vidgen_quant::uniform::QuantMode;
use vidgen_ssm::Mamba2Config;
use vidgen_testing::{Tolerance, assert_close, backend_tests};

fn mlp<B: Backend>(device: &B::Device) -> (Mlp<B>, Tensor<B, 2>) {
    B::seed(device, 7);
    let mlp = MlpConfig::new(64, 256).init::<B>(device).unwrap();
    let x = Tensor::<B, 2>::random([8, 64], Distribution::Normal(0.0, 1.0), device);
    (mlp, x)
}

fn max_abs<B: Backend>(t: Tensor<B, 2>) -> f32 {
    t.abs().max().into_scalar().to_f32()
}

trait ToF32 {
    fn to_f32(self) -> f32;
}
impl<E: burn::tensor::ElementConversion> ToF32 for E {
    fn to_f32(self) -> f32 {
        self.elem()
    }
}

/// Int8 and int4 per-channel PTQ of `Mlp(64 → 256 → 64)`: output change bounded relative to the
/// output's magnitude, biases untouched, code bytes exactly 4× / 8× smaller.
fn ptq_mlp_output_and_bytes<B: Backend>(device: &B::Device) {
    let (model, x) = mlp::<B>(device);
    let y = model.forward(x.clone());
    let y_max = max_abs(y.clone());
    // Measured on flex (seed 7): int8 symmetric 0.0052·max|y|, affine 0.0060; int4 symmetric 0.102.
    // The bounds leave ~1.5–2× margin; int4's 16 levels are ~17× coarser than int8's 256.
    for (bits, mode, bound, codes_ratio, total_min) in [
        (8, QuantMode::Symmetric, 0.01, 4.0, 3.8),
        (8, QuantMode::Affine, 0.01, 4.0, 3.7),
        (4, QuantMode::Symmetric, 0.15, 8.0, 7.3),
    ] {
        let config = PtqConfig::new().with_bits(bits).with_mode(mode);
        let (store, report) = config.quantize(&model).unwrap();
        println!("{bits}-bit {mode:?}:\n{report}");
        assert_eq!(
            store.weights.keys().collect::<Vec<_>>(),
            ["fc1.weight", "fc2.weight"]
        );
        let q = store.dequantize_into(model.clone());
        let change = max_abs(q.forward(x.clone()) - y.clone()) / y_max;
        println!("max |Δy| / max |y| = {change:.5}");
        assert!(
            change < bound,
            "{bits}-bit {mode:?}: relative change {change}"
        );
        assert!(change > 0.0, "quantization changed nothing");
        for bias in ["fc1.bias", "fc2.bias"] {
            assert_eq!(report.layer(bias).unwrap().bits, None, "{bias}");
        }
        assert_close(
            q.fc1.bias.unwrap().val(),
            model.fc1.bias.clone().unwrap().val(),
            Tolerance::EXACT,
        );
        let (f32_bytes, codes, params) = report.quantized_bytes();
        assert_eq!(f32_bytes as f64 / codes as f64, codes_ratio);
        let total = f32_bytes as f64 / (codes + params) as f64;
        println!(
            "bytes: f32 {f32_bytes}, codes {codes}, scales/zero points {params}, ratio {total:.3}"
        );
        assert!(
            total > total_min && total < codes_ratio,
            "total ratio {total}"
        );
        // Per-layer error is within half a step of the coarsest channel.
        for (name, w) in &store.weights {
            let l = report.layer(name).unwrap();
            let s_max = w.params.scale.iter().cloned().fold(0.0, f32::max);
            assert!(l.max_abs_err <= 0.5 * s_max * (1.0 + 1e-5), "{name}: {l:?}");
            assert!(l.bytes_saved() > 0);
        }
    }
}

/// On a Mamba2 layer with every float parameter eligible, `a_log`, `dt_bias` and `d` stay f32
/// through the default name filter (and would change without it); norms and biases stay f32.
fn ssm_parameters_stay_f32<B: Backend>(device: &B::Device) {
    let layer = Mamba2Config::new(8)
        .with_d_state(6)
        .with_d_conv(3)
        .with_head_dim(4)
        .with_chunk_size(4)
        .init::<B>(device)
        .unwrap();
    let config = PtqConfig::new().with_target(PtqTarget::AllFloat);
    let (store, report) = config.quantize(&layer).unwrap();
    println!("{report}");
    for name in ["a_log", "dt_bias", "d"] {
        let row = report.layer(name).unwrap();
        assert_eq!(row.bits, None, "{name}");
        assert!(
            row.kept.as_ref().unwrap().contains("name filter"),
            "{row:?}"
        );
    }
    assert_eq!(report.layer("norm.weight").unwrap().bits, None);
    assert_eq!(report.layer("conv1d.bias").unwrap().bits, None);
    assert!(store.weights.contains_key("in_proj.weight"));
    assert!(store.weights.contains_key("conv1d.weight"));
    assert!(store.weights.contains_key("out_proj.weight"));
    let q = store.dequantize_into(layer.clone());
    assert_close(q.a_log.val(), layer.a_log.val(), Tolerance::EXACT);
    assert_close(q.dt_bias.val(), layer.dt_bias.val(), Tolerance::EXACT);
    assert_close(q.d.val(), layer.d.val(), Tolerance::EXACT);
    let diff = (q.in_proj.weight.val() - layer.in_proj.weight.val())
        .abs()
        .max();
    assert!(diff.into_scalar().to_f32() > 0.0);
    // Without the filter the same parameters are quantized (per tensor) and change.
    let (store, _) = config.with_keep_f32(Vec::new()).quantize(&layer).unwrap();
    let q = store.dequantize_into(layer.clone());
    let diff = (q.a_log.val() - layer.a_log.val()).abs().max();
    assert!(
        diff.into_scalar().to_f32() > 0.0,
        "a_log was not quantized without the filter"
    );
}

/// A stored weight unpacks to the codes `quantize` produced, and int4 packs two per byte.
fn packed_codes_round_trip<B: Backend>(device: &B::Device) {
    let (model, _) = mlp::<B>(device);
    let config = PtqConfig::new()
        .with_bits(4)
        .with_granularity(PtqGranularity::PerGroup { group_size: 16 });
    let (store, _) = config.quantize(&model).unwrap();
    let w = &store.weights["fc1.weight"];
    assert_eq!(w.packed.len(), 64 * 256 / 2);
    assert_eq!(w.params.n_groups(), (64 / 16) * 256);
    let codes = vidgen_quant::uniform::quantize(model.fc1.weight.val(), &w.params);
    let codes: Vec<i32> = codes.into_data().convert::<i32>().into_vec().unwrap();
    assert_eq!(w.codes(), codes);
}

fn ptq_errors_name_fields<B: Backend>(device: &B::Device) {
    let (model, _) = mlp::<B>(device);
    let err = PtqConfig::new().with_bits(6).quantize(&model).unwrap_err();
    assert!(err.to_string().contains("`bits` = 6"), "{err}");
    let zero = PtqConfig::new().with_granularity(PtqGranularity::PerGroup { group_size: 0 });
    assert_eq!(
        zero.quantize(&model).unwrap_err(),
        QuantError::Config(ConfigError::Zero {
            field: "group_size"
        })
    );
    let odd = PtqConfig::new().with_granularity(PtqGranularity::PerGroup { group_size: 48 });
    let err = odd.quantize(&model).unwrap_err();
    assert!(
        err.to_string()
            .contains("`axis length` = 64 must be divisible by 48"),
        "{err}"
    );
    // A constant (zero-initialised) weight is kept in f32 and reported, not an error.
    let zeroed = MlpConfig::new(4, 8).init::<B>(device).unwrap();
    let mut zeroed = zeroed;
    zeroed.fc2.weight = zeroed.fc2.weight.map(|w| w.zeros_like());
    let (store, report) = PtqConfig::new().quantize(&zeroed).unwrap();
    assert!(!store.weights.contains_key("fc2.weight"));
    let kept = report.layer("fc2.weight").unwrap().kept.clone().unwrap();
    assert!(kept.contains("zero range"), "{kept}");
}

/// Burn-native `Q8S` quantization runs on flex: module output within a measured bound, per-tensor
/// and per-block tensor round trips within half a step `max|r|/127`.
fn native_quantization_runs<B: Backend>(device: &B::Device) {
    let (model, x) = mlp::<B>(device);
    let y = model.forward(x.clone());
    let y_max = max_abs(y.clone());
    for block_size in [None, Some(32)] {
        let config = NativeQuantConfig::new().with_block_size(block_size);
        let q = config.quantize_module(model.clone()).unwrap();
        let change = max_abs(q.forward(x.clone()) - y.clone()) / y_max;
        println!("native Q8S block {block_size:?}: max |Δy| / max |y| = {change:.5}");
        // Measured on flex: 0.0058 per tensor, 0.0074 per block of 32; the restricted range (254
        // steps) is as fine as our symmetric int8, so the same 0.01 bound.
        assert!(change < 0.01 && change > 0.0, "{change}");
        assert_close(
            q.fc1.bias.unwrap().val(),
            model.fc1.bias.clone().unwrap().val(),
            Tolerance::EXACT,
        );
    }
    let w = model.fc1.weight.val();
    let step = max_abs(w.clone()) / 127.0;
    let deq = NativeQuantConfig::new()
        .quantize_tensor(w.clone())
        .unwrap()
        .dequantize();
    assert!(max_abs(deq - w.clone()) <= 0.5 * step * (1.0 + 1e-5));
    let blocked = NativeQuantConfig::new().with_block_size(Some(64));
    let deq = blocked.quantize_tensor(w.clone()).unwrap().dequantize();
    assert!(max_abs(deq - w.clone()) <= 0.5 * step * (1.0 + 1e-5));
    // Errors.
    let err = NativeQuantConfig::new().with_bits(2).scheme().unwrap_err();
    assert!(err.to_string().contains("`bits` = 2"), "{err}");
    let err = NativeQuantConfig::new()
        .with_block_size(Some(300))
        .scheme()
        .unwrap_err();
    assert!(err.to_string().contains("`block_size` = 300"), "{err}");
    let err = NativeQuantConfig::new()
        .with_block_size(Some(0))
        .scheme()
        .unwrap_err();
    assert_eq!(
        err,
        QuantError::Config(ConfigError::Zero {
            field: "block_size"
        })
    );
    let err = NativeQuantConfig::new()
        .with_block_size(Some(48))
        .quantize_module(model)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`last axis` = 256 must be divisible by 48"),
        "{err}"
    );
}

/// Per-block native quantization gives each block its own scale: in a weight whose 64-wide
/// blocks span four orders of magnitude, every block's round trip stays within half of *its own*
/// step `max|block|/127`, a bound per-tensor quantization breaks on the small blocks.
fn native_blocks_have_their_own_scale<B: Backend>(device: &B::Device) {
    let (rows, cols, block) = (4, 128, 64);
    let magnitudes = [1.0f32, 1e-3, 3e-2, 1e-1];
    let base = Tensor::<B, 2>::random([rows, cols], Distribution::Uniform(-1.0, 1.0), device);
    let scales: Vec<f32> = (0..rows * cols)
        .map(|i| magnitudes[(i / block) % magnitudes.len()])
        .collect();
    let scales =
        Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(scales, [rows, cols]), device);
    let w = base * scales;
    let worst_ratio = |deq: Tensor<B, 2>| -> f32 {
        let err: Vec<f32> = (deq - w.clone())
            .abs()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap();
        let val: Vec<f32> = w
            .clone()
            .abs()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap();
        let mut worst = 0.0f32;
        for (e, v) in err.chunks(block).zip(val.chunks(block)) {
            let half_step = 0.5 * v.iter().cloned().fold(0.0, f32::max) / 127.0;
            let e = e.iter().cloned().fold(0.0, f32::max);
            worst = worst.max(e / half_step);
        }
        worst
    };
    let blocked = NativeQuantConfig::new()
        .with_block_size(Some(block))
        .quantize_tensor(w.clone())
        .unwrap()
        .dequantize();
    let per_tensor = NativeQuantConfig::new()
        .quantize_tensor(w.clone())
        .unwrap()
        .dequantize();
    let (blocked, per_tensor) = (worst_ratio(blocked), worst_ratio(per_tensor));
    assert!(
        blocked <= 1.0 + 1e-4,
        "per block: error {blocked} half-steps of its own block"
    );
    assert!(
        per_tensor > 10.0,
        "per tensor: error only {per_tensor} half-steps of the smallest block"
    );
}

backend_tests!(
    ptq_mlp_output_and_bytes,
    ssm_parameters_stay_f32,
    packed_codes_round_trip,
    ptq_errors_name_fields,
    native_quantization_runs,
    native_blocks_have_their_own_scale
);
