//! EDM against its references (`golden/gen_schedulers_edm.py`): k-diffusion 0.1.1.post1's
//! `get_sigmas_karras`, `sample_euler` and `sample_heun` (with and without churn, every step via
//! its callback), and diffusers 0.42.1's `EDMEulerScheduler` / `EulerDiscreteScheduler` (configs
//! loaded from diffusers' own JSON, sigmas, timesteps, full trajectories through diffusers' loop).
//! Whole tensors are compared element by element; config errors are checked by variant.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use vidgen_schedulers::edm::*;
use vidgen_schedulers::{
    FiniteCheck, FixedNoise, PredictionType, Progress, Sampler, SchedulerConfig, SchedulerError,
};
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, golden};

/// Schedule tables: ours in f64, the reference's f32 output; one f32 rounding plus `powf`/`ln`.
const TABLE: Tolerance = Tolerance::new("TABLE", 1e-7, 1e-5);
/// diffusers' stock `EulerDiscrete` tables: it builds betas and `ᾱ` in f32, so `1 − ᾱ` near t = 0
/// loses ~4 digits (σ rel. error up to 8.3e-5 measured by the generator); the f64-ᾱ rerun of the
/// same diffusers code is held to [`TABLE`].
const DIFFUSERS_F32_BETAS: Tolerance = Tolerance::new("DIFFUSERS_F32_BETAS", 2e-3, 2e-4);
/// Sampling trajectories of 5–10 f32 steps.
const TRAJECTORY: Tolerance = Tolerance::new("TRAJECTORY", 1e-4, 1e-4);

fn table<B: Backend>(values: &[f64], device: &B::Device) -> Tensor<B, 1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

fn karras_matches_kdiffusion<B: Backend>(device: &B::Device) {
    let g = golden("sched_edm_kdiff.safetensors");
    for key in ["a", "b", "c"] {
        let m = |k: &str| g.meta_f64(&format!("karras_{key}.{k}"));
        let s = karras_sigmas(m("n") as usize, m("sigma_min"), m("sigma_max"), m("rho")).unwrap();
        assert_close(
            table::<B>(&s, device),
            g.tensor(&format!("karras_{key}"), device),
            TABLE,
        );
    }
}

/// The fake denoiser of the generator: `x·sd²/(σ²+sd²) + tanh(x)·0.3·σ/(1+σ)`, sd = 0.5.
fn fake_denoiser<B: Backend>(x: Tensor<B, 3>, sigma: f64) -> Tensor<B, 3> {
    let sd2 = 0.25;
    x.clone() * (sd2 / (sigma * sigma + sd2)) + x.tanh() * (0.3 * sigma / (1.0 + sigma))
}

fn kdiff_trajectories<B: Backend>(device: &B::Device) {
    let g = golden("sched_edm_kdiff.safetensors");
    let n = g.meta_f64("traj.n") as usize;
    let sigmas = karras_sigmas(
        n,
        g.meta_f64("traj.sigma_min"),
        g.meta_f64("traj.sigma_max"),
        g.meta_f64("traj.rho"),
    )
    .unwrap();
    let churn = Churn {
        s_churn: g.meta_f64("churn.s_churn"),
        s_tmin: g.meta_f64("churn.s_tmin"),
        s_tmax: g.meta_f64("churn.s_tmax"),
        s_noise: g.meta_f64("churn.s_noise"),
    };
    assert!(
        (0..n).any(|i| churn.gamma(sigmas[i], n) > 0.0)
            && (0..n).any(|i| churn.gamma(sigmas[i], n) == 0.0)
    );
    let noise: Tensor<B, 4> = g.tensor("churn_noise", device);
    let per_step = (0..n)
        .map(|i| noise.clone().slice(i..i + 1).squeeze_dim(0))
        .collect();
    for (name, heun) in [("euler", false), ("heun", true)] {
        for (tag, c) in [("plain", Churn::NONE), ("churn", churn)] {
            let mut source = FixedNoise {
                per_step: Clone::clone(&per_step),
            };
            let (mut xs, mut dens) = (Vec::new(), Vec::new());
            let cb = |p: Progress<'_, B, 3>| {
                xs.push(p.sample.clone());
                dens.push(p.model_output.clone());
            };
            let fake = |x, sigma| Ok::<_, SchedulerError>(fake_denoiser(x, sigma));
            let x = g.tensor("x_init", device);
            let out = if heun {
                sample_heun(fake, x, &sigmas, c, &mut source, FiniteCheck::EveryStep, cb)
            } else {
                sample_euler(fake, x, &sigmas, c, &mut source, FiniteCheck::EveryStep, cb)
            }
            .unwrap();
            let key = format!("{name}_{tag}");
            assert_close(
                Tensor::<B, 3>::stack::<4>(xs, 0),
                g.tensor(&format!("{key}.x_hat"), device),
                TRAJECTORY,
            );
            assert_close(
                Tensor::<B, 3>::stack::<4>(dens, 0),
                g.tensor(&format!("{key}.denoised"), device),
                TRAJECTORY,
            );
            assert_close(out, g.tensor(&format!("{key}.out"), device), TRAJECTORY);
        }
    }
}

