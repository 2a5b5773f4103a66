//! Open-Sora 1.2's rectified-flow sampler (`OpenSoraRflow`) on velocity fields whose exact ODE
//! solution is known, its timestep list, guidance combination, `pred_sigma` channels and errors.
//! The comparison with upstream's own `RFLOW.sample` on a real model is in the facade's
//! `tests/opensora_sample.rs`.

use burn::tensor::{Tensor, backend::Backend};
use vidgen_schedulers::{FiniteCheck, OpenSoraRflowConfig, PixelExtent, Progress, SchedulerError};
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Euler steps on a field that is exactly linear in `z` along each path: exact up to f32 rounding
/// of a few ops per step over 1–7 steps; measured on flex, max abs error 3.8e-6 with guidance 7
/// (targets up to ~5), 0.42 of this allowance.
const EXACT_PATH: Tolerance = Tolerance::new("EXACT_PATH", 1e-6, 1e-6);

fn rflow(steps: usize, g: f64, transform: bool) -> vidgen_schedulers::OpenSoraRflow {
    OpenSoraRflowConfig {
        num_sampling_steps: steps,
        cfg_scale: g,
        use_timestep_transform: transform,
        ..Default::default()
    }
    .init()
    .unwrap()
}

/// Open-Sora's velocity toward a point mass at `x0`: `v = (x0 − z)/τ` with `τ = t/N`.
fn toward<B: Backend>(x0: Tensor<B, 5>, z: Tensor<B, 5>, t: Tensor<B, 1>) -> Tensor<B, 5> {
    let tau = t.reshape([-1, 1, 1, 1, 1]) / 1000.0;
    (x0 - z) / tau
}

/// With the exact field of a point mass for the prompt (`x_c`) and another for the null caption
/// (`x_u`), the sampler lands on `x_u + g·(x_c − x_u)`, the transformed schedule included, and
/// ignores the `pred_sigma` half of the output.
fn guided_point_masses<B: Backend>(device: &B::Device) {
    let shape = [2, 3, 2, 2, 3];
    let z = Tensor::<B, 5>::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device);
    let x_c = Tensor::<B, 5>::random(shape, burn::tensor::Distribution::Normal(0.5, 0.3), device);
    let x_u = Tensor::<B, 5>::random(shape, burn::tensor::Distribution::Normal(-0.2, 0.3), device);
    let extent = PixelExtent {
        height: vec![256, 720],
        width: vec![256, 1280],
        num_frames: vec![51, 34],
    };
    for (steps, g, transform) in [(5, 7.0, true), (7, 1.0, false), (1, 4.5, true)] {
        let sampler = rflow(steps, g, transform);
        let mut calls = Vec::new();
        let out = sampler
            .sample::<B, SchedulerError, _, _>(
                z.clone(),
                &extent,
                |z_in, t| {
                    assert_eq!(z_in.dims()[0], 4);
                    let [cond_t, uncond_t] = [t.clone().narrow(0, 0, 2), t.clone().narrow(0, 2, 2)];
                    assert_close(cond_t.clone(), uncond_t, Tolerance::EXACT);
                    let v_c = toward(x_c.clone(), z_in.clone().narrow(0, 0, 2), cond_t.clone());
                    let v_u = toward(x_u.clone(), z_in.narrow(0, 2, 2), cond_t);
                    let v = Tensor::cat(vec![v_c, v_u], 0);
                    // `pred_sigma`: a second half of channels the sampler must ignore.
                    Ok(Tensor::cat(vec![v.clone(), v * f32::NAN], 1))
                },
                |p: Progress<'_, B, 5>| calls.push((p.step, p.num_steps)),
                FiniteCheck::EveryStep,
            )
            .unwrap();
        assert_eq!(calls, (0..steps).map(|i| (i, steps)).collect::<Vec<_>>());
        let expected = x_u.clone() + (x_c.clone() - x_u.clone()) * g;
        assert_close(out, expected, EXACT_PATH);
    }
}

backend_tests!(guided_point_masses);

type Cpu = vidgen_testing::Flex;

