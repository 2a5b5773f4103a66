//! Snap Video's input-scaled EDM (`/work/shared/notes/snap-video-edm.md`, the paper's Sec. 3.2 and
//! Table 1): σ_in = 1 is plain EDM, a perfect prediction denoises exactly, σ_data = 1 gives the
//! v-prediction target and weight, and input and target have unit variance.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use vidgen_schedulers::edm::*;
use vidgen_schedulers::{
    FiniteCheck, FixedNoise, NoiseGenerator, PredictionType, SchedulerError, TrainingBatch,
};
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Two f32 evaluations of the same algebra written differently (a few ulp).
const ALGEBRA: Tolerance = Tolerance::new("ALGEBRA", 1e-5, 1e-5);
/// Sampling with the same denoiser through `Edm` and through the pure sampler: σ_in = 1 makes the
/// extra `/σ_in`, `·σ_in` exact, so only operation order differs.
const SAME_SAMPLER: Tolerance = Tolerance::new("SAME_SAMPLER", 1e-5, 1e-5);

/// k-diffusion's target `(x − c_skip·x_σ)/c_out` cancels in f32 at σ = 0.002 (error ≈
/// ulp(x)·σ_d/σ ≈ 3e-5); ours evaluates the same quantity as `c_norm·(σ·x − σ_d²·ε)`, without it.
const CANCELLING_REFERENCE: Tolerance = Tolerance::new("CANCELLING_REFERENCE", 1e-4, 1e-4);

const SIGMAS: [f64; 6] = [0.002, 0.05, 0.4, 1.0, 7.0, 80.0];

fn data<B: Backend>(rng: &mut NoiseGenerator, scale: f64, device: &B::Device) -> Tensor<B, 3> {
    rng.normal::<B, 3>([SIGMAS.len(), 3, 4], device) * scale
}

fn per_sample<B: Backend>(v: &[f64], device: &B::Device) -> Tensor<B, 3> {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(f, [v.len(), 1, 1]), device)
}

fn col<B: Backend>(f: impl Fn(f64) -> f64, device: &B::Device) -> Tensor<B, 3> {
    per_sample(&SIGMAS.map(f), device)
}

fn sigma_in_one_is_plain_edm<B: Backend>(device: &B::Device) {
    let edm = EdmConfig::default().init().unwrap();
    let mut rng = NoiseGenerator::seed_from_u64(1);
    let (x, eps) = (
        data::<B>(&mut rng, 0.5, device),
        data::<B>(&mut rng, 1.0, device),
    );
    let batch = edm.training_batch(x.clone(), eps.clone(), &SIGMAS).unwrap();
    // Karras et al. / k-diffusion's Denoiser.loss, written out with `edm_preconditioning`.
    let p = |s: f64| edm_preconditioning(s, 0.5);
    let x_sigma = x.clone() + eps * col(|s| s, device);
    let target = (x - x_sigma.clone() * col(|s| p(s).c_skip, device)) / col(|s| p(s).c_out, device);
    assert_close(
        batch.model_input,
        x_sigma * col(|s| p(s).c_in, device),
        ALGEBRA,
    );
    assert_close(batch.target, target, CANCELLING_REFERENCE);
    let t: Tensor<B, 1> =
        Tensor::from_floats(SIGMAS.map(|s| s.ln() as f32 / 4.0).as_slice(), device);
    assert_close(batch.model_time, t, ALGEBRA);
    assert_close(
        batch.loss_weight,
        Tensor::ones([SIGMAS.len()], device),
        ALGEBRA,
    );

    // A sampled trajectory (Heun with churn, and Euler) through `Edm` and through the pure sampler.
    let net = |x: Tensor<B, 3>, c_noise: f64| x.clone().tanh() * 0.5 + x * (0.1 * c_noise);
    let sigmas = edm.sigmas(6).unwrap();
    let noise = rng.normal::<B, 3>([2, 3, 4], device);
    let churn_noise: Vec<_> = (0..6)
        .map(|_| rng.normal::<B, 3>([2, 3, 4], device))
        .collect();
    let churn = Churn {
        s_churn: 3.0,
        s_tmin: 0.1,
        s_tmax: 30.0,
        s_noise: 1.0,
    };
    let plain = |x: Tensor<B, 3>, s: f64| {
        let p = p(s);
        Ok::<_, SchedulerError>(x.clone() * p.c_skip + net(x * p.c_in, p.c_noise) * p.c_out)
    };
    let net_ok = |x, c| Ok::<_, SchedulerError>(net(x, c));
    let fixed = || FixedNoise {
        per_step: churn_noise.clone(),
    };
    let want = sample_heun(
        plain,
        noise.clone() * sigmas[0],
        &sigmas,
        churn,
        &mut fixed(),
        FiniteCheck::EveryStep,
        |_| {},
    )
    .unwrap();
    let got = edm
        .sample(
            EdmSolver::Heun,
            net_ok,
            noise.clone(),
            &sigmas,
            churn,
            &mut fixed(),
            FiniteCheck::EveryStep,
            |_| {},
        )
        .unwrap();
    assert_close(got, want, SAME_SAMPLER);
    let want = sample_euler(
        plain,
        noise.clone() * sigmas[0],
        &sigmas,
        Churn::NONE,
        &mut fixed(),
        FiniteCheck::EveryStep,
        |_| {},
    )
    .unwrap();
    let got = edm
        .sample(
            EdmSolver::Euler,
            net_ok,
            noise,
            &sigmas,
            Churn::NONE,
            &mut fixed(),
            FiniteCheck::EveryStep,
            |_| {},
        )
        .unwrap();
    assert_close(got, want, SAME_SAMPLER);
}

