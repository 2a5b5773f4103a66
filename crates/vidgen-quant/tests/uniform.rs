//! Uniform quantization (survey eqs. 13–15): the `|r − r̃| ≤ S/2` property over many seeded random
//! tensors in every mode × bits × granularity, backend ops == host reference twins, parity with
//! PyTorch's min/max observers and fake-quantization kernels, the straight-through gradient, and
//! errors.
//!
//! The torch parity covers per-tensor and per-channel parameters on ranges that contain 0 (where
//! the observers, which widen every range to include 0, agree with eq. 15). Affine ranges without
//! 0 and group-wise parameters (`Granularity::PerGroup`) have no torch reference: the kernels
//! require the zero point inside the code range, and torch has no group-wise observer. They are
//! covered by the property test only.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use vidgen_quant::ConfigError;
use vidgen_quant::QuantError;
use vidgen_quant::uniform::*;
use vidgen_testing::{Golden, Tolerance, assert_close, autodiff_backend_tests, backend_tests};

/// Dequantized values vs torch's `fake_quantize_per_*_affine` kernels (at the few `1/S` ties, where
/// the kernels' `r·(1/S)` and our `r/S` round apart, vs eqs. 13–14 evaluated by torch in f32): the
/// same f32 ops, so only last-bit differences are allowed.
const TORCH_FAKE_QUANT: Tolerance = Tolerance::new("TORCH_FAKE_QUANT", 1e-6, 1e-6);

/// xorshift64*: a seeded generator so the property test is reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn host(x: Tensor<impl Backend, 3>) -> Vec<f32> {
    x.into_data().convert::<f32>().into_vec().unwrap()
}

fn specs() -> Vec<QuantSpec> {
    let mut out = Vec::new();
    for bits in [8, 4] {
        for mode in [QuantMode::Affine, QuantMode::Symmetric] {
            for granularity in [
                Granularity::PerTensor,
                Granularity::PerChannel { axis: 0 },
                Granularity::PerChannel { axis: 1 },
                Granularity::PerChannel { axis: 2 },
                Granularity::PerGroup {
                    axis: 2,
                    group_size: 3,
                },
                Granularity::PerGroup {
                    axis: 1,
                    group_size: 2,
                },
                Granularity::PerGroup {
                    axis: 0,
                    group_size: 1,
                },
            ] {
                out.push(
                    QuantSpec::new()
                        .with_bits(bits)
                        .with_mode(mode)
                        .with_granularity(granularity),
                );
            }
        }
    }
    out
}

/// One property case: checks calibration, codes, reference twins and the error bound.
fn check_case<B: Backend>(
    spec: &QuantSpec,
    values: Vec<f32>,
    shape: [usize; 3],
    device: &B::Device,
) {
    let x = Tensor::<B, 3>::from_data(TensorData::new(values.clone(), shape), device);
    let p = QuantParams::calibrate(spec, &x).unwrap();
    // α/β reproduce the per-group min/max (or ∓max|r|) computed on the host.
    let mut lo = vec![f32::INFINITY; p.n_groups()];
    let mut hi = vec![f32::NEG_INFINITY; p.n_groups()];
    for (i, &r) in values.iter().enumerate() {
        let g = group_index(&p, i);
        lo[g] = lo[g].min(r);
        hi[g] = hi[g].max(r);
    }
    if spec.mode == QuantMode::Symmetric {
        let m: Vec<f32> = lo
            .iter()
            .zip(&hi)
            .map(|(a, b)| a.abs().max(b.abs()))
            .collect();
        (lo, hi) = (m.iter().map(|m| -m).collect(), m);
    }
    assert_eq!((&p.alpha, &p.beta), (&lo, &hi), "{spec:?}");
    // Codes: backend == reference twin, inside the code range.
    let codes = quantize(x.clone(), &p);
    let host_codes: Vec<i32> = codes
        .clone()
        .into_data()
        .convert::<i32>()
        .into_vec()
        .unwrap();
    assert_eq!(host_codes, quantize_reference(&values, &p), "{spec:?}");
    let (qmin, qmax) = spec.code_range();
    assert!(
        host_codes.iter().all(|q| (qmin..=qmax).contains(q)),
        "{spec:?}"
    );
    // Dequantization: backend == reference twin == fused path.
    let deq = dequantize(codes, &p);
    let reference = dequantize_reference(&host_codes, &p);
    assert_eq!(host(deq.clone()), reference, "{spec:?}");
    assert_eq!(host(quantize_dequantize(x, &p)), reference, "{spec:?}");
    // |r − r̃| ≤ S/2, allowing the f32 rounding of r/S and of S·(Q + Z).
    for (i, (&r, &rt)) in values.iter().zip(&reference).enumerate() {
        let s = p.scale[group_index(&p, i)];
        let bound = 0.5 * s * (1.0 + 1e-5) + 2.0 * f32::EPSILON * r.abs();
        assert!(
            (r - rt).abs() <= bound,
            "{spec:?} element {i}: r = {r}, r̃ = {rt}, S = {s}"
        );
    }
}

