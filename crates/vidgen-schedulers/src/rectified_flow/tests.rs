//! Unit tests: typed errors, JSON configs, training times, the transform ratio and frame masks.
//! Golden parity against diffusers lives in `tests/golden_rectified_flow.rs`.

use super::*;
use crate::common::sample;
use crate::noise::NoiseGenerator;
use vidgen_testing::{Flex, Tolerance, assert_close};

fn err(config: RectifiedFlowConfig, steps: usize, mu: Option<f64>) -> SchedulerError {
    config.init(steps, mu).expect_err("expected an error")
}

#[test]
fn invalid_settings_are_typed_errors() {
    let base = RectifiedFlowConfig::default;
    assert!(matches!(
        err(base(), 0, None),
        SchedulerError::Zero {
            field: "num_inference_steps"
        }
    ));
    assert!(matches!(
        err(base(), 1001, None),
        SchedulerError::TooManySteps { .. }
    ));
    for shift in [0.0, -1.0, f64::NAN] {
        let e = err(RectifiedFlowConfig { shift, ..base() }, 4, None);
        assert!(
            matches!(e, SchedulerError::OutOfDomain { field: "shift", .. }),
            "{e}"
        );
    }
    let dynamic = RectifiedFlowConfig {
        use_dynamic_shifting: true,
        ..base()
    };
    assert!(matches!(
        err(dynamic.clone(), 4, None),
        SchedulerError::Missing { field: "mu", .. }
    ));
    assert!(matches!(
        err(dynamic, 4, Some(f64::INFINITY)),
        SchedulerError::OutOfDomain { field: "mu", .. }
    ));
    let linear = RectifiedFlowConfig {
        use_dynamic_shifting: true,
        time_shift_type: TimeShiftType::Linear,
        ..base()
    };
    assert!(matches!(
        err(linear, 4, Some(0.0)),
        SchedulerError::OutOfDomain { field: "mu", .. }
    ));
    let beta = RectifiedFlowConfig {
        use_beta_sigmas: true,
        ..base()
    };
    assert!(matches!(
        err(beta, 4, None),
        SchedulerError::Unsupported {
            field: "use_beta_sigmas",
            ..
        }
    ));
    let both = RectifiedFlowConfig {
        use_karras_sigmas: true,
        use_exponential_sigmas: true,
        ..base()
    };
    assert!(matches!(
        err(both, 4, None),
        SchedulerError::OutOfDomain {
            field: "use_exponential_sigmas",
            ..
        }
    ));
    let terminal = RectifiedFlowConfig {
        shift_terminal: Some(1.0),
        ..base()
    };
    assert!(matches!(
        err(terminal, 4, None),
        SchedulerError::OutOfDomain {
            field: "shift_terminal",
            ..
        }
    ));
    // diffusers returns NaN sigmas here
    let terminal = RectifiedFlowConfig {
        shift_terminal: Some(0.1),
        ..base()
    };
    assert!(matches!(
        err(terminal, 1, None),
        SchedulerError::OutOfDomain {
            field: "num_inference_steps",
            ..
        }
    ));
    let no_base = RectifiedFlowConfig {
        base_shift: None,
        ..base()
    };
    assert!(matches!(
        no_base.calculate_shift(1024),
        Err(SchedulerError::Missing {
            field: "base_shift",
            ..
        })
    ));
    let flat = RectifiedFlowConfig {
        max_image_seq_len: 256,
        ..base()
    };
    assert!(matches!(
        flat.calculate_shift(1024),
        Err(SchedulerError::NotIncreasing { .. })
    ));
}

#[test]
fn step_errors() {
    let flow = RectifiedFlowConfig::default().init(3, None).unwrap();
    let x = Tensor::<Flex, 2>::zeros([1, 2], &Default::default());
    assert!(matches!(
        flow.step(3, x.clone(), x.clone(), None),
        Err(SchedulerError::StepOutOfRange { index: 3, len: 3 })
    ));
    let stochastic = RectifiedFlowConfig {
        stochastic_sampling: true,
        ..Default::default()
    };
    let flow = stochastic.init(3, None).unwrap();
    assert!(flow.needs_noise(0));
    assert!(matches!(
        flow.step(0, x.clone(), x, None),
        Err(SchedulerError::MissingNoise { index: 0 })
    ));
}

