//! Snap Video's FIT and its self-conditioned EDM sampler: shapes, the grouped fast path against
//! its masked reference twin, groups communicating only through the latents, self-conditioning
//! semantics, T = 1, sampling (σ_in scaling checked with an exactly solvable network) and config
//! errors.

use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData, backend::Backend};
use std::cell::Cell;
use vidgen_models::snap_fit::{EdmSolver, SnapFit, SnapFitCond, SnapFitConfig};
use vidgen_models::{
    Conditioning, Denoiser, GenerateOptions, Kernel, ModelError, TextConditioning, WithKernel,
    sample,
};
use vidgen_schedulers::edm::{Churn, Edm, EdmConfig, EdmSampler, snap_video_sigma_in};
use vidgen_schedulers::{FiniteCheck, NoiseGenerator};
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Grouped fused attention vs masked naive attention through a whole tiny model (2 blocks of 4
/// attention layers and 4 feed-forwards each): the same math with f32 sums in another order;
/// measured on flex, max abs error 6.0e-7 on values of O(1).
const GROUPED_VS_MASKED: Tolerance = Tolerance::new("GROUPED_VS_MASKED", 3e-6, 1e-6);
/// A perfect network through 8 Heun steps: the ODE is solved exactly up to f32 rounding of
/// `c_skip·x_σ + c_out·F` per call; measured on flex, max abs error 3.0e-8 on values of ~0.3.
const EXACT_ODE: Tolerance = Tolerance::new("EXACT_ODE", 1e-7, 2e-7);

const TEXT_LEN: usize = 3;

fn config() -> SnapFitConfig {
    // Patch grid (t, 4, 4) for 8×8 frames; groups of 2×2 patches → G = 4 groups.
    SnapFitConfig::new(2, 16, 16, 3, 2, 4, 5)
        .with_group_size([2, 2])
        .with_n_latent_layers(1)
        .with_frequency_dim(16)
        .with_mlp_ratio(2.0)
        .with_self_cond_zero_init(false)
}

fn cond<B: Backend>(b: usize, device: &B::Device) -> SnapFitCond<B> {
    let text = Tensor::random([b, TEXT_LEN, 5], Distribution::Normal(0.0, 1.0), device);
    // The second prompt has one real token; its padding must be masked out.
    let lengths: Vec<usize> = (0..b).map(|i| if i == 1 { 1 } else { TEXT_LEN }).collect();
    SnapFitCond {
        text: TextConditioning::from_lens(text, &lengths).unwrap(),
        fps: Tensor::from_data(
            TensorData::new((0..b).map(|i| 8.0 + 16.0 * i as f32).collect(), [b]),
            device,
        ),
        resolution: Tensor::from_data(
            TensorData::new(
                (0..b).flat_map(|_| [36.0f32, 64.0]).collect::<Vec<_>>(),
                [b, 2],
            ),
            device,
        ),
    }
}

fn input<B: Backend>(dims: [usize; 5], device: &B::Device) -> Tensor<B, 5> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

fn c_noise<B: Backend>(b: usize, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(
        TensorData::new((0..b).map(|i| -0.5 + 0.7 * i as f32).collect(), [b]),
        device,
    )
}

fn model<B: Backend>(cfg: &SnapFitConfig, device: &B::Device) -> SnapFit<B> {
    cfg.init(device).unwrap_or_else(|e| panic!("{e}"))
}

fn forward_shapes_and_reference_twin<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let (b, dims) = (2, [2, 2, 3, 8, 8]);
    let (x, cn, c) = (
        input::<B>(dims, device),
        c_noise(b, device),
        cond(b, device),
    );
    let prev = Tensor::random([b, 4 * 3, 16], Distribution::Normal(0.0, 1.0), device);
    let (out, latents) = m
        .forward(x.clone(), cn.clone(), &c, Some(prev.clone()))
        .unwrap();
    assert_eq!(out.dims(), dims);
    assert_eq!(latents.dims(), [b, 4 * 3, 16]);
    let reference = m.with_kernel(Kernel::Reference);
    assert_eq!(reference.kernel, Kernel::Reference);
    for block in &reference.blocks {
        assert_eq!(block.cond_read.kernel, Kernel::Reference);
        assert!(
            block
                .latent_layers
                .iter()
                .all(|l| l.attn.kernel == Kernel::Reference)
        );
    }
    let (out_ref, latents_ref) = reference.forward(x, cn, &c, Some(prev)).unwrap();
    assert_close(out, out_ref, GROUPED_VS_MASKED);
    assert_close(latents, latents_ref, GROUPED_VS_MASKED);
}

