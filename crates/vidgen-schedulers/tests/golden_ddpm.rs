//! DDPM and DDIM against diffusers 0.42.1 (`golden/gen_schedulers_ddpm.py`): timestep and ᾱ
//! tables for every beta schedule × spacing × step count, full sampling trajectories with a
//! deterministic fake denoiser, and the training-side `add_noise` / `get_velocity`. Whole tables
//! and tensors are compared element by element. DDIM's `prev_timestep = diffusers` mode is checked
//! on schedules where diffusers' `t − ⌊N/n⌋` leaves the timestep table
//! (`sched_ddim_diffusers_exact`), where the default table mode must differ.

use burn::tensor::{ElementConversion, Tensor, TensorData, backend::Backend};
use vidgen_schedulers::DiscreteNoising;
use vidgen_schedulers::betas::BetaSchedule;
use vidgen_schedulers::ddim::{DdimConfig, PrevTimestep};
use vidgen_schedulers::ddpm::{DdpmConfig, TimestepSpacing, VarianceType};
use vidgen_schedulers::{ConfigEnum, Sampler, SchedulerConfig};
use vidgen_testing::{Golden, Tolerance, assert_close, assert_close_data, backend_tests, golden};

/// ᾱ tables: diffusers builds betas and their cumulative product in f32 (up to 1000 roundings of
/// ~6e-8 each); ours are f64. Measured: ≤ 1.2e-6 relative wherever `ᾱ > 5e-6`. Below that
/// (squaredcos_cap_v2's last entry, 2.4e-9; the zero-SNR tables' last few, where diffusers' f32
/// `√ᾱ − √ᾱ_T` cancels) f32 reaches 1.3e-5 / 3.8e-5 relative, i.e. < 5e-10 absolute: the 1e-9
/// absolute floor covers exactly those.
const TABLE: Tolerance = Tolerance::new("TABLE", 1e-9, 1e-5);
/// Full trajectories of 4–10 steps: f32 tensor ops on both sides, f32 (diffusers) vs f64 (ours)
/// per-step coefficients, and ε-prediction steps that divide by `√ᾱ_t` down to ~6e-3.
const TRAJECTORY: Tolerance = Tolerance::new("TRAJECTORY", 1e-4, 1e-4);
/// add_noise / get_velocity: one fused multiply-add in f32 with f32 (diffusers) vs f64
/// coefficients.
const TRAINING: Tolerance = Tolerance::new("TRAINING", 1e-6, 1e-5);

const STEPS: [usize; 5] = [1, 3, 4, 16, 50];
const DDPM_SCHEDULES: [&str; 5] = [
    "linear",
    "scaled_linear",
    "squaredcos_cap_v2",
    "sigmoid",
    "trained",
];
const DDIM_SCHEDULES: [&str; 4] = ["linear", "scaled_linear", "squaredcos_cap_v2", "trained"];

fn host(values: &[f64]) -> TensorData {
    TensorData::new(values.to_vec(), [values.len()])
}

fn host_usize(values: &[usize]) -> TensorData {
    host(&values.iter().map(|&t| t as f64).collect::<Vec<_>>())
}

/// diffusers' config for a beta schedule in the table fixture.
fn ddpm_config(g: &Golden, schedule: &str) -> DdpmConfig {
    let mut c = DdpmConfig {
        beta_schedule: BetaSchedule::parse("beta_schedule", schedule).unwrap(),
        ..Default::default()
    };
    if schedule == "scaled_linear" {
        (c.beta_start, c.beta_end) = (0.00085, 0.012);
    }
    if schedule == "trained" {
        c.trained_betas = Some(g.values("trained_betas"));
    }
    c
}

/// The same fields as a [`DdimConfig`].
fn ddim_config(c: &DdpmConfig) -> DdimConfig {
    DdimConfig {
        num_train_timesteps: c.num_train_timesteps,
        beta_start: c.beta_start,
        beta_end: c.beta_end,
        beta_schedule: c.beta_schedule,
        trained_betas: c.trained_betas.clone(),
        timestep_spacing: c.timestep_spacing,
        steps_offset: c.steps_offset,
        rescale_betas_zero_snr: c.rescale_betas_zero_snr,
        ..Default::default()
    }
}

