//! Rectified flow against diffusers 0.42.1's `FlowMatchEulerDiscreteScheduler` (schedules and whole
//! Euler trajectories through its own `step`), diffusers' logit-normal time sampling and a direct
//! evaluation of Open-Sora 1.2's timestep transform. Fixtures: `golden/gen_schedulers_flow.py`.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use vidgen_schedulers::noise::{FixedNoise, NoiseGenerator};
use vidgen_schedulers::rectified_flow::{FlowTrainingConfig, RectifiedFlowConfig, TimeSampling};
use vidgen_schedulers::{Sampler, SchedulerConfig, SchedulerError, sample};
use vidgen_testing::{Golden, Tolerance, assert_close, assert_close_data, backend_tests};

/// Schedules: our f64 against diffusers' float32 tables; f32 rounding of the reference is ~6e-8
/// relative, and diffusers' float32 `sigma_min` / `timesteps = σ·N` add a few ulps.
const TABLE: Tolerance = Tolerance::new("TABLE", 1e-6, 1e-5);
/// Trajectories: 6–10 f32 Euler steps of a tanh model; rounding accumulates per step.
const TRAJECTORY: Tolerance = Tolerance::new("TRAJECTORY", 1e-4, 1e-4);
/// One f32 formula evaluation (times, ratios, a training batch) against f64/f32 references.
const FORMULA: Tolerance = Tolerance::new("FORMULA", 1e-6, 1e-5);

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

#[test]
fn open_sora_transform_matches_formula() {
    let g = Golden::open("sched_flow_training.safetensors").unwrap();
    let t = g.values("transform.t");
    for case in g.meta("transform.cases").unwrap().split(',') {
        let meta = |k: &str| g.meta(&format!("transform.{case}.{k}")).unwrap().to_owned();
        let shape: Vec<usize> = meta("shape")
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        let c = FlowTrainingConfig {
            vae_spatial_factor: meta("spatial").parse().unwrap(),
            vae_temporal_factor: meta("temporal").parse().unwrap(),
            vae_causal_first_frame: meta("causal") == "True",
            base_resolution: meta("base_res").parse().unwrap(),
            base_frames: meta("base_frames").parse().unwrap(),
            transform_scale: meta("scale").parse().unwrap(),
            ..Default::default()
        };
        let r = c.transform_ratio(&shape).unwrap();
        assert_close_data(
            &host(&[r]),
            &host(&g.values(&format!("transform.{case}.r"))),
            FORMULA,
        );
        let shifted: Vec<f64> = t
            .iter()
            .map(|&t| vidgen_schedulers::rectified_flow::shift_sigma(t, r))
            .collect();
        assert_close_data(
            &host(&shifted),
            &host(&g.values(&format!("transform.{case}.t"))),
            FORMULA,
        );
        // and through the sampler: a standard-normal draw becomes sigmoid(z), then the transform
        let flow = RectifiedFlowConfig::default()
            .init(1, None)
            .unwrap()
            .with_training(c.clone())
            .unwrap();
        let drawn = flow
            .sample_training_times(&shape, &mut NoiseGenerator::seed_from_u64(9))
            .unwrap();
        let z = NoiseGenerator::seed_from_u64(9).normal_f64(shape[0]);
        for (d, z) in drawn.iter().zip(z) {
            let want = vidgen_schedulers::rectified_flow::shift_sigma(1.0 / (1.0 + (-z).exp()), r);
            assert!((d - want).abs() < 1e-12, "{case}: {d} vs {want}");
        }
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