fn perfect_prediction_denoises_exactly<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(2);
    for prediction_type in [PredictionType::Epsilon, PredictionType::VPrediction] {
        for sigma_in in [1.0, 2.0, 4.0, 32.0] {
            let edm = EdmConfig {
                sigma_in,
                prediction_type,
                ..Default::default()
            }
            .init()
            .unwrap();
            let (x, eps) = (
                data::<B>(&mut rng, 0.5, device),
                data::<B>(&mut rng, 1.0, device),
            );
            let batch = edm.training_batch(x.clone(), eps.clone(), &SIGMAS).unwrap();
            let x_sigma = edm.add_noise(x.clone(), eps, &SIGMAS);
            // D = c_skip·x_σ + c_out·F with F = the target, one σ per batch element.
            let d = x_sigma * col(|s| edm.precond(s).c_skip, device)
                + batch.target * col(|s| edm.precond(s).c_out, device);
            assert_close(d, x, ALGEBRA);
        }
    }
}

fn sigma_data_one_is_v_prediction<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(3);
    for sigma_in in [1.0, 4.0, 32.0] {
        let edm = EdmConfig::snap_video(sigma_in).init().unwrap();
        let (x, eps) = (
            data::<B>(&mut rng, 1.0, device),
            data::<B>(&mut rng, 1.0, device),
        );
        let batch = edm.training_batch(x.clone(), eps.clone(), &SIGMAS).unwrap();
        let a = col(|s| 1.0 / (1.0 + s * s).sqrt(), device); // VP α; σ_vp = σ·α
        let v = (eps.clone() - x.clone() * col(|s| s, device)) * a.clone();
        assert_close(batch.target, v, ALGEBRA);
        for s in SIGMAS {
            // λ(σ) at σ_data = 1 is 1/σ_vp², the x-space weight that v-prediction's MSE implies.
            let sigma_vp = s / (1.0 + s * s).sqrt();
            assert!((edm.loss_weight(s) * sigma_vp * sigma_vp - 1.0).abs() < 1e-12);
        }
        if sigma_in == 1.0 {
            // The model input is the VP sample α·x + σ_vp·ε, and the weight is v-prediction's 1.
            let x_t = (x + eps * col(|s| s, device)) * a;
            assert_close(batch.model_input, x_t, ALGEBRA);
            assert_close(
                batch.loss_weight,
                Tensor::ones([SIGMAS.len()], device),
                ALGEBRA,
            );
        }
    }
}

fn variance(t: Tensor<impl Backend, 2>) -> f64 {
    let v: Vec<f64> = t.into_data().iter::<f64>().collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64
}