#[test]
fn alphas_cumprod_match_diffusers() {
    let g = golden("sched_ddpm_tables.safetensors");
    for schedule in DDPM_SCHEDULES {
        let c = ddpm_config(&g, schedule);
        let expected = g.data(&format!("ac.{schedule}")).unwrap();
        assert_close_data(&host(c.init(1).unwrap().alphas_cumprod()), expected, TABLE);
        let ddim = ddim_config(&c).init(1, 0.0).unwrap();
        assert_close_data(&host(ddim.alphas_cumprod()), expected, TABLE);
        // set_alpha_to_one = false: the final ᾱ is ᾱ_0.
        let no_one = DdimConfig {
            set_alpha_to_one: false,
            ..ddim_config(&c)
        };
        assert_eq!(
            no_one.init(1, 0.0).unwrap().final_alpha_cumprod(),
            ddim.alphas_cumprod()[0]
        );
        assert_eq!(ddim.final_alpha_cumprod(), 1.0);
    }
    for schedule in ["linear", "scaled_linear"] {
        let c = DdpmConfig {
            rescale_betas_zero_snr: true,
            ..ddpm_config(&g, schedule)
        };
        let expected = g.data(&format!("ac.{schedule}.zsnr")).unwrap();
        assert_close_data(&host(c.init(1).unwrap().alphas_cumprod()), expected, TABLE);
        let ddim = ddim_config(&c).init(1, 0.0).unwrap();
        assert_close_data(&host(ddim.alphas_cumprod()), expected, TABLE);
    }
}

fn check_timesteps(g: &Golden, name: &str, ddpm: &DdpmConfig, steps: usize) {
    let key = format!(
        "ts.{name}.{}.{}.{steps}{}",
        ddpm.beta_schedule.name(),
        ddpm.timestep_spacing.name(),
        if ddpm.steps_offset == 1 { ".off1" } else { "" }
    );
    let expected = g.data(&key).unwrap_or_else(|e| panic!("{e}"));
    let actual = if name == "ddpm" {
        ddpm.init(steps).unwrap().timesteps().to_vec()
    } else {
        ddim_config(ddpm)
            .init(steps, 0.0)
            .unwrap()
            .timesteps()
            .to_vec()
    };
    assert_close_data(&host_usize(&actual), expected, Tolerance::EXACT);
}

#[test]
fn timesteps_match_diffusers() {
    let g = golden("sched_ddpm_tables.safetensors");
    let spacings = TimestepSpacing::VARIANTS;
    for (name, schedules) in [("ddpm", &DDPM_SCHEDULES[..]), ("ddim", &DDIM_SCHEDULES[..])] {
        for schedule in schedules {
            for &spacing in spacings {
                let c = DdpmConfig {
                    timestep_spacing: spacing,
                    ..ddpm_config(&g, schedule)
                };
                for steps in STEPS {
                    check_timesteps(&g, name, &c, steps);
                }
                let offset = DdpmConfig {
                    steps_offset: 1,
                    ..c
                };
                check_timesteps(&g, name, &offset, 4);
            }
        }
    }
    for &spacing in spacings {
        let c = DdpmConfig {
            timestep_spacing: spacing,
            ..Default::default()
        };
        check_timesteps(&g, "ddpm", &c, 1000);
    }
}

#[test]
fn trailing_61_steps_drops_diffusers_extra_timestep() {
    // numpy's arange(1000, 0, -1000/61) overshoots: diffusers gets 62 timesteps, the last -1.
    let g = golden("sched_ddpm_tables.safetensors");
    let quirk = g.values("quirk.trailing61");
    assert_eq!((quirk.len(), quirk[61]), (62, -1.0));
    let c = DdimConfig {
        timestep_spacing: TimestepSpacing::Trailing,
        ..Default::default()
    };
    let ts = c.init(61, 0.0).unwrap().timesteps().to_vec();
    assert_close_data(&host_usize(&ts), &host(&quirk[..61]), Tolerance::EXACT);
}