/// The fake model of the generator: `tanh(x)·0.7 + x·0.1·cos(0.01·t)`.
fn fake_model<B: Backend>(x: Tensor<B, 3>, t: f64) -> Tensor<B, 3> {
    x.clone().tanh() * 0.7 + x * (0.1 * (0.01 * t).cos())
}

/// Runs diffusers' loop (`scale_model_input`, model, `step`) and keeps every sample.
fn trajectory<S: Sampler, B: Backend>(s: &S, noise: Tensor<B, 3>) -> Tensor<B, 4> {
    let mut x = noise * s.init_noise_sigma();
    let mut xs = vec![x.clone()];
    for i in 0..s.num_steps() {
        let out = fake_model(s.scale_model_input(i, x.clone()), s.model_time(i));
        x = s.step(i, out, x, None).unwrap();
        xs.push(x.clone());
    }
    Tensor::stack(xs, 0)
}

fn case_keys(g: &Golden, which: &str) -> Vec<String> {
    serde_json::from_str(g.meta(&format!("cases.{which}")).unwrap()).unwrap()
}

fn euler_discrete_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("sched_edm_diffusers.safetensors");
    for key in case_keys(&g, "euler") {
        let t = |name: &str| g.tensor::<B, 1>(&format!("{key}.{name}"), device);
        let config = EulerDiscreteConfig::from_json(g.meta(&format!("{key}.config")).unwrap())
            .unwrap()
            .strict()
            .unwrap();
        let s = config
            .init(g.meta_f64(&format!("{key}.steps")) as usize)
            .unwrap();
        assert_close(table::<B>(s.sigmas(), device), t("sigmas64"), TABLE);
        assert_close(table::<B>(s.timesteps(), device), t("timesteps64"), TABLE);
        assert_close(
            table::<B>(s.sigmas(), device),
            t("sigmas"),
            DIFFUSERS_F32_BETAS,
        );
        assert_close(
            table::<B>(s.timesteps(), device),
            t("timesteps"),
            DIFFUSERS_F32_BETAS,
        );
        assert_close(
            table::<B>(&[s.init_noise_sigma()], device),
            t("init_noise_sigma"),
            TABLE,
        );
        let traj = trajectory::<_, B>(&s, g.tensor("noise", device));
        assert_close(traj, g.tensor(&format!("{key}.traj"), device), TRAJECTORY);
    }
}

fn edm_euler_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("sched_edm_diffusers.safetensors");
    for key in case_keys(&g, "edm") {
        let t = |name: &str| g.tensor::<B, 1>(&format!("{key}.{name}"), device);
        let config = EdmEulerConfig::from_json(g.meta(&format!("{key}.config")).unwrap())
            .unwrap()
            .strict()
            .unwrap();
        let s = config
            .init(g.meta_f64(&format!("{key}.steps")) as usize)
            .unwrap();
        assert_close(table::<B>(s.sigmas(), device), t("sigmas"), TABLE);
        assert_close(table::<B>(&s.timesteps(), device), t("timesteps"), TABLE);
        assert_close(
            table::<B>(&[s.init_noise_sigma()], device),
            t("init_noise_sigma"),
            TABLE,
        );
        let traj = trajectory::<_, B>(&s, g.tensor("noise", device));
        assert_close(traj, g.tensor(&format!("{key}.traj"), device), TRAJECTORY);
    }
}

backend_tests!(
    karras_matches_kdiffusion,
    kdiff_trajectories,
    euler_discrete_matches_diffusers,
    edm_euler_matches_diffusers
);

#[test]
fn diffusers_file_with_unknown_key_is_reported() {
    let text = r#"{"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.42.1",
        "beta_schedule": "scaled_linear", "use_karras_sigmas": true, "clip_sample": false}"#;
    let loaded = EulerDiscreteConfig::from_json(text).unwrap();
    assert_eq!(loaded.unknown_keys, vec!["clip_sample".to_owned()]);
    assert!(loaded.config.use_karras_sigmas);
    let e = loaded.strict().unwrap_err();
    assert!(
        matches!(e, SchedulerError::UnknownKeys { ref keys, .. } if keys == &["clip_sample"]),
        "{e}"
    );
    let text = r#"{"_class_name": "EDMEulerScheduler", "sigma_data": 1.0, "shift": 3.0}"#;
    assert_eq!(
        EdmEulerConfig::from_json(text).unwrap().unknown_keys,
        vec!["shift".to_owned()]
    );
}