/// Max |a − b| over the patch columns `w_range` (pixels) of every frame and row.
fn max_diff_in_columns<B: Backend>(
    a: Tensor<B, 5>,
    b: Tensor<B, 5>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> f32 {
    let [n, c, t, _, _] = a.dims();
    let d = (a - b).abs().slice([0..n, 0..c, 0..t, rows, cols]);
    d.max().into_scalar().elem()
}

fn groups_interact_only_through_latents<B: Backend>(device: &B::Device) {
    // 8×8 frames, patches 2×2 → 4×4 patch grid, groups 2×2 patches = 4×4 pixels. Group 0 is
    // pixels [0, 4)², group 3 pixels [4, 8)². Perturb one pixel of group 0 in the last frame.
    let dims = [1, 2, 3, 8, 8];
    let x = input::<B>(dims, device);
    let bump = Tensor::<B, 5>::zeros(dims, device).slice_assign(
        [0..1, 0..1, 2..3, 1..2, 1..2],
        Tensor::ones([1, 1, 1, 1, 1], device),
    );
    let (cn, c) = (c_noise::<B>(1, device), cond::<B>(1, device));
    for (layers, interacts) in [(0, false), (1, true)] {
        let m = model::<B>(&config().with_n_latent_layers(layers), device);
        let (y0, _) = m.forward(x.clone(), cn.clone(), &c, None).unwrap();
        let (y1, _) = m
            .forward(x.clone() + bump.clone(), cn.clone(), &c, None)
            .unwrap();
        let own = max_diff_in_columns(y0.clone(), y1.clone(), 0..4, 0..4);
        let other = max_diff_in_columns(y0, y1, 4..8, 4..8);
        assert!(own > 1e-4, "group 0 must see its own change ({own})");
        if interacts {
            assert!(
                other > 1e-5,
                "latent self-attention must carry it to group 3 ({other})"
            );
        } else {
            // Without latent self-attention nothing mixes groups: bit-for-bit equal outputs.
            assert_eq!(other, 0.0, "group 3 changed without latent self-attention");
        }
    }
}

fn self_conditioning_semantics<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let (b, dims) = (2, [2, 2, 2, 8, 8]);
    let (x, cn, c) = (
        input::<B>(dims, device),
        c_noise(b, device),
        cond(b, device),
    );
    let (none, lat_none) = m.forward(x.clone(), cn.clone(), &c, None).unwrap();
    let zeros = Tensor::zeros([b, 12, 16], device);
    let (zero, lat_zero) = m.forward(x.clone(), cn.clone(), &c, Some(zeros)).unwrap();
    // RMSNorm(0) = 0 and a bias-free projection: zero latents add exactly nothing.
    assert_close(zero, none.clone(), Tolerance::EXACT);
    assert_close(lat_zero, lat_none.clone(), Tolerance::EXACT);
    let (with, _) = m
        .forward(x.clone(), cn.clone(), &c, Some(lat_none))
        .unwrap();
    let diff: f32 = (with - none.clone()).abs().max().into_scalar().elem();
    assert!(
        diff > 1e-4,
        "previous latents must change the output ({diff})"
    );
    // RIN's zero-initialised projection: a fresh model ignores self-conditioning.
    let fresh = model::<B>(&config().with_self_cond_zero_init(true), device);
    let prev = Tensor::random([b, 12, 16], Distribution::Normal(0.0, 1.0), device);
    let (a, _) = fresh.forward(x.clone(), cn.clone(), &c, None).unwrap();
    let (p, _) = fresh.forward(x, cn, &c, Some(prev)).unwrap();
    assert_close(p, a, Tolerance::EXACT);
}

fn single_frame_and_no_padding<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let dims = [1, 2, 1, 8, 4];
    let mut c = cond::<B>(1, device);
    c.text.padding = None;
    let (out, latents) = m
        .forward(input(dims, device), c_noise(1, device), &c, None)
        .unwrap();
    assert_eq!(out.dims(), dims);
    assert_eq!(latents.dims(), [1, 2 * 3, 16]); // patch grid 4×2 → 2×1 groups
    let finite = out.is_finite().all().into_scalar().elem::<bool>();
    assert!(finite);
}

/// The ideal network for data `x ≡ target`: `F = (target − c_skip·x_σ)/c_out` with
/// `x_σ = x_in/c_in`, counting its calls.
struct Perfect<'a> {
    edm: &'a Edm,
    target: f64,
    calls: Cell<usize>,
}

impl<B: Backend> Denoiser<B> for Perfect<'_> {
    fn denoise(
        &self,
        x_in: Tensor<B, 5>,
        c_noise: Tensor<B, 1>,
        _text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let c_noise: f32 = c_noise.slice(0..1).into_scalar().elem();
        let p = self.edm.precond((4.0 * c_noise as f64).exp());
        self.calls.set(self.calls.get() + 1);
        Ok((x_in * (-p.c_skip / p.c_in) + self.target) / p.c_out)
    }
}