/// The stand-in denoiser of the fixture: `tanh(x/2)·cos(t/300) + 0.1·sin(x)`, plus `C` more
/// channels for the learned variance types: `tanh(0.7x)` (learned_range), `0.05·(1 + tanh(0.7x))`
/// (learned, a positive variance).
fn fake_model<B: Backend>(x: Tensor<B, 3>, t: f64, variance: VarianceType) -> Tensor<B, 3> {
    let out = (x.clone() * 0.5).tanh() * (t / 300.0).cos() + x.clone().sin() * 0.1;
    match variance {
        VarianceType::LearnedRange => Tensor::cat(vec![out, (x * 0.7).tanh()], 1),
        VarianceType::Learned => Tensor::cat(vec![out, ((x * 0.7).tanh() + 1.0) * 0.05], 1),
        _ => out,
    }
}

/// Every intermediate sample of a manual sampling loop, stacked `[steps, B, C, L]`.
fn trajectory<S: Sampler, B: Backend>(
    s: &S,
    g: &Golden,
    case: &str,
    variance: VarianceType,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut x: Tensor<B, 3> = g.tensor(&format!("{case}.x_T"), device);
    let noise: Tensor<B, 4> = g.tensor(&format!("{case}.noise"), device);
    let [_, b, c, l] = noise.dims();
    let mut samples = Vec::new();
    for i in 0..s.num_steps() {
        let out = fake_model(s.scale_model_input(i, x.clone()), s.model_time(i), variance);
        let z = s
            .needs_noise(i)
            .then(|| noise.clone().narrow(0, i, 1).reshape([b, c, l]));
        x = s
            .step(i, out, x, z)
            .unwrap_or_else(|e| panic!("{case} step {i}: {e}"));
        samples.push(x.clone());
    }
    Tensor::stack(samples, 0)
}

fn trajectories_match_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("sched_ddpm_traj.safetensors");
    let cases: Vec<String> = g
        .meta("cases")
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    for case in &cases {
        let json = g.meta(&format!("{case}.config")).unwrap();
        let steps = g.meta_f64(&format!("{case}.steps")) as usize;
        let expected_ts: Tensor<B, 1> = g.tensor(&format!("{case}.timesteps"), device);
        let (actual, ts) = if case.starts_with("ddpm") {
            // diffusers' own to_json_string(), loaded strictly: every key is known.
            let c = DdpmConfig::from_json(json).unwrap().strict().unwrap();
            let s = c.init(steps).unwrap();
            (
                trajectory::<_, B>(&s, &g, case, c.variance_type, device),
                s.timesteps().to_vec(),
            )
        } else {
            let c = DdimConfig::from_json(json).unwrap().strict().unwrap();
            let s = c.init(steps, g.meta_f64(&format!("{case}.eta"))).unwrap();
            (
                trajectory::<_, B>(&s, &g, case, VarianceType::FixedSmall, device),
                s.timesteps().to_vec(),
            )
        };
        assert_close_data(&host_usize(&ts), &expected_ts.into_data(), Tolerance::EXACT);
        eprintln!("trajectory {case}:");
        assert_close(
            actual,
            g.tensor(&format!("{case}.traj"), device),
            TRAJECTORY,
        );
    }
}

/// Largest `|a − b|`.
fn max_abs_diff<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
    (a - b).abs().max().into_scalar().elem()
}

/// The smallest gap between table-mode and diffusers trajectories that counts as "different":
/// twice the TRAJECTORY allowance. Measured with the diffusers mode within 1.1e-6 (trailing) to
/// 1.2e-4 absolute / 4.8e-7 relative (leading, |x| ~ 250) of diffusers, the table mode is off by
/// 4.5e-4 (trailing 9, η 0), 3.5e-3 (η 1), 9.7e-3 (leading + offset 111: final ᾱ 1 vs ᾱ_0) and
/// 2.5e2 (linspace 4, whose steps all leave the table).
const MODES_DIFFER: f32 = 2e-4;

