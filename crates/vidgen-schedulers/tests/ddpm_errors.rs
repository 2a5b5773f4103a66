//! DDPM / DDIM configs as diffusers `scheduler_config.json`, and the typed errors of bad configs
//! and bad inputs.

use burn::tensor::Tensor;
use vidgen_schedulers::DiscreteNoising;
use vidgen_schedulers::ddim::DdimConfig;
use vidgen_schedulers::ddpm::{DdpmConfig, TimestepSpacing, VarianceType};
use vidgen_schedulers::{NoiseGenerator, PredictionType, Sampler, SchedulerConfig, SchedulerError};
use vidgen_testing::Flex;

/// A DDPM scheduler_config.json as diffusers writes it, plus one key DDPM does not know.
const DDPM_JSON: &str = r#"{
  "_class_name": "DDPMScheduler",
  "_diffusers_version": "0.42.1",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "num_train_timesteps": 1000,
  "prediction_type": "v_prediction",
  "skip_prk_steps": true,
  "steps_offset": 1,
  "timestep_spacing": "trailing",
  "trained_betas": null,
  "variance_type": "fixed_large"
}"#;

/// Stable Diffusion 1.5's DDIM-style config (with PNDM's `skip_prk_steps`).
const DDIM_JSON: &str = r#"{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false
}"#;

#[test]
fn diffusers_json_loads_and_reports_unknown_keys() {
    let loaded = DdpmConfig::from_json(DDPM_JSON).unwrap();
    assert_eq!(loaded.unknown_keys, ["skip_prk_steps"]);
    let c = &loaded.config;
    assert_eq!(c.prediction_type, PredictionType::VPrediction);
    assert_eq!(c.variance_type, VarianceType::FixedLarge);
    assert_eq!(c.timestep_spacing, TimestepSpacing::Trailing);
    assert_eq!(
        (c.beta_start, c.steps_offset, c.clip_sample),
        (0.00085, 1, false)
    );
    // Keys absent from the file keep diffusers' defaults.
    assert_eq!(c.dynamic_thresholding_ratio, 0.995);
    match loaded.strict().unwrap_err() {
        SchedulerError::UnknownKeys { scheduler, keys } => {
            assert_eq!(
                (scheduler, keys),
                ("DDPMScheduler", vec!["skip_prk_steps".to_owned()])
            );
        }
        e => panic!("expected UnknownKeys, got {e}"),
    }
    let ddim = DdimConfig::from_json(DDIM_JSON).unwrap();
    assert_eq!(ddim.unknown_keys, ["skip_prk_steps"]);
    assert!(!ddim.config.set_alpha_to_one);
    let s = ddim.config.init(50, 0.0).unwrap();
    assert_eq!(s.final_alpha_cumprod(), s.alphas_cumprod()[0]);
    assert_eq!(s.timesteps()[..2], [981, 961]);
}

