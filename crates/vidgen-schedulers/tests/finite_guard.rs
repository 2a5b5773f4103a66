//! The non-finite guard of every sampling loop in this crate: a model that returns NaN (or ±∞)
//! from step `k` on stops the loop at step `k` with `SchedulerError::NonFinite` naming the model
//! output; a finite model is untouched by the check; `FiniteCheck::Off` lets the NaN through.

use burn::tensor::{Tensor, backend::Backend};
use vidgen_schedulers::edm::{
    Churn, EdmConfig, EdmSolver, karras_sigmas, sample_euler, sample_heun,
};
use vidgen_schedulers::rectified_flow::{OpenSoraRflowConfig, PixelExtent};
use vidgen_schedulers::{
    DdimConfig, FiniteCheck, NoiseGenerator, Progress, RectifiedFlowConfig, Sampler,
    SchedulerError, sample, try_sample,
};
use vidgen_testing::backend_tests;

/// A model whose output is `0.1·x` until call `bad_from`, then `bad` everywhere.
fn breaking<B: Backend, const D: usize>(
    bad_from: usize,
    bad: f32,
) -> impl FnMut(Tensor<B, D>, f64) -> Tensor<B, D> {
    let mut calls = 0;
    move |x: Tensor<B, D>, _| {
        calls += 1;
        if calls > bad_from {
            x.zeros_like() + bad
        } else {
            x * 0.1
        }
    }
}

/// [`breaking`] as a fallible model.
fn breaking_ok<B: Backend, const D: usize>(
    bad_from: usize,
    bad: f32,
) -> impl FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, SchedulerError> {
    let mut model = breaking(bad_from, bad);
    move |x, t| Ok(model(x, t))
}

fn assert_non_finite<T: std::fmt::Debug>(
    result: Result<T, SchedulerError>,
    step: usize,
    tensor: &str,
) {
    match result {
        Err(SchedulerError::NonFinite {
            step: s, tensor: t, ..
        }) => assert_eq!((s, t), (step, tensor)),
        other => panic!("expected NonFinite at step {step} ({tensor}), got {other:?}"),
    }
}

fn generic_loop_stops_at_the_first_bad_step<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(1);
    let x = rng.normal::<B, 3>([2, 3, 4], device);
    let ddim = DdimConfig::default().init(10, 0.0).unwrap();
    let flow = RectifiedFlowConfig::default().init(8, None).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let r = sample(&ddim, breaking(2, bad), x.clone(), &mut rng);
        assert_non_finite(r, 2, "model output");
        let r = sample(&flow, breaking(5, bad), x.clone(), &mut rng);
        assert_non_finite(r, 5, "model output");
    }
    // Finite models pass with and without the check, bit for bit.
    let on = sample(&flow, breaking(usize::MAX, 0.0), x.clone(), &mut rng).unwrap();
    let off = try_sample::<_, _, 3, _, _, SchedulerError, _>(
        &flow,
        |x, _| Ok(x * 0.1),
        x.clone(),
        &mut rng,
        FiniteCheck::Off,
        |_| {},
    )
    .unwrap();
    on.clone().into_data().assert_eq(&off.into_data(), true);
    // The callback sees every step, in order, with the scheduler's model time and the sample the
    // model saw.
    let mut seen = Vec::new();
    let mut prev: Option<Tensor<B, 3>> = None;
    let with_progress = try_sample::<_, _, 3, _, _, SchedulerError, _>(
        &flow,
        |x, _| Ok(x * 0.1),
        x.clone(),
        &mut rng,
        FiniteCheck::EveryStep,
        |p: Progress<'_, B, 3>| {
            seen.push((p.step, p.num_steps, p.time));
            let expected = p.sample.clone() * 0.1;
            p.model_output
                .clone()
                .into_data()
                .assert_eq(&expected.into_data(), true);
            prev = Some(p.sample.clone());
        },
    )
    .unwrap();
    with_progress.into_data().assert_eq(&on.into_data(), true);
    let expected: Vec<_> = (0..8).map(|i| (i, 8, flow.model_time(i))).collect();
    assert_eq!(seen, expected);
    assert!(prev.is_some());
    // Off: the NaN reaches the result.
    let mut model = breaking::<B, 3>(0, f32::NAN);
    let off = try_sample::<_, _, 3, _, _, SchedulerError, _>(
        &flow,
        |x, t| Ok(model(x, t)),
        x.clone(),
        &mut rng,
        FiniteCheck::Off,
        |_| {},
    )
    .unwrap();
    assert!(off.into_data().to_vec::<f32>().unwrap()[0].is_nan());
    // The model's own error ends the loop unchanged.
    let r = try_sample::<_, _, 3, _, _, SchedulerError, _>(
        &flow,
        |_, _| {
            Err(SchedulerError::Zero {
                field: "model says no",
            })
        },
        x,
        &mut rng,
        FiniteCheck::EveryStep,
        |_| {},
    );
    assert!(matches!(
        r,
        Err(SchedulerError::Zero {
            field: "model says no"
        })
    ));
}