fn diffusers_prev_timestep_matches_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("sched_ddim_diffusers_exact.safetensors");
    for case in g.meta("cases").unwrap().split(',') {
        let json = g.meta(&format!("{case}.config")).unwrap();
        let steps = g.meta_f64(&format!("{case}.steps")) as usize;
        let eta = g.meta_f64(&format!("{case}.eta"));
        // diffusers' file has no `prev_timestep`: it loads as the default table mode.
        let table = DdimConfig::from_json(json).unwrap().strict().unwrap();
        assert_eq!(table.prev_timestep, PrevTimestep::Table);
        let exact = DdimConfig {
            prev_timestep: PrevTimestep::Diffusers,
            ..table.clone()
        };
        let exact = exact.init(steps, eta).unwrap();
        let expected_ts: Tensor<B, 1> = g.tensor(&format!("{case}.timesteps"), device);
        assert_close_data(
            &host_usize(exact.timesteps()),
            &expected_ts.into_data(),
            Tolerance::EXACT,
        );
        let expected: Tensor<B, 4> = g.tensor(&format!("{case}.traj"), device);
        eprintln!("diffusers-exact trajectory {case}:");
        let actual = trajectory::<_, B>(&exact, &g, case, VarianceType::FixedSmall, device);
        assert_close(actual, expected.clone(), TRAJECTORY);
        let table = table.init(steps, eta).unwrap();
        let by_table = trajectory::<_, B>(&table, &g, case, VarianceType::FixedSmall, device);
        let gap = max_abs_diff(by_table, expected);
        eprintln!("table-mode trajectory {case}: max |table − diffusers| = {gap:.3e}");
        assert!(
            gap > MODES_DIFFER,
            "{case}: table mode within {gap:e} of diffusers"
        );
    }
}

fn add_noise_and_velocity_match_diffusers<B: Backend>(device: &B::Device) {
    let g = golden("sched_ddpm_training.safetensors");
    let x0: Tensor<B, 3> = g.tensor("x0", device);
    let noise: Tensor<B, 3> = g.tensor("noise", device);
    let ts: Vec<usize> = g.values("timesteps").iter().map(|&t| t as usize).collect();
    let linear = DdpmConfig::default().init(10).unwrap();
    let zsnr = DdimConfig {
        beta_schedule: BetaSchedule::ScaledLinear,
        beta_start: 0.00085,
        beta_end: 0.012,
        rescale_betas_zero_snr: true,
        ..Default::default()
    }
    .init(10, 0.0)
    .unwrap();
    let expect = |name: &str| g.tensor::<B, 3>(name, device);
    let (x, n) = (x0.clone(), noise.clone());
    assert_close(
        linear.add_noise(x.clone(), n.clone(), &ts).unwrap(),
        expect("linear.add_noise"),
        TRAINING,
    );
    assert_close(
        linear.get_velocity(x.clone(), n.clone(), &ts).unwrap(),
        expect("linear.velocity"),
        TRAINING,
    );
    let zsnr_noisy = zsnr.add_noise(x.clone(), n.clone(), &ts).unwrap();
    assert_close(zsnr_noisy, expect("scaled_linear_zsnr.add_noise"), TRAINING);
    let zsnr_v = zsnr.get_velocity(x, n, &ts).unwrap();
    assert_close(zsnr_v, expect("scaled_linear_zsnr.velocity"), TRAINING);
}

fn training_batch_targets<B: Backend>(device: &B::Device) {
    let g = golden("sched_ddpm_training.safetensors");
    let x0: Tensor<B, 3> = g.tensor("x0", device);
    let noise: Tensor<B, 3> = g.tensor("noise", device);
    let ts: Vec<usize> = g.values("timesteps").iter().map(|&t| t as usize).collect();
    for (prediction_type, target) in [
        ("epsilon", noise.clone()),
        ("sample", x0.clone()),
        ("v_prediction", g.tensor("linear.velocity", device)),
    ] {
        let c = DdpmConfig {
            prediction_type: prediction_type.parse().unwrap(),
            ..Default::default()
        };
        let batch = c
            .init(10)
            .unwrap()
            .training_batch(x0.clone(), noise.clone(), &ts)
            .unwrap();
        assert_close(
            batch.model_input.clone(),
            g.tensor("linear.add_noise", device),
            TRAINING,
        );
        assert_close(batch.target.clone(), target, TRAINING);
        assert_close(
            batch.model_time.clone(),
            g.tensor("timesteps", device),
            Tolerance::EXACT,
        );
        assert_close(
            batch.loss_weight.clone(),
            Tensor::<B, 1>::ones([4], device),
            Tolerance::EXACT,
        );
        // The loss of a perfect prediction is zero.
        let zero: f32 = batch.loss(batch.target.clone()).into_scalar().elem();
        assert_eq!(zero, 0.0);
    }
}

backend_tests!(
    trajectories_match_diffusers,
    diffusers_prev_timestep_matches_diffusers,
    add_noise_and_velocity_match_diffusers,
    training_batch_targets
);