fn input_and_target_have_unit_variance<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(4);
    let n = 40_000;
    for (sigma_data, sigma_in) in [(0.5, 1.0), (0.5, 4.0), (1.0, 32.0)] {
        let edm = EdmConfig {
            sigma_data,
            sigma_in,
            ..EdmConfig::snap_video(sigma_in)
        }
        .init()
        .unwrap();
        for sigma in [0.01, 0.3, 2.0, 50.0] {
            let x = rng.normal::<B, 2>([1, n], device) * sigma_data;
            let eps = rng.normal::<B, 2>([1, n], device);
            let b: TrainingBatch<B, 2> = edm.training_batch(x, eps, &[sigma]).unwrap();
            let (vi, vt) = (variance(b.model_input), variance(b.target));
            assert!(
                (vi - 1.0).abs() < 0.03 && (vt - 1.0).abs() < 0.03,
                "σ_d {sigma_data} σ_in {sigma_in} σ {sigma}: var(input) {vi}, var(target) {vt}"
            );
        }
    }
}

fn loss_is_lambda_weighted_denoising_error<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(5);
    let edm = EdmConfig::snap_video(4.0).init().unwrap();
    let (x, eps) = (
        data::<B>(&mut rng, 1.0, device),
        data::<B>(&mut rng, 1.0, device),
    );
    let out = data::<B>(&mut rng, 1.0, device);
    let batch = edm.training_batch(x.clone(), eps.clone(), &SIGMAS).unwrap();
    let x_sigma = edm.add_noise(x.clone(), eps, &SIGMAS);
    let d = x_sigma * col(|s| edm.precond(s).c_skip, device)
        + out.clone() * col(|s| edm.precond(s).c_out, device);
    let per = (d - x)
        .powi_scalar(2)
        .reshape([SIGMAS.len() as i32, -1])
        .mean_dim(1)
        .reshape([SIGMAS.len()]);
    let lambda: Tensor<B, 1> =
        Tensor::from_floats(SIGMAS.map(|s| edm.loss_weight(s) as f32).as_slice(), device);
    assert_close(
        batch.loss(out),
        (per * lambda).mean(),
        Tolerance::new("LOSS", 1e-4, 1e-4),
    );
}

fn snap_sampler_recovers_a_point_mass<B: Backend>(device: &B::Device) {
    let mut rng = NoiseGenerator::seed_from_u64(6);
    for sigma_in in [1.0, 4.0, 32.0] {
        let edm = EdmConfig::snap_video(sigma_in).init().unwrap();
        let sigmas = edm.sigmas(12).unwrap();
        let target = -0.7;
        // The ideal network for data x ≡ target: F = (target − c_skip·x_σ)/c_out, x_σ = input/c_in.
        let ideal = |input: Tensor<B, 3>, c_noise: f64| {
            let p = edm.precond((4.0 * c_noise).exp());
            Ok::<_, SchedulerError>((input * (-p.c_skip / p.c_in) + target) / p.c_out)
        };
        let noise = rng.normal::<B, 3>([2, 3, 4], device);
        let euler = edm
            .sample(
                EdmSolver::Euler,
                ideal,
                noise.clone(),
                &sigmas,
                Churn::NONE,
                &mut rng,
                FiniteCheck::EveryStep,
                |_| {},
            )
            .unwrap();
        let heun = edm
            .sample(
                EdmSolver::Heun,
                ideal,
                noise,
                &sigmas,
                Churn::NONE,
                &mut rng,
                FiniteCheck::EveryStep,
                |_| {},
            )
            .unwrap();
        let want = Tensor::<B, 3>::full([2, 3, 4], target, device);
        assert_close(
            euler,
            want.clone(),
            Tolerance::new("POINT_MASS", 1e-4, 1e-4),
        );
        assert_close(heun, want, Tolerance::new("POINT_MASS", 1e-4, 1e-4));
    }
}

backend_tests!(
    sigma_in_one_is_plain_edm,
    perfect_prediction_denoises_exactly,
    sigma_data_one_is_v_prediction,
    input_and_target_have_unit_variance,
    loss_is_lambda_weighted_denoising_error,
    snap_sampler_recovers_a_point_mass
);
