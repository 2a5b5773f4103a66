//! Rectified flow against diffusers 0.42.1's `FlowMatchEulerDiscreteScheduler` (schedules and whole
//! Euler trajectories through its own `step`), diffusers' logit-normal time sampling and Open-Sora
//! 1.2's own `timestep_transform` (hpcaitech/Open-Sora v1.2.0, commit in the fixture metadata). Our
//! pixel-frames variant of the transform has no upstream reference: it is checked against its
//! formula evaluated in the generator. Fixtures: `golden/gen_schedulers_flow.py`.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use vidgen_schedulers::noise::{FixedNoise, NoiseGenerator};
use vidgen_schedulers::rectified_flow::{
    FlowTrainingConfig, RectifiedFlowConfig, TimeSampling, TransformFrames, shift_sigma,
};
use vidgen_schedulers::{Sampler, SchedulerConfig, SchedulerError, sample};
use vidgen_testing::{Golden, Tolerance, assert_close, assert_close_data, backend_tests};

/// Schedules: our f64 against diffusers' float32 tables; f32 rounding of the reference is ~6e-8
/// relative, and diffusers' float32 `sigma_min` / `timesteps = σ·N` add a few ulps.
const TABLE: Tolerance = Tolerance::new("TABLE", 1e-6, 1e-5);
/// Trajectories: 6–10 f32 Euler steps of a tanh model; rounding accumulates per step.
const TRAJECTORY: Tolerance = Tolerance::new("TRAJECTORY", 1e-4, 1e-4);
/// One f32 formula evaluation (times, ratios, a training batch) against f64/f32 references:
/// measured on flex, max abs error 1.1e-7 on values in [0, 1] and 2.9e-5 on times in [0, 1000]
/// (f32 spacing there is 6.1e-5), at most 0.35 of this allowance.
const FORMULA: Tolerance = Tolerance::new("FORMULA", 2e-7, 1e-7);

fn host(values: &[f64]) -> TensorData {
    TensorData::new(values.to_vec(), [values.len()])
}

fn config(g: &Golden, key: &str) -> RectifiedFlowConfig {
    let json = g.meta(&format!("{key}.config")).expect("config metadata");
    let loaded = RectifiedFlowConfig::from_json(json).expect("diffusers config loads");
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    loaded.config
}

fn mu(g: &Golden, key: &str) -> Option<f64> {
    g.meta(&format!("{key}.mu")).map(|m| m.parse().unwrap())
}

#[test]
fn schedules_match_diffusers() {
    let g = Golden::open("sched_flow_tables.safetensors").unwrap();
    for case in g.meta("cases").unwrap().split(',') {
        let c = config(&g, case);
        let seq_len = g
            .meta(&format!("{case}.seq_len"))
            .map(|s| s.parse::<usize>().unwrap());
        let mu = match seq_len {
            Some(l) => {
                let ours = c.calculate_shift(l).unwrap();
                let theirs = mu(&g, case).unwrap();
                assert!(
                    (ours - theirs).abs() <= 1e-12 * theirs.abs().max(1.0),
                    "{case}: mu {ours} vs {theirs}"
                );
                Some(ours)
            }
            None => mu(&g, case),
        };
        for n in [1usize, 4, 50] {
            let sigmas = g.values(&format!("{case}.{n}.sigmas"));
            if sigmas.iter().any(|s| s.is_nan()) {
                // diffusers divides 0 by 0 for shift_terminal with one step; we refuse instead.
                assert!(c.shift_terminal.is_some() && n == 1, "{case}.{n}");
                assert!(matches!(
                    c.init(n, mu),
                    Err(SchedulerError::OutOfDomain { .. })
                ));
                continue;
            }
            let flow = c.init(n, mu).unwrap();
            assert_eq!(flow.num_steps(), n);
            assert_close_data(&host(flow.sigmas()), &host(&sigmas), TABLE);
            let timesteps = g.values(&format!("{case}.{n}.timesteps"));
            assert_close_data(&host(flow.timesteps()), &host(&timesteps), TABLE);
            let model_times: Vec<f64> = (0..n).map(|i| flow.model_time(i)).collect();
            assert_eq!(model_times, flow.timesteps());
        }
    }
}

/// The fake velocity model of the generator: `v = tanh(x)·(0.5 + t/1000) − 0.2·x`.
fn fake_velocity<B: Backend>(x: Tensor<B, 3>, t: f64) -> Tensor<B, 3> {
    x.clone().tanh() * (0.5 + t / 1000.0) - x * 0.2
}