fn error_is_at_most_half_a_step<B: Backend>(device: &B::Device) {
    let mut rng = Rng(0x5eed_1234);
    let mut cases = 0;
    let mut redraws = 0;
    for spec in specs() {
        let single = matches!(
            spec.granularity,
            Granularity::PerGroup { group_size: 1, .. }
        );
        if single && spec.mode == QuantMode::Affine {
            // Single-element affine groups are constant: an error by design (symmetric ones are
            // [−|r|, |r|] and go through the property check).
            let x = Tensor::<B, 3>::from_floats([[[1.0, 2.0]]], device);
            let err = QuantParams::calibrate(&spec, &x).unwrap_err();
            assert!(
                matches!(err, QuantError::ZeroRange { group: 0, .. }),
                "{err}"
            );
            continue;
        }
        for _ in 0..12 {
            // Axis 2 is a multiple of 3, axis 1 of 2 (the group sizes above).
            let shape = [
                1 + rng.below(4),
                2 * (1 + rng.below(3)),
                3 * (1 + rng.below(3)),
            ];
            let n: usize = shape.iter().product();
            let scale = 0.01 + 10.0 * rng.uniform();
            let offset = scale * (rng.uniform() - 0.5) * 2.0;
            // Values on a 1/64 grid of the scale keep every non-constant group's range at least
            // scale/64, so |Z| stays far below MAX_ZERO_POINT; constant groups are redrawn.
            loop {
                let values: Vec<f32> = (0..n)
                    .map(|_| offset + scale * (rng.below(129) as f32 - 64.0) / 64.0)
                    .collect();
                let x = Tensor::<B, 3>::from_data(TensorData::new(values.clone(), shape), device);
                match QuantParams::calibrate(&spec, &x) {
                    Err(QuantError::ZeroRange { .. }) => redraws += 1,
                    Err(e) => panic!("{spec:?}: {e}"),
                    Ok(_) => {
                        check_case::<B>(&spec, values, shape, device);
                        break;
                    }
                }
            }
            cases += 1;
        }
    }
    assert!(redraws < cases, "{redraws} redraws for {cases} cases");
    assert_eq!(cases, (2 * 2 * 7 - 2) * 12);
}