#[test]
fn unknown_enum_values_are_typed_errors() {
    for (json, field, value) in [
        (
            r#"{"variance_type": "fixed_huge"}"#,
            "variance_type",
            "fixed_huge",
        ),
        (
            r#"{"timestep_spacing": "karras"}"#,
            "timestep_spacing",
            "karras",
        ),
        (
            r#"{"beta_schedule": "laplace"}"#,
            "beta_schedule",
            "laplace",
        ),
        (r#"{"prediction_type": "flow"}"#, "prediction_type", "flow"),
    ] {
        match DdpmConfig::from_json(json).unwrap_err() {
            SchedulerError::UnknownVariant {
                field: f, value: v, ..
            } => assert_eq!((f.as_str(), v.as_str()), (field, value)),
            e => panic!("expected UnknownVariant for {json}, got {e}"),
        }
    }
    let e = DdimConfig::from_json(r#"{"timestep_spacing": "uniform"}"#).unwrap_err();
    assert!(
        matches!(e, SchedulerError::UnknownVariant { ref field, .. } if field == "timestep_spacing")
    );
    // A wrongly typed value is a JSON error naming the scheduler.
    let e = DdimConfig::from_json(r#"{"steps_offset": "one"}"#).unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::Json {
                scheduler: "DDIMScheduler",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn to_json_round_trips() {
    let ddpm = DdpmConfig {
        variance_type: VarianceType::LearnedRange,
        trained_betas: Some(vec![0.01; 10]),
        num_train_timesteps: 10,
        thresholding: true,
        ..Default::default()
    };
    let back = DdpmConfig::from_json(&ddpm.to_json())
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(back, ddpm);
    let ddim = DdimConfig {
        set_alpha_to_one: false,
        prediction_type: PredictionType::Sample,
        ..Default::default()
    };
    assert_eq!(
        DdimConfig::from_json(&ddim.to_json())
            .unwrap()
            .strict()
            .unwrap(),
        ddim
    );
    assert!(ddim.to_json().contains("\"set_alpha_to_one\": false"));
}

#[test]
fn step_counts_are_checked() {
    let ddpm = DdpmConfig::default();
    assert!(matches!(
        ddpm.init(0).unwrap_err(),
        SchedulerError::Zero {
            field: "num_inference_steps"
        }
    ));
    let e = ddpm.init(1001).unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::TooManySteps {
            num_inference_steps: 1001,
            num_train_timesteps: 1000
        }
    ));
    assert!(e.to_string().contains("1001"), "{e}");
    let ddim = DdimConfig::default();
    assert!(matches!(
        ddim.init(0, 0.0).unwrap_err(),
        SchedulerError::Zero { .. }
    ));
    assert!(matches!(
        ddim.init(2000, 0.0).unwrap_err(),
        SchedulerError::TooManySteps { .. }
    ));
    // All N steps are fine.
    assert_eq!(ddim.init(1000, 0.0).unwrap().timesteps().len(), 1000);
}

#[test]
fn invalid_configs_name_the_field() {
    let bad = [
        DdpmConfig {
            num_train_timesteps: 0,
            ..Default::default()
        },
        DdpmConfig {
            beta_schedule: "trained".parse().unwrap(),
            ..Default::default()
        },
        DdpmConfig {
            trained_betas: Some(vec![0.1; 3]),
            ..Default::default()
        },
        DdpmConfig {
            dynamic_thresholding_ratio: 1.5,
            ..Default::default()
        },
        DdpmConfig {
            clip_sample_range: 0.0,
            ..Default::default()
        },
        DdpmConfig {
            sample_max_value: -1.0,
            ..Default::default()
        },
        DdpmConfig {
            beta_end: -0.1,
            ..Default::default()
        },
    ];
    let fields = [
        "num_train_timesteps",
        "trained_betas",
        "trained_betas",
        "dynamic_thresholding_ratio",
        "clip_sample_range",
        "sample_max_value",
        "beta_end",
    ];
    for (c, field) in bad.iter().zip(fields) {
        let e = c.init(10).unwrap_err();
        assert!(e.to_string().contains(field), "{field}: {e}");
        // from_json validates too.
        assert!(DdpmConfig::from_json(&c.to_json()).is_err());
    }
}

#[test]
fn fixed_large_log_is_rejected_not_silently_wrong() {
    let c = DdpmConfig {
        variance_type: VarianceType::FixedLargeLog,
        ..Default::default()
    };
    match c.init(10).unwrap_err() {
        SchedulerError::Unsupported {
            field,
            value,
            supported,
        } => {
            assert_eq!(
                (field, value.as_str()),
                ("variance_type", "fixed_large_log")
            );
            assert!(!supported.contains(&"fixed_large_log"));
        }
        e => panic!("expected Unsupported, got {e}"),
    }
}

#[test]
fn custom_timesteps_are_checked() {
    let c = DdpmConfig::default();
    let s = c.init_with_timesteps(&[999, 500, 20, 0]).unwrap();
    assert_eq!(s.timesteps(), &[999, 500, 20, 0]);
    assert_eq!((s.prev_timestep(1), s.prev_timestep(3)), (Some(20), None));
    assert!(matches!(
        c.init_with_timesteps(&[]).unwrap_err(),
        SchedulerError::Zero { .. }
    ));
    for bad in [&[1000, 10][..], &[10, 10], &[5, 9]] {
        assert!(matches!(
            c.init_with_timesteps(bad).unwrap_err(),
            SchedulerError::OutOfDomain {
                field: "timesteps",
                ..
            }
        ));
    }
}

#[test]
fn step_inputs_are_checked() {
    let device = Default::default();
    let x = Tensor::<Flex, 3>::zeros([2, 3, 4], &device);
    let ddpm = DdpmConfig::default().init(4).unwrap();
    let e = ddpm
        .step(4, x.clone(), x.clone(), Some(x.clone()))
        .unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::StepOutOfRange { index: 4, len: 4 }
    ));
    let e = ddpm.step(0, x.clone(), x.clone(), None).unwrap_err();
    assert!(matches!(e, SchedulerError::MissingNoise { index: 0 }));
    // The last step (t = 0) is deterministic.
    assert!(ddpm.step(3, x.clone(), x.clone(), None).is_ok());

    let learned = DdpmConfig {
        variance_type: VarianceType::LearnedRange,
        ..Default::default()
    }
    .init(4)
    .unwrap();
    let e = learned
        .step(0, x.clone(), x.clone(), Some(x.clone()))
        .unwrap_err();
    assert!(
        matches!(
            e,
            SchedulerError::LengthMismatch {
                got: 3,
                expected: 6,
                ..
            }
        ),
        "{e}"
    );
    let two_c = Tensor::<Flex, 3>::zeros([2, 6, 4], &device);
    assert_eq!(
        learned
            .step(0, two_c, x.clone(), Some(x.clone()))
            .unwrap()
            .dims(),
        [2, 3, 4]
    );

    let ddim = DdimConfig::default().init(4, 1.0).unwrap();
    let e = ddim.step(1, x.clone(), x.clone(), None).unwrap_err();
    assert!(matches!(e, SchedulerError::MissingNoise { index: 1 }));
    assert!(ddim.step(3, x.clone(), x.clone(), None).is_ok());
    assert!(matches!(
        ddim.step(9, x.clone(), x, None).unwrap_err(),
        SchedulerError::StepOutOfRange { index: 9, len: 4 }
    ));
}