fn perfect_network_sampling_is_scaled_by_sigma_in<B: Backend>(device: &B::Device) {
    // Data is the single point x* = 0.3: the ideal network makes D = x* exactly, so the sampler
    // returns x* only if it divides D by σ_in inside the ODE and multiplies the result by σ_in
    // at the end.
    let sigma_in = snap_video_sigma_in(2.0, 4);
    let edm = EdmConfig::snap_video(sigma_in).init().unwrap();
    let target = 0.3;
    let text = Conditioning::text(TextConditioning::new(Tensor::zeros([2, 1, 1], device)));
    for solver in [EdmSolver::Euler, EdmSolver::Heun] {
        let sampler = EdmSampler::new(edm.clone(), solver, 8).unwrap();
        let perfect = Perfect {
            edm: &edm,
            target,
            calls: Cell::new(0),
        };
        let mut rng = NoiseGenerator::seed_from_u64(1);
        let noise = rng.normal::<B, 5>([2, 3, 1, 1, 1], device);
        let mut steps = 0;
        let x = sample(
            &sampler,
            &perfect,
            &text,
            noise,
            &mut rng,
            FiniteCheck::EveryStep,
            |_| steps += 1,
        )
        .unwrap();
        let expected_calls = if solver == EdmSolver::Heun { 15 } else { 8 };
        assert_eq!((perfect.calls.get(), steps), (expected_calls, 8));
        assert_close(x, Tensor::full([2, 3, 1, 1, 1], target, device), EXACT_ODE);
    }
}

/// The denoiser threads self-conditioning: `None` on its first call, then the latents of the
/// call before.
fn denoiser_threads_self_conditioning<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let (b, dims) = (2, [2, 2, 2, 8, 8]);
    let (x, cn, c) = (
        input::<B>(dims, device),
        c_noise(b, device),
        cond(b, device),
    );
    let x2 = input::<B>(dims, device);
    let denoiser = m.denoiser(c.fps.clone(), c.resolution.clone());
    let first = denoiser.denoise(x.clone(), cn.clone(), &c.text).unwrap();
    let second = denoiser.denoise(x2.clone(), cn.clone(), &c.text).unwrap();
    let (want_first, latents) = m.forward(x, cn.clone(), &c, None).unwrap();
    let (want_second, _) = m.forward(x2, cn, &c, Some(latents)).unwrap();
    assert_close(first, want_first, Tolerance::EXACT);
    assert_close(second, want_second, Tolerance::EXACT);
}

fn model_sampling_runs<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let dims = [1, 2, 2, 8, 8];
    let edm = EdmConfig::snap_video(snap_video_sigma_in(1.0, 2))
        .init()
        .unwrap();
    let sampler = EdmSampler::new(edm, EdmSolver::Heun, 3).unwrap();
    let mut rng = NoiseGenerator::seed_from_u64(7);
    let noise = rng.normal::<B, 5>(dims, device);
    let c = cond::<B>(1, device);
    let x = m
        .sample(&sampler, noise, &c, &mut rng, FiniteCheck::EveryStep)
        .unwrap();
    assert_eq!(x.dims(), dims);
    assert!(x.is_finite().all().into_scalar().elem::<bool>());
    let err = m
        .sample(
            &EdmSampler {
                solver: EdmSolver::Euler,
                sigmas: sampler.sigmas[..1].to_vec(),
                churn: Churn::NONE,
                ..sampler.clone()
            },
            input(dims, device),
            &c,
            &mut rng,
            FiniteCheck::EveryStep,
        )
        .unwrap_err();
    assert!(err.to_string().contains("sigmas"), "{err}");
    let err = m
        .sample(
            &sampler,
            input([1, 2, 2, 8, 6], device),
            &c,
            &mut rng,
            FiniteCheck::EveryStep,
        )
        .unwrap_err();
    assert!(err.to_string().contains("`w` = 3"), "{err}");
}

fn values<B: Backend>(x: Tensor<B, 5>) -> Vec<f32> {
    x.into_data().convert::<f32>().to_vec().unwrap()
}