fn trajectories<B: Backend>(device: &B::Device) {
    let g = Golden::open("sched_flow_trajectories.safetensors").unwrap();
    let x_init = g.tensor::<B, 3>("x_init", device);
    for case in g.meta("cases").unwrap().split(',') {
        let c = config(&g, case);
        let n: usize = g.meta(&format!("{case}.steps")).unwrap().parse().unwrap();
        let flow = c.init(n, mu(&g, case)).unwrap();
        let expected = g.tensor::<B, 4>(&format!("{case}.samples"), device);
        let noise = c
            .stochastic_sampling
            .then(|| g.tensor::<B, 4>(&format!("{case}.noise"), device));
        let mut x = x_init.clone();
        for i in 0..n {
            let v = fake_velocity(x.clone(), flow.model_time(i));
            let eps = noise
                .as_ref()
                .map(|z| z.clone().narrow(0, i, 1).squeeze_dim(0));
            x = flow.step(i, v, x, eps).unwrap();
            let want: Tensor<B, 3> = expected.clone().narrow(0, i + 1, 1).squeeze_dim(0);
            assert_close(x.clone(), want, TRAJECTORY);
        }
        // the generic loop gives the same end point
        let per_step = (0..n)
            .map(|i| match &noise {
                Some(z) => z.clone().narrow(0, i, 1).squeeze_dim(0),
                None => Tensor::zeros(x_init.dims(), device),
            })
            .collect();
        let end = sample(
            &flow,
            fake_velocity,
            x_init.clone(),
            &mut FixedNoise { per_step },
        )
        .unwrap();
        assert_close(end, x, Tolerance::EXACT);
    }
}

fn training_batch<B: Backend>(device: &B::Device) {
    let g = Golden::open("sched_flow_training.safetensors").unwrap();
    let flow = RectifiedFlowConfig::default().init(1, None).unwrap();
    let times = g.values("batch.t");
    let batch = flow
        .training_batch(
            g.tensor::<B, 3>("batch.x0", device),
            g.tensor::<B, 3>("batch.noise", device),
            &times,
        )
        .unwrap();
    assert_close(
        batch.model_input,
        g.tensor::<B, 3>("batch.x_t", device),
        FORMULA,
    );
    assert_close(
        batch.target,
        g.tensor::<B, 3>("batch.target", device),
        FORMULA,
    );
    let model_time: Vec<f64> = times.iter().map(|t| t * 1000.0).collect();
    assert_close_data(
        &batch.model_time.into_data(),
        &TensorData::new(model_time, [3]),
        FORMULA,
    );
    assert_close_data(
        &batch.loss_weight.into_data(),
        &TensorData::new(vec![1.0f64; 3], [3]),
        Tolerance::EXACT,
    );
}

backend_tests!(trajectories, training_batch);

#[test]
fn logit_normal_matches_diffusers() {
    let g = Golden::open("sched_flow_training.safetensors").unwrap();
    for key in ["ln_a", "ln_b"] {
        let c = FlowTrainingConfig {
            time_sampling: TimeSampling::LogitNormal,
            logit_mean: g.meta_f64(&format!("{key}.mean")),
            logit_std: g.meta_f64(&format!("{key}.std")),
            ..Default::default()
        };
        let t: Vec<f64> = g
            .values(&format!("{key}.z"))
            .into_iter()
            .map(|z| c.time_from_draw(z))
            .collect();
        assert_close_data(&host(&t), &host(&g.values(&format!("{key}.t"))), FORMULA);
    }
}

fn meta_shape(g: &Golden, key: &str) -> Option<Vec<usize>> {
    g.meta(key)
        .map(|s| s.split(',').map(|d| d.parse().unwrap()).collect())
}

fn meta_usize(g: &Golden, key: &str) -> usize {
    g.meta(key).unwrap().parse().unwrap()
}

/// Through the sampler: a standard-normal draw becomes sigmoid(z), then the transform with `r`.
fn check_sampled_times(case: &str, c: &FlowTrainingConfig, shape: &[usize], r: f64) {
    let flow = RectifiedFlowConfig::default()
        .init(1, None)
        .unwrap()
        .with_training(c.clone())
        .unwrap();
    let drawn = flow.sample_training_times(shape, &mut NoiseGenerator::seed_from_u64(9));
    if r == 0.0 {
        // Open-Sora's frame term is 0 for 2 to 16 frames: rejected rather than training at t = 0
        assert!(
            matches!(drawn, Err(SchedulerError::OutOfDomain { value, .. }) if value == 0.0),
            "{case}: {drawn:?}"
        );
        return;
    }
    let z = NoiseGenerator::seed_from_u64(9).normal_f64(shape[0]);
    for (d, z) in drawn.unwrap().iter().zip(z) {
        let want = shift_sigma(1.0 / (1.0 + (-z).exp()), r);
        assert!((d - want).abs() < 1e-12, "{case}: {d} vs {want}");
    }
}