#[test]
fn mu_is_ignored_without_dynamic_shifting() {
    let c = RectifiedFlowConfig {
        shift: 3.0,
        ..Default::default()
    };
    assert_eq!(
        c.init(5, None).unwrap().sigmas(),
        c.init(5, Some(2.0)).unwrap().sigmas()
    );
}

#[test]
fn json_round_trip_and_unknowns() {
    let c = RectifiedFlowConfig {
        shift: 3.0,
        shift_terminal: Some(0.1),
        time_shift_type: TimeShiftType::Linear,
        ..Default::default()
    };
    let back = RectifiedFlowConfig::from_json(&c.to_json()).unwrap();
    assert_eq!(back.config, c);
    assert!(back.unknown_keys.is_empty());
    let file = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.42.1",
        "shift": 7.0, "base_shift": null, "use_flow_sigmas": true}"#;
    let loaded = RectifiedFlowConfig::from_json(file).unwrap();
    assert_eq!(loaded.unknown_keys, vec!["use_flow_sigmas".to_owned()]);
    assert_eq!((loaded.config.shift, loaded.config.base_shift), (7.0, None));
    assert!(matches!(
        loaded.strict(),
        Err(SchedulerError::UnknownKeys { .. })
    ));
    let bad = RectifiedFlowConfig::from_json(r#"{"time_shift_type": "cosine"}"#);
    assert!(
        matches!(bad, Err(SchedulerError::UnknownVariant { field, .. }) if field == "time_shift_type")
    );
    let bad = RectifiedFlowConfig::from_json(r#"{"shift": -2.0}"#);
    assert!(matches!(
        bad,
        Err(SchedulerError::OutOfDomain { field: "shift", .. })
    ));

    let t = FlowTrainingConfig {
        time_sampling: TimeSampling::Uniform,
        ..Default::default()
    };
    assert_eq!(
        FlowTrainingConfig::from_json(&t.to_json())
            .unwrap()
            .strict()
            .unwrap(),
        t
    );
    let bad = FlowTrainingConfig::from_json(r#"{"time_sampling": "logit-normal"}"#);
    assert!(
        matches!(bad, Err(SchedulerError::UnknownVariant { field, .. }) if field == "time_sampling")
    );
    let bad = FlowTrainingConfig::from_json(r#"{"vae_spatial_factor": 0}"#);
    assert!(matches!(
        bad,
        Err(SchedulerError::Zero {
            field: "vae_spatial_factor"
        })
    ));
}

#[test]
fn default_frame_term_is_open_soras() {
    let c = FlowTrainingConfig::default();
    assert_eq!(c.transform_frames, TransformFrames::OpenSora);
    assert_eq!((c.base_resolution, c.base_frames), (512.0 * 512.0, 1.0));
    // `num_frames // 17 * 5`, and 1 for a single frame
    for (frames, term) in [
        (1, 1),
        (2, 0),
        (16, 0),
        (17, 5),
        (20, 5),
        (34, 10),
        (51, 15),
    ] {
        assert_eq!(
            TransformFrames::OpenSora.term(frames),
            term,
            "{frames} frames"
        );
        assert_eq!(TransformFrames::PixelFrames.term(frames), frames);
    }
    let json = r#"{"transform_frames": "pixel_frames"}"#;
    let loaded = FlowTrainingConfig::from_json(json)
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(loaded.transform_frames, TransformFrames::PixelFrames);
    let bad = FlowTrainingConfig::from_json(r#"{"transform_frames": "latent"}"#);
    assert!(
        matches!(bad, Err(SchedulerError::UnknownVariant { field, .. }) if field == "transform_frames")
    );
}

#[test]
fn transform_ratio_formula() {
    let c = FlowTrainingConfig::default();
    // 17 frames of 360×640 pixels: latent T = 1 + 16/4 = 5, 45×80; Open-Sora's frame term 5.
    let space = (360.0f64 * 640.0 / (512.0 * 512.0)).sqrt();
    let r = c.transform_ratio(&[2, 4, 5, 45, 80]).unwrap();
    assert!((r - space * 5f64.sqrt()).abs() < 1e-12, "{r}");
    assert_eq!(c.transform_ratio_pixels(360, 640, 17).unwrap(), r);
    // 2 to 16 frames: Open-Sora's term is 0, and so is the ratio
    assert_eq!(c.transform_ratio_pixels(360, 640, 16).unwrap(), 0.0);
    // an image latent [B, C, H, W] is one frame
    let r = c.transform_ratio(&[2, 4, 64, 64]).unwrap();
    assert!((r - 1.0).abs() < 1e-12);
    let pixel = FlowTrainingConfig {
        transform_frames: TransformFrames::PixelFrames,
        ..c.clone()
    };
    let r = pixel.transform_ratio(&[2, 4, 5, 45, 80]).unwrap();
    assert!((r - space * 17f64.sqrt()).abs() < 1e-12, "{r}");
    let plain = FlowTrainingConfig {
        vae_causal_first_frame: false,
        base_frames: 8.0,
        transform_scale: 2.0,
        ..pixel
    };
    // F = 2·4 = 8 frames, 256×256 pixels: r = 0.5·1·2
    assert_eq!(
        plain.pixel_extent(&[1, 4, 2, 32, 32]).unwrap(),
        (256, 256, 8)
    );
    let r = plain.transform_ratio(&[1, 4, 2, 32, 32]).unwrap();
    assert!((r - 1.0).abs() < 1e-12, "{r}");
    assert!(matches!(
        c.transform_ratio(&[1, 2, 3]),
        Err(SchedulerError::LengthMismatch { got: 3, .. })
    ));
    assert!(matches!(
        c.transform_ratio(&[1, 2, 0, 3, 3]),
        Err(SchedulerError::Zero { .. })
    ));
    assert!(matches!(
        c.transform_ratio_pixels(360, 640, 0),
        Err(SchedulerError::Zero {
            field: "num_frames"
        })
    ));
}

#[test]
fn training_times_in_range_and_shifted() {
    let flow = RectifiedFlowConfig::default().init(1, None).unwrap();
    let dims = [4096, 4, 5, 45, 80];
    let shifted = flow
        .sample_training_times(&dims, &mut NoiseGenerator::seed_from_u64(3))
        .unwrap();
    let plain_cfg = FlowTrainingConfig {
        use_timestep_transform: false,
        ..Default::default()
    };
    let plain = flow.clone().with_training(plain_cfg).unwrap();
    let raw = plain
        .sample_training_times(&dims, &mut NoiseGenerator::seed_from_u64(3))
        .unwrap();
    let r = flow.training_config().transform_ratio(&dims).unwrap();
    assert!(r > 1.0);
    for (&s, &t) in shifted.iter().zip(&raw) {
        assert!((0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&t));
        assert!((s - shift_sigma(t, r)).abs() < 1e-15);
    }
    // logit-normal(0, 1) is symmetric around 1/2; the transform with r > 1 moves mass to noise
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((mean(&raw) - 0.5).abs() < 0.02, "{}", mean(&raw));
    assert!(mean(&shifted) > 0.6, "{}", mean(&shifted));
    let uniform = FlowTrainingConfig {
        time_sampling: TimeSampling::Uniform,
        use_timestep_transform: false,
        ..Default::default()
    };
    let u = flow.with_training(uniform).unwrap();
    let t = u
        .sample_training_times(&[4], &mut NoiseGenerator::seed_from_u64(3))
        .unwrap();
    assert_eq!(t, NoiseGenerator::seed_from_u64(3).uniform_f64(4));
}

#[test]
fn zero_transform_ratio_is_rejected_in_training() {
    // 16 frames through a non-causal 4× VAE: Open-Sora's frame term 16 // 17 · 5 = 0
    let flow = RectifiedFlowConfig::default()
        .init(1, None)
        .unwrap()
        .with_training(FlowTrainingConfig {
            vae_causal_first_frame: false,
            ..Default::default()
        })
        .unwrap();
    let got = flow.sample_training_times(&[2, 4, 4, 8, 8], &mut NoiseGenerator::seed_from_u64(1));
    assert!(
        matches!(got, Err(SchedulerError::OutOfDomain { value, .. }) if value == 0.0),
        "{got:?}"
    );
}

#[test]
fn training_batch_errors() {
    let flow = RectifiedFlowConfig::default().init(1, None).unwrap();
    let x = Tensor::<Flex, 2>::zeros([2, 3], &Default::default());
    let e = flow
        .training_batch(x.clone(), x.clone(), &[0.5])
        .unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::LengthMismatch {
            field: "times",
            got: 1,
            expected: 2
        }
    ));
    let e = flow.training_batch(x.clone(), x, &[0.5, 1.5]).unwrap_err();
    assert!(matches!(
        e,
        SchedulerError::OutOfDomain { field: "times", .. }
    ));
    assert!(FrameMask::new(2, 3, vec![true; 5]).is_err());
}

fn video(seed: u64) -> Tensor<Flex, 5> {
    NoiseGenerator::seed_from_u64(seed).normal([2, 2, 4, 2, 3], &Default::default())
}

#[test]
fn masked_training_keeps_conditioning_frames_clean() {
    let flow = RectifiedFlowConfig::default().init(1, None).unwrap();
    let (x0, noise) = (video(1), video(2));
    // sample 0: image-to-video (frame 0); sample 1: first and last frame
    let mask = FrameMask::new(
        2,
        4,
        vec![true, false, false, false, true, false, false, true],
    )
    .unwrap();
    let times = [0.7, 0.4];
    let masked = flow
        .training_batch_masked(x0.clone(), noise.clone(), &times, &mask)
        .unwrap();
    let plain = flow.training_batch(x0.clone(), noise, &times).unwrap();
    for b in 0..2 {
        for t in 0..4 {
            let got = masked
                .batch
                .model_input
                .clone()
                .narrow(0, b, 1)
                .narrow(2, t, 1);
            let want = if mask.is_conditioning(b, t) {
                &x0
            } else {
                &plain.model_input
            };
            assert_close(
                got,
                want.clone().narrow(0, b, 1).narrow(2, t, 1),
                Tolerance::EXACT,
            );
        }
    }
    // An output that is wrong only on conditioning frames has zero masked loss; the loss on
    // generated frames is Open-Sora's mean over generated elements.
    let cond =
        Tensor::<Flex, 5>::ones([2, 1, 4, 1, 1], &Default::default()) - masked.generated.clone();
    let output = masked.batch.target.clone() + cond * 5.0;
    let loss: f32 = masked.loss(output).into_scalar();
    assert_eq!(loss, 0.0);
    let output = masked.batch.target.clone() + 1.0;
    let loss: f32 = masked.loss(output).into_scalar();
    assert!((loss - 1.0).abs() < 1e-6, "{loss}");
}

#[test]
fn masked_sampling_reinserts_conditioning_frames() {
    let flow = RectifiedFlowConfig {
        shift: 3.0,
        ..Default::default()
    }
    .init(6, None)
    .unwrap();
    let clean = video(5);
    let mask = FrameMask::first_frames(2, 4, 1);
    // an element-wise model, so generated frames evolve as in an unmasked run
    let model = |x: Tensor<Flex, 5>, t: f64| x.clone().tanh() * (0.5 + t / 1000.0) - x * 0.2;
    let mut x = mask.reinsert(video(6), clean.clone()).unwrap();
    for i in 0..flow.num_steps() {
        let v = model(x.clone(), flow.model_time(i));
        x = mask
            .reinsert(flow.step(i, v, x, None).unwrap(), clean.clone())
            .unwrap();
        assert_close(
            x.clone().narrow(2, 0, 1),
            clean.clone().narrow(2, 0, 1),
            Tolerance::EXACT,
        );
    }
    let free = sample(
        &flow,
        model,
        video(6),
        &mut NoiseGenerator::seed_from_u64(0),
    )
    .unwrap();
    assert_close(x.narrow(2, 1, 3), free.narrow(2, 1, 3), Tolerance::EXACT);
    let wrong = Tensor::<Flex, 5>::zeros([2, 2, 3, 2, 3], &Default::default());
    assert!(matches!(
        mask.reinsert(wrong.clone(), wrong),
        Err(SchedulerError::LengthMismatch { .. })
    ));
}