fn edm_loops_stop_at_the_first_bad_step<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(2);
    let sigmas = karras_sigmas(6, 0.002, 80.0, 7.0).unwrap();
    let x = rng.normal::<B, 3>([2, 3, 4], device) * sigmas[0];
    let cb = |_: Progress<'_, B, 3>| {};
    let on = FiniteCheck::EveryStep;
    let r = sample_euler(
        breaking_ok(3, f32::NAN),
        x.clone(),
        &sigmas,
        Churn::NONE,
        &mut rng,
        on,
        cb,
    );
    assert_non_finite(r, 3, "model output");
    // Heun calls the model twice per step (once on the last): call 4 is step 2's first.
    let r = sample_heun(
        breaking_ok(4, f32::NAN),
        x.clone(),
        &sigmas,
        Churn::NONE,
        &mut rng,
        on,
        cb,
    );
    assert_non_finite(r, 2, "model output");
    // Call 5 is step 2's correction: its NaN reaches the sample, not the step's denoised output.
    let r = sample_heun(
        breaking_ok(5, f32::NAN),
        x.clone(),
        &sigmas,
        Churn::NONE,
        &mut rng,
        on,
        cb,
    );
    assert_non_finite(r, 2, "sample");
    let edm = EdmConfig::default().init().unwrap();
    let r = edm.sample(
        EdmSolver::Euler,
        breaking_ok(1, f32::INFINITY),
        x,
        &sigmas,
        Churn::NONE,
        &mut rng,
        on,
        cb,
    );
    assert_non_finite(r, 1, "model output");
}

fn open_sora_rflow_stops_at_the_first_bad_step<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(3);
    let z = rng.normal::<B, 5>([1, 2, 1, 4, 4], device);
    let sampler = OpenSoraRflowConfig {
        num_sampling_steps: 5,
        ..Default::default()
    }
    .init()
    .unwrap();
    let extent = PixelExtent::uniform(1, 32, 32, 1);
    let mut model = breaking::<B, 5>(3, f32::NAN);
    let r = sampler.sample(
        z.clone(),
        &extent,
        |z, t| Ok::<_, SchedulerError>(model(z, t.into_data().to_vec::<f32>().unwrap()[0] as f64)),
        |_| {},
        FiniteCheck::EveryStep,
    );
    assert_non_finite(r, 3, "model output");
    let mut model = breaking::<B, 5>(usize::MAX, 0.0);
    let ok = sampler.sample(
        z,
        &extent,
        |z, _| Ok::<_, SchedulerError>(model(z, 0.0)),
        |_| {},
        FiniteCheck::EveryStep,
    );
    assert!(ok.is_ok());
}

backend_tests!(
    generic_loop_stops_at_the_first_bad_step,
    edm_loops_stop_at_the_first_bad_step,
    open_sora_rflow_stops_at_the_first_bad_step
);