/// Scales and zero points equal those of torch's `MinMaxObserver` / `PerChannelMinMaxObserver`
/// exactly (the input lies on a 2⁻¹² grid, where the observer's f32 `max − min` is exact; on
/// arbitrary f32 data its scale can differ from eq. 15's by one ulp), and dequantized values those
/// of the fake-quantization kernels.
fn matches_torch_fake_quantize<B: Backend>(device: &B::Device) {
    let g = Golden::open("quant_uniform.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let x: Tensor<B, 2> = g.tensor("x", device);
    for bits in [8, 4] {
        for (mode, m) in [(QuantMode::Affine, "aff"), (QuantMode::Symmetric, "sym")] {
            for (granularity, gname) in [
                (Granularity::PerTensor, "t"),
                (Granularity::PerChannel { axis: 0 }, "c0"),
                (Granularity::PerChannel { axis: 1 }, "c1"),
            ] {
                let name = format!("b{bits}_{m}_{gname}");
                let spec = QuantSpec::new()
                    .with_bits(bits)
                    .with_mode(mode)
                    .with_granularity(granularity);
                let p = QuantParams::calibrate(&spec, &x).unwrap();
                let scale: Vec<f32> = g
                    .values(&format!("{name}.scale"))
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let zp: Vec<i32> = g
                    .values(&format!("{name}.zero_point"))
                    .iter()
                    .map(|&v| v as i32)
                    .collect();
                assert_eq!(p.scale, scale, "{name}: S");
                assert_eq!(p.zero_point, zp, "{name}: Z");
                let expected: Tensor<B, 2> = g.tensor(&format!("{name}.dequant"), device);
                assert_close(
                    quantize_dequantize(x.clone(), &p),
                    expected.clone(),
                    TORCH_FAKE_QUANT,
                );
                assert_close(
                    fake_quantize(x.clone(), &spec).unwrap(),
                    expected,
                    TORCH_FAKE_QUANT,
                );
            }
        }
    }
}

fn errors_name_fields<B: Backend>(device: &B::Device) {
    let x = Tensor::<B, 2>::ones([2, 6], device);
    let err = fake_quantize(x.clone(), &QuantSpec::new()).unwrap_err();
    assert_eq!(
        err,
        QuantError::ZeroRange {
            group: 0,
            value: 1.0
        }
    );
    assert!(err.to_string().contains("zero range"), "{err}");
    let bits = fake_quantize(x.clone(), &QuantSpec::new().with_bits(2)).unwrap_err();
    assert!(bits.to_string().contains("`bits` = 2"), "{bits}");
    let group = QuantSpec::new().with_granularity(Granularity::PerGroup {
        axis: 1,
        group_size: 4,
    });
    let err = QuantParams::calibrate(&group, &x).unwrap_err();
    assert!(
        err.to_string()
            .contains("`axis length` = 6 must be divisible by 4 (`group_size`)"),
        "{err}"
    );
    let zero = QuantSpec::new().with_granularity(Granularity::PerGroup {
        axis: 1,
        group_size: 0,
    });
    assert_eq!(
        zero.validate().unwrap_err(),
        QuantError::Config(ConfigError::Zero {
            field: "group_size"
        })
    );
    let axis = QuantSpec::new().with_granularity(Granularity::PerChannel { axis: 5 });
    assert!(
        QuantParams::calibrate(&axis, &x)
            .unwrap_err()
            .to_string()
            .contains("`axis` = 5")
    );
}

backend_tests!(
    error_is_at_most_half_a_step,
    matches_torch_fake_quantize,
    errors_name_fields
);

/// `fake_quantize`'s gradient is the identity; with a narrower calibrated range and
/// [`Ste::Clipped`], zero where the value saturates.
fn fake_quant_gradient_is_straight_through<B: AutodiffBackend>(device: &B::Device) {
    let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 24) as f32 / 4.0 - 3.0).collect();
    let weights: Vec<f32> = (0..24).map(|i| 1.0 + i as f32).collect();
    let w = Tensor::<B, 2>::from_data(TensorData::new(weights.clone(), [4, 6]), device);
    let spec = QuantSpec::new()
        .with_bits(4)
        .with_granularity(Granularity::PerChannel { axis: 0 });

    let x =
        Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [4, 6]), device).require_grad();
    let y = fake_quantize(x.clone(), &spec).unwrap();
    let p = QuantParams::calibrate(&spec, &x.clone().detach()).unwrap();
    assert_close(
        y.clone().inner(),
        quantize_dequantize(x.clone().inner(), &p),
        Tolerance::SINGLE_OP,
    );
    let grads = (y * w.clone()).sum().backward();
    let gx = x.grad(&grads).unwrap();
    assert_close(gx, w.clone().inner(), Tolerance::EXACT);

    // Calibrate on half the values: the outer half of every row saturates.
    let half = Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [4, 6]), device) * 0.5;
    let p = QuantParams::calibrate(&spec, &half).unwrap();
    let x =
        Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [4, 6]), device).require_grad();
    let y = fake_quantize_with(x.clone(), &p, Ste::Clipped);
    assert_close(
        y.clone().inner(),
        quantize_dequantize(x.clone().inner(), &p),
        Tolerance::EXACT,
    );
    let grads = (y * w).sum().backward();
    let gx: Vec<f32> = x
        .grad(&grads)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap();
    let mut clipped = 0;
    for (i, (&r, &g)) in values.iter().zip(&gx).enumerate() {
        let row = i / 6;
        let inside = r >= p.alpha[row] && r <= p.beta[row];
        assert_eq!(
            g,
            if inside { weights[i] } else { 0.0 },
            "element {i}: r = {r}"
        );
        clipped += usize::from(!inside);
    }
    assert!(
        clipped > 0,
        "no element saturated: the test would not see the clipping"
    );
}

autodiff_backend_tests!(fake_quant_gradient_is_straight_through);