/// `generate` is Snap Video's sampler spelled out: EDM Heun with `σ_in = √T`, the options'
/// fps and the generated size as resolution, noise from the seed; with guidance 1 it is
/// `sample` bit for bit, with guidance against the zero text it differs; bad options are
/// named.
fn generate_is_the_paper_sampler<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let options = GenerateOptions {
        latent_size: [2, 2, 8, 8],
        num_steps: 3,
        guidance_scale: 1.0,
        fps: 8.0,
        seed: 5,
        ..GenerateOptions::default()
    };
    let text = cond::<B>(2, device).text;
    let generated = m.generate(&text, &options).unwrap();
    let sampler = EdmSampler::new(
        EdmConfig::snap_video(snap_video_sigma_in(1.0, 2))
            .init()
            .unwrap(),
        EdmSolver::Heun,
        3,
    )
    .unwrap();
    let mut rng = NoiseGenerator::seed_from_u64(5);
    let noise = rng.normal::<B, 5>([2, 2, 2, 8, 8], device);
    let c = SnapFitCond {
        text: text.clone(),
        fps: Tensor::full([2], 8.0, device),
        resolution: Tensor::full([2, 2], 8.0, device),
    };
    let sampled = m
        .sample(&sampler, noise, &c, &mut rng, FiniteCheck::EveryStep)
        .unwrap();
    assert_eq!(values(generated.clone()), values(sampled));
    let guided = GenerateOptions {
        guidance_scale: 3.0,
        ..options.clone()
    };
    let diff = (m.generate(&text, &guided).unwrap() - generated)
        .abs()
        .max()
        .into_scalar()
        .elem::<f64>();
    assert!(
        diff > 1e-4 && diff.is_finite(),
        "guidance had no effect: {diff}"
    );
    let zero_steps = GenerateOptions {
        num_steps: 0,
        ..options.clone()
    };
    let err = m.generate(&text, &zero_steps).unwrap_err();
    assert!(err.to_string().contains("num_steps"), "{err}");
    let odd = GenerateOptions {
        latent_size: [2, 2, 7, 8],
        ..options
    };
    let err = m.generate(&text, &odd).unwrap_err();
    assert!(err.to_string().contains("`H` = 7"), "{err}");
}

fn input_errors_name_the_mismatch<B: Backend>(device: &B::Device) {
    let m = model::<B>(&config(), device);
    let c = cond::<B>(1, device);
    let e = |dims: [usize; 5]| {
        m.forward(input(dims, device), c_noise(1, device), &c, None)
            .unwrap_err()
            .to_string()
    };
    assert!(e([1, 3, 2, 8, 8]).contains("input channels"));
    assert!(e([1, 2, 2, 7, 8]).contains("`H` = 7"));
    let prev = Tensor::zeros([1, 5, 16], device);
    let err = m
        .forward(
            input([1, 2, 2, 8, 8], device),
            c_noise(1, device),
            &c,
            Some(prev),
        )
        .unwrap_err();
    assert!(err.to_string().contains("prev_latents count"), "{err}");
}

backend_tests!(
    forward_shapes_and_reference_twin,
    groups_interact_only_through_latents,
    self_conditioning_semantics,
    single_frame_and_no_padding,
    perfect_network_sampling_is_scaled_by_sigma_in,
    denoiser_threads_self_conditioning,
    model_sampling_runs,
    generate_is_the_paper_sampler,
    input_errors_name_the_mismatch,
);

#[test]
fn config_errors_name_fields() {
    let device = Default::default();
    let bad = |c: SnapFitConfig| -> String {
        match c.init::<vidgen_testing::Flex>(&device) {
            Ok(_) => panic!("config accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert!(
        bad(SnapFitConfig {
            n_latents: 0,
            ..config()
        })
        .contains("`n_latents`")
    );
    assert!(bad(config().with_group_size([2, 0])).contains("`group_size`"));
    assert!(bad(config().with_patch_size([0, 2, 2])).contains("`patch_size`"));
    assert!(
        bad(SnapFitConfig {
            n_blocks: 0,
            ..config()
        })
        .contains("`n_blocks`")
    );
    assert!(
        bad(SnapFitConfig {
            d_text: 0,
            ..config()
        })
        .contains("`d_text`")
    );
    assert!(
        bad(SnapFitConfig {
            d_patch: 24,
            ..config()
        })
        .contains("`d_patch` = 24 must be divisible by 16")
    );
    assert!(
        bad(SnapFitConfig {
            d_latent: 18,
            ..config()
        })
        .contains("`d_latent` = 18 must be divisible by 4")
    );
    assert!(
        bad(SnapFitConfig {
            n_heads: 3,
            ..config()
        })
        .contains("(`n_heads`)")
    );
    assert!(bad(config().with_frequency_dim(15)).contains("`frequency_dim` = 15"));
    assert!(bad(config().with_mlp_ratio(0.0)).contains("`mlp_ratio` = 0"));
    assert!(bad(config().with_norm_eps(-1.0)).contains("`norm_eps` = -1"));
    assert!(
        config()
            .with_n_latent_layers(0)
            .init::<vidgen_testing::Flex>(&device)
            .is_ok()
    );
}