/// Times `(1 − i/n)·N`, then `N·r·τ / (1 + (r − 1)·τ)` per sample with `r` from the pixel extent
/// and Open-Sora's frame term (`⌊F/17⌋·5`, 1 for one frame).
#[test]
fn timesteps_follow_upstream_formula() {
    let extent = PixelExtent {
        height: vec![720, 256],
        width: vec![1280, 256],
        num_frames: vec![51, 51],
    };
    let ts = rflow(4, 7.0, true).timesteps(&extent).unwrap();
    assert_eq!(ts.len(), 4);
    let ratio = |h: f64, w: f64| (h * w / (512.0 * 512.0)).sqrt() * 15f64.sqrt();
    for (i, row) in ts.iter().enumerate() {
        let tau = 1.0 - i as f64 / 4.0;
        for (b, &(h, w)) in [(720.0, 1280.0), (256.0, 256.0)].iter().enumerate() {
            let r = ratio(h, w);
            let want = r * tau / (1.0 + (r - 1.0) * tau) * 1000.0;
            assert!(
                (row[b] - want).abs() < 1e-9,
                "step {i} sample {b}: {} vs {want}",
                row[b]
            );
        }
    }
    // Sample 0 with one frame makes every sample's frame term 1, as upstream tests only
    // `num_frames[0]`.
    let mixed = PixelExtent {
        height: vec![512, 512],
        width: vec![512, 512],
        num_frames: vec![1, 51],
    };
    let ts = rflow(2, 7.0, true).timesteps(&mixed).unwrap();
    assert_eq!(ts, vec![vec![1000.0, 1000.0], vec![500.0, 500.0]]);
    // Without the transform: the plain grid.
    let ts = rflow(4, 7.0, false).timesteps(&extent).unwrap();
    assert_eq!(ts[3], vec![250.0, 250.0]);
}

#[test]
fn errors_name_the_problem() {
    let zero = OpenSoraRflowConfig {
        num_sampling_steps: 0,
        ..Default::default()
    }
    .init()
    .unwrap_err();
    assert!(zero.to_string().contains("num_sampling_steps"), "{zero}");
    let nan = OpenSoraRflowConfig {
        cfg_scale: f64::NAN,
        ..Default::default()
    }
    .init()
    .unwrap_err();
    assert!(nan.to_string().contains("cfg_scale"), "{nan}");
    // 16 frames: Open-Sora's frame term is 0, so every time would be 0.
    let sixteen = PixelExtent::uniform(1, 256, 256, 16);
    let err = rflow(3, 7.0, true).timesteps(&sixteen).unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
    let ragged = PixelExtent {
        height: vec![256, 256],
        width: vec![256],
        num_frames: vec![17, 17],
    };
    let err = rflow(3, 7.0, true).timesteps(&ragged).unwrap_err();
    assert!(err.to_string().contains("width"), "{err}");
    // A batch that disagrees with the latent, and a model output of the wrong shape.
    let device = Default::default();
    let z = Tensor::<Cpu, 5>::zeros([2, 4, 1, 2, 2], &device);
    let err = rflow(2, 7.0, true)
        .sample::<Cpu, SchedulerError, _, _>(
            z.clone(),
            &PixelExtent::uniform(3, 256, 256, 17),
            |z, _| Ok(z),
            |_| {},
            FiniteCheck::EveryStep,
        )
        .unwrap_err();
    assert!(err.to_string().contains("batch"), "{err}");
    let err = rflow(2, 7.0, true)
        .sample::<Cpu, SchedulerError, _, _>(
            z,
            &PixelExtent::uniform(2, 256, 256, 17),
            |z, _| Ok(z.narrow(1, 0, 2)),
            |_| {},
            FiniteCheck::EveryStep,
        )
        .unwrap_err();
    assert!(err.to_string().contains("model output"), "{err}");
    // The model's own error comes back unchanged.
    let z = Tensor::<Cpu, 5>::zeros([1, 1, 1, 1, 1], &device);
    let err = rflow(2, 7.0, false)
        .sample::<Cpu, SchedulerError, _, _>(
            z,
            &PixelExtent::uniform(1, 8, 8, 1),
            |_, _| {
                Err(SchedulerError::Zero {
                    field: "model says no",
                })
            },
            |_| {},
            FiniteCheck::EveryStep,
        )
        .unwrap_err();
    assert!(err.to_string().contains("model says no"), "{err}");
}