#[test]
fn training_inputs_are_checked() {
    let device = Default::default();
    let x = Tensor::<Flex, 3>::zeros([2, 3, 4], &device);
    let ddpm = DdpmConfig::default().init(4).unwrap();
    let e = ddpm.add_noise(x.clone(), x.clone(), &[1]).unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::LengthMismatch {
            field: "timesteps",
            got: 1,
            expected: 2
        }
    ));
    let e = ddpm
        .get_velocity(x.clone(), x.clone(), &[1, 1000])
        .unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::StepOutOfRange {
            index: 1000,
            len: 1000
        }
    ));
    let ddim = DdimConfig::default().init(4, 0.0).unwrap();
    assert!(ddim.training_batch(x.clone(), x, &[0, 2000]).is_err());
}

#[test]
fn training_timesteps_are_uniform_in_range() {
    let ddpm = DdpmConfig {
        num_train_timesteps: 10,
        ..Default::default()
    }
    .init(2)
    .unwrap();
    let mut rng = NoiseGenerator::seed_from_u64(3);
    let ts = ddpm.sample_training_timesteps(5000, &mut rng);
    assert!(ts.iter().all(|&t| t < 10));
    let mut counts = [0usize; 10];
    ts.iter().for_each(|&t| counts[t] += 1);
    // Each of the 10 values about 500 times.
    assert!(
        counts.iter().all(|&c| (400..600).contains(&c)),
        "{counts:?}"
    );
    let ddim = DdimConfig::default().init(2, 0.0).unwrap();
    let mut again = NoiseGenerator::seed_from_u64(3);
    assert!(
        ddim.sample_training_timesteps(100, &mut again)
            .iter()
            .all(|&t| t < 1000)
    );
}