/// The default frame term against Open-Sora 1.2's own `timestep_transform` (v1.2.0), from the
/// pixel extent and, where the case gives one, from a latent shape and VAE factors. The reference
/// returns `t'·num_timesteps`; 2 to 16 frames give ratio 0 there (`t' = 0`, NaN at `t = 1`).
#[test]
fn open_sora_transform_matches_open_sora() {
    let g = Golden::open("sched_flow_training.safetensors").unwrap();
    assert_eq!(g.meta("upstream_tag"), Some("v1.2.0"));
    let t = g.values("transform.t");
    for case in g.meta("open_sora.cases").unwrap().split(',') {
        let key = |k: &str| format!("open_sora.{case}.{k}");
        let mut c = FlowTrainingConfig {
            base_resolution: g.meta_f64(&key("base_resolution")),
            base_frames: g.meta_f64(&key("base_num_frames")),
            transform_scale: g.meta_f64(&key("scale")),
            ..Default::default()
        };
        assert_eq!(c.transform_frames, TransformFrames::OpenSora);
        let (height, width, frames) = (
            meta_usize(&g, &key("height")),
            meta_usize(&g, &key("width")),
            meta_usize(&g, &key("num_frames")),
        );
        let r = c.transform_ratio_pixels(height, width, frames).unwrap();
        let n = g.meta_f64(&key("num_timesteps"));
        let shifted: Vec<f64> = t.iter().map(|&t| shift_sigma(t, r) * n).collect();
        assert_close_data(&host(&shifted), &host(&g.values(&key("t"))), FORMULA);
        if let Some(shape) = meta_shape(&g, &key("shape")) {
            c.vae_spatial_factor = meta_usize(&g, &key("spatial"));
            c.vae_temporal_factor = meta_usize(&g, &key("temporal"));
            c.vae_causal_first_frame = g.meta(&key("causal")) == Some("True");
            assert_eq!(c.pixel_extent(&shape).unwrap(), (height, width, frames));
            assert_eq!(c.transform_ratio(&shape).unwrap(), r, "{case}");
            check_sampled_times(case, &c, &shape, r);
        }
    }
}

/// The pixel-frames variant ([`TransformFrames::PixelFrames`]) against its formula evaluated in
/// the generator: it is not Open-Sora's and has no upstream reference.
#[test]
fn pixel_frames_transform_matches_formula() {
    let g = Golden::open("sched_flow_training.safetensors").unwrap();
    let t = g.values("transform.t");
    for case in g.meta("pixel_frames.cases").unwrap().split(',') {
        let key = |k: &str| format!("pixel_frames.{case}.{k}");
        let shape = meta_shape(&g, &key("shape")).unwrap();
        let c = FlowTrainingConfig {
            transform_frames: TransformFrames::PixelFrames,
            vae_spatial_factor: meta_usize(&g, &key("spatial")),
            vae_temporal_factor: meta_usize(&g, &key("temporal")),
            vae_causal_first_frame: g.meta(&key("causal")) == Some("True"),
            base_resolution: g.meta_f64(&key("base_res")),
            base_frames: g.meta_f64(&key("base_frames")),
            transform_scale: g.meta_f64(&key("scale")),
            ..Default::default()
        };
        let r = c.transform_ratio(&shape).unwrap();
        assert_close_data(&host(&[r]), &host(&g.values(&key("r"))), FORMULA);
        let shifted: Vec<f64> = t.iter().map(|&t| shift_sigma(t, r)).collect();
        assert_close_data(&host(&shifted), &host(&g.values(&key("t"))), FORMULA);
        check_sampled_times(case, &c, &shape, r);
    }
}

#[test]
fn diffusers_config_file_loads() {
    let g = Golden::open("sched_flow_tables.safetensors").unwrap();
    let json = g.meta("dyn_exp_terminal.config").unwrap();
    // `_class_name` / `_diffusers_version` are metadata; an extra key is reported, not dropped.
    let extra = json.replacen('{', r#"{"use_flow_sigmas": false,"#, 1);
    let loaded = RectifiedFlowConfig::from_json(&extra).unwrap();
    assert_eq!(loaded.unknown_keys, ["use_flow_sigmas"]);
    assert_eq!(loaded.config.shift_terminal, Some(0.1));
    assert_eq!(loaded.config.max_shift, Some(2.05));
    assert!(matches!(
        loaded.clone().strict(),
        Err(SchedulerError::UnknownKeys { .. })
    ));
    let again = RectifiedFlowConfig::from_json(&loaded.config.to_json())
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(again, loaded.config);
    let bad = json.replace("\"exponential\"", "\"quadratic\"");
    assert!(matches!(
        RectifiedFlowConfig::from_json(&bad),
        Err(SchedulerError::UnknownVariant { field, .. }) if field == "time_shift_type"
    ));
}