#[test]
fn unknown_enum_values_are_typed_errors() {
    let e = EulerDiscreteConfig::from_json(r#"{"timestep_spacing": "evenly"}"#).unwrap_err();
    assert!(
        matches!(e, SchedulerError::UnknownVariant { ref field, ref value, .. } if field == "timestep_spacing" && value == "evenly"),
        "{e}"
    );
    let e = EdmEulerConfig::from_json(r#"{"sigma_schedule": "cosine"}"#).unwrap_err();
    assert!(
        matches!(e, SchedulerError::UnknownVariant { ref field, .. } if field == "sigma_schedule"),
        "{e}"
    );
    // diffusers' EDMEulerScheduler supports only epsilon and v_prediction.
    let e = EdmEulerConfig::from_json(r#"{"prediction_type": "sample"}"#).unwrap_err();
    assert!(
        matches!(e, SchedulerError::UnknownVariant { ref field, .. } if field == "prediction_type"),
        "{e}"
    );
}

#[test]
fn unimplemented_settings_are_rejected() {
    for (text, field) in [
        (
            r#"{"use_exponential_sigmas": true}"#,
            "use_exponential_sigmas",
        ),
        (r#"{"use_beta_sigmas": true}"#, "use_beta_sigmas"),
        (
            r#"{"interpolation_type": "log_linear"}"#,
            "interpolation_type",
        ),
    ] {
        let e = EulerDiscreteConfig::from_json(text).unwrap_err();
        assert!(
            matches!(e, SchedulerError::Unsupported { field: f, .. } if f == field),
            "{e}"
        );
    }
}

#[test]
fn configs_round_trip_through_json() {
    let a = EulerDiscreteConfig {
        beta_schedule: vidgen_schedulers::betas::BetaSchedule::ScaledLinear,
        use_karras_sigmas: true,
        sigma_min: Some(0.1),
        timestep_spacing: vidgen_schedulers::TimestepSpacing::Trailing,
        timestep_type: TimestepType::Continuous,
        prediction_type: PredictionType::VPrediction,
        final_sigmas_type: FinalSigmas::SigmaMin,
        ..Default::default()
    };
    assert_eq!(
        EulerDiscreteConfig::from_json(&a.to_json())
            .unwrap()
            .strict()
            .unwrap(),
        a
    );
    let b = EdmEulerConfig {
        sigma_schedule: SigmaSchedule::Exponential,
        prediction_type: PredictionType::VPrediction,
        rho: 3.0,
        ..Default::default()
    };
    assert_eq!(
        EdmEulerConfig::from_json(&b.to_json())
            .unwrap()
            .strict()
            .unwrap(),
        b
    );
    let c = EdmConfig::snap_video(32.0);
    assert_eq!(
        EdmConfig::from_json(&c.to_json())
            .unwrap()
            .strict()
            .unwrap(),
        c
    );
}

#[test]
fn invalid_values_are_typed_errors() {
    let edm = |c: EdmEulerConfig| c.init(10).unwrap_err();
    let e = edm(EdmEulerConfig {
        sigma_min: 80.0,
        ..Default::default()
    });
    assert!(
        matches!(
            e,
            SchedulerError::NotIncreasing {
                low_field: "sigma_min",
                ..
            }
        ),
        "{e}"
    );
    let e = edm(EdmEulerConfig {
        rho: 0.0,
        ..Default::default()
    });
    assert!(
        matches!(e, SchedulerError::OutOfDomain { field: "rho", .. }),
        "{e}"
    );
    let e = EdmEulerConfig::default().init(0).unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::Zero {
                field: "num_inference_steps"
            }
        ),
        "{e}"
    );
    let e = EulerDiscreteConfig::default().init(0).unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::Zero {
                field: "num_inference_steps"
            }
        ),
        "{e}"
    );
    let e = EulerDiscreteConfig::default().init(1001).unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::TooManySteps {
                num_inference_steps: 1001,
                ..
            }
        ),
        "{e}"
    );
    let e = EulerDiscreteConfig {
        sigma_min: Some(5.0),
        sigma_max: Some(1.0),
        ..Default::default()
    }
    .init(5)
    .unwrap_err();
    assert!(matches!(e, SchedulerError::NotIncreasing { .. }), "{e}");
    let e = EulerDiscreteConfig {
        trained_betas: Some(vec![0.1; 3]),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::LengthMismatch {
                field: "trained_betas",
                ..
            }
        ),
        "{e}"
    );
    let s = EdmEulerConfig::default().init(4).unwrap();
    let x = Tensor::<vidgen_testing::Flex, 1>::zeros([2], &Default::default());
    let e = s.step(4, x.clone(), x, None).unwrap_err();
    assert!(
        matches!(e, SchedulerError::StepOutOfRange { index: 4, len: 4 }),
        "{e}"
    );
    let e = sample_euler(
        |x: Tensor<vidgen_testing::Flex, 1>, _| Ok::<_, SchedulerError>(x),
        Tensor::zeros([2], &Default::default()),
        &[1.0],
        Churn::NONE,
        &mut FixedNoise { per_step: vec![] },
        FiniteCheck::EveryStep,
        |_| {},
    );
    assert!(matches!(
        e,
        Err(SchedulerError::LengthMismatch {
            field: "sigmas",
            ..
        })
    ));
}
