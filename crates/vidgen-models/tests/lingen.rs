//! LinGen-style DiT: shapes (video and image), fast path == reference twin (chunked vs recurrent
//! Mamba2, plan-based vs host permutations, windowed vs dense TESA), per-layer scan orders,
//! linear FLOPs, config and input errors, sampling with CFG.

use burn::tensor::{Distribution, ElementConversion, Tensor, backend::Backend};
use vidgen_attention::key_padding_mask;
use vidgen_models::ConfigError;
use vidgen_models::lingen::{LinGenConfig, LinGenDit};
use vidgen_models::{
    CfgMode, Conditioning, GenerateOptions, Guidance, Kernel, ModelError, TextConditioning,
    WithKernel, sample,
};
use vidgen_schedulers::{FiniteCheck, NoiseGenerator, RectifiedFlowConfig};
use vidgen_ssm::{BiMerge, RotaryMajorScan, attention_flops};
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Fast path vs reference twin through a whole tiny model: the chunked SSD against the per-token
/// recurrence and fused against unfused attention differ by f32 rounding accumulated over 3
/// blocks of several ops each.
const MODEL_TWIN: Tolerance = Tolerance::new("LINGEN_MODEL_TWIN", 1e-4, 1e-3);
/// One MA-branch: chunked SSD vs recurrence (one block of ops).
const BRANCH_TWIN: Tolerance = Tolerance::BLOCK;
/// Sampling with guidance weight 1 vs without guidance: the same velocities up to the rounding
/// of `v_u + 1·(v_c − v_u)`, accumulated over the steps.
const CFG_IDENTITY: Tolerance = Tolerance::new("LINGEN_CFG_IDENTITY", 1e-4, 1e-3);

const D_TEXT: usize = 8;
const TEXT_LEN: usize = 5;

/// Tiny sizes: `chunk_size` 3 and TESA window `[2, 2, 2]` do not divide the 2×3×3 token grid,
/// review pool `[2, 2, 2]` gives 1·2·2 review tokens; adaLN not zero-initialised so every
/// block acts.
fn tiny() -> LinGenConfig {
    LinGenConfig::new(3, 16, 3, 2, D_TEXT)
        .with_max_grid([4, 8, 8])
        .with_d_state(4)
        .with_mamba_head_dim(8)
        .with_chunk_size(3)
        .with_tesa_window([2, 2, 2])
        .with_review_pool(Some([2, 2, 2]))
        .with_adaln_zero_init(false)
}

fn normal<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn inputs<B: Backend>(
    batch: usize,
    size: [usize; 3],
    device: &B::Device,
) -> (Tensor<B, 5>, Tensor<B, 1>, TextConditioning<B>) {
    let [t, h, w] = size;
    (
        normal([batch, 3, t, h, w], device),
        Tensor::from_floats(&[250.0, 900.0][..batch], device),
        TextConditioning::new(normal([batch, TEXT_LEN, D_TEXT], device)),
    )
}

fn video_shape<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let (x, t, text) = inputs::<B>(2, [2, 6, 6], device);
    let out = model.forward(x, t, &text).unwrap();
    assert_eq!(out.dims(), [2, 3, 2, 6, 6]);
}

/// T = 1 (text-to-image, hybrid training): TESA's window shrinks to one frame, every scan order
/// still permutes the 1×h×w grid.
fn image_t1<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let (x, t, text) = inputs::<B>(1, [1, 6, 4], device);
    let out = model.forward(x.clone(), t.clone(), &text).unwrap();
    assert_eq!(out.dims(), [1, 3, 1, 6, 4]);
    let naive = model.with_kernel(Kernel::Reference);
    for block in &naive.blocks {
        let kernels = [
            block.kernel,
            block.cross_attn.kernel,
            block.bimamba.mamba_fwd.kernel,
            block.bimamba.mamba_bwd.kernel,
        ];
        assert_eq!(kernels, [Kernel::Reference; 4]);
    }
    let reference = naive.forward(x, t, &text).unwrap();
    assert_close(out, reference, MODEL_TWIN);
}

/// The whole model against its reference twin, with padded text, for review tokens on and off
/// and for the Sum and ConcatLinear merges.
fn forward_matches_reference<B: Backend>(device: &B::Device) {
    for cfg in [
        tiny(),
        tiny()
            .with_review_pool(None)
            .with_bi_merge(BiMerge::ConcatLinear),
    ] {
        let model: LinGenDit<B> = cfg.init(device).unwrap();
        let (x, t, text) = inputs::<B>(2, [2, 6, 6], device);
        let mask = key_padding_mask::<B>(&[5, 2], TEXT_LEN, device);
        let text = TextConditioning::with_padding(text.tokens, mask);
        let fast = model.forward(x.clone(), t.clone(), &text);
        let slow = model.with_kernel(Kernel::Reference).forward(x, t, &text);
        assert_close(fast.unwrap(), slow.unwrap(), MODEL_TWIN);
    }
}

/// Block k scans in RMS order k; consecutive layers' permutations differ; each block's MA-branch
/// equals the explicit host permutation → recurrent BiMamba2 → host restore, and changing the
/// order changes the output (the scan order matters and is undone, not dropped).
fn scan_order_per_layer<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let grid = [2, 3, 4];
    let h = normal::<B, 3>([1, 24, 16], device);
    for (k, block) in model.blocks.iter().enumerate() {
        assert_eq!(block.scan_order, RotaryMajorScan::for_layer(k));
        if k > 0 {
            let prev = model.blocks[k - 1].scan_order.permutation(grid);
            assert_ne!(
                block.scan_order.permutation(grid),
                prev,
                "layers {k} and {}",
                k - 1
            );
        }
        let plan = block.scan_order.plan::<B>(grid, device);
        let fast = block.ma_branch(h.clone(), grid, &plan);
        assert_close(
            fast,
            block.ma_branch_reference(h.clone(), grid),
            BRANCH_TWIN,
        );
    }
    let block = &model.blocks[0];
    let own = block.ma_branch(h.clone(), grid, &block.scan_order.plan::<B>(grid, device));
    let other_order = RotaryMajorScan::for_layer(1).plan::<B>(grid, device);
    let other = block.ma_branch(h, grid, &other_order);
    let diff = (own - other).abs().max().into_scalar();
    assert!(
        num(diff) > 1e-3,
        "the MA-branch ignores its scan order (max diff {})",
        num(diff)
    );
    // Through the whole model: raster scans everywhere give another output.
    let (x, t, text) = inputs::<B>(1, [2, 6, 6], device);
    let rms = model.forward(x.clone(), t.clone(), &text).unwrap();
    let mut raster = model.clone();
    raster
        .blocks
        .iter_mut()
        .for_each(|b| b.scan_order = vidgen_ssm::ScanOrder::RASTER);
    let plain = raster.forward(x, t, &text).unwrap();
    let diff = num((rms - plain).abs().max().into_scalar());
    assert!(diff > 1e-6, "the model ignores the scan orders ({diff})");
}

fn num<E: ElementConversion>(e: E) -> f64 {
    e.elem()
}

/// Doubling the frames doubles the FLOPs up to a constant: `f(N) = a·N + b` exactly (second
/// differences vanish), while full attention adds a quadratic term.
#[test]
fn flops_are_linear_in_tokens() {
    let cfg = LinGenConfig::new(4, 64, 4, 4, 32)
        .with_mamba_head_dim(16)
        .with_tesa_window([4, 4, 4])
        .with_review_pool(Some([2, 4, 4]));
    let f = |t: usize| cfg.flops([t, 8, 8], 16).total();
    for t in [4, 8, 16] {
        let second = f(4 * t) - 2.0 * f(2 * t) - (f(2 * t) - 2.0 * f(t));
        assert!(
            second.abs() <= 1e-12 * f(4 * t),
            "not affine at T = {t}: {second}"
        );
        let ratio = f(2 * t) / f(t);
        assert!(
            (1.9..=2.0).contains(&ratio),
            "f(2T)/f(T) = {ratio} at T = {t}"
        );
    }
    let attn = |t: usize| attention_flops(t * 64, 64);
    assert!(attn(32) - 2.0 * attn(16) - (attn(16) - 2.0 * attn(8)) > 0.0);
    // Per-token cost is constant for LinGen, grows linearly for full attention.
    let per_token = |t: usize| f(t) / (t * 64) as f64;
    assert!((per_token(64) / per_token(8) - 1.0).abs() < 0.01);
}

#[test]
fn config_errors_name_fields() {
    let d = Default::default();
    let check = |cfg: LinGenConfig, field: &str| {
        let err = cfg.init::<vidgen_testing::Flex>(&d).unwrap_err();
        assert!(
            err.to_string().contains(field),
            "{err} does not name {field}"
        );
    };
    check(LinGenConfig::new(3, 16, 0, 2, 8), "depth");
    check(LinGenConfig::new(3, 18, 1, 4, 8), "n_heads");
    check(tiny().with_mamba_head_dim(7), "mamba_head_dim");
    check(tiny().with_tesa_window([2, 0, 2]), "tesa_window");
    check(tiny().with_review_pool(Some([0, 1, 1])), "review_pool");
    check(tiny().with_norm_eps(0.0), "norm_eps");
    check(tiny().with_mlp_hidden_dim(Some(0)), "mlp_hidden_dim");
    check(tiny().with_patch_size([1, 0, 2]), "patch_size");
    assert_eq!(
        tiny().with_d_state(0).validate(),
        Err(ModelError::Config(ConfigError::Zero { field: "d_state" }))
    );
}

fn input_errors<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let (x, t, text) = inputs::<B>(1, [2, 6, 6], device);
    let bad = model.forward(x.clone().narrow(4, 0, 5), t.clone(), &text);
    assert!(bad.unwrap_err().to_string().contains("patch_size"));
    let big = normal::<B, 5>([1, 3, 5, 6, 6], device);
    let err = model.forward(big, t.clone(), &text).unwrap_err();
    assert!(err.to_string().contains("max_grid"), "{err}");
    let narrow = TextConditioning::new(text.tokens.narrow(2, 0, 4));
    let err = model.forward(x, t, &narrow).unwrap_err();
    assert!(matches!(
        err,
        ModelError::Config(ConfigError::ShapeMismatch {
            what: "text width",
            expected: 8,
            got: 4
        })
    ));
}

/// Guidance weight 1 reproduces unguided sampling from the conditional text; the result has
/// the latent's shape and is finite.
fn sampling_with_cfg<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let flow = RectifiedFlowConfig {
        shift: 3.0,
        ..Default::default()
    }
    .init(3, None)
    .unwrap();
    let mut rng = NoiseGenerator::seed_from_u64(7);
    let noise = rng.normal::<B, 5>([1, 3, 2, 4, 4], device);
    let text = TextConditioning::with_padding(
        rng.normal::<B, 3>([1, TEXT_LEN, D_TEXT], device),
        key_padding_mask::<B>(&[3], TEXT_LEN, device),
    );
    let null = TextConditioning::new(Tensor::zeros([1, TEXT_LEN, D_TEXT], device));
    let on = FiniteCheck::EveryStep;
    let mut run = |cond: &Conditioning<B>| {
        sample(&flow, &model, cond, noise.clone(), &mut rng, on, |_| {}).unwrap()
    };
    let w1 = Guidance::new(1.0, 0.0, null.clone()).unwrap();
    let guided = run(&Conditioning::guided(text.clone(), w1.clone()));
    let plain = run(&Conditioning::text(text.clone()));
    assert_eq!(guided.dims(), [1, 3, 2, 4, 4]);
    assert_close(guided.clone(), plain.clone(), CFG_IDENTITY);
    // Two passes give the batched result.
    let two_pass = run(&Conditioning::guided(
        text.clone(),
        w1.with_mode(CfgMode::TwoPass),
    ));
    assert_close(two_pass, guided, CFG_IDENTITY);
    let w5 = Guidance::new(5.0, 0.0, null).unwrap();
    let strong = run(&Conditioning::guided(text, w5));
    let diff = num((strong - plain).abs().max().into_scalar());
    assert!(
        diff.is_finite() && diff > 1e-4,
        "guidance had no effect: {diff}"
    );
}

/// `generate` is the rectified-flow loop spelled out (the options' flow and steps, noise from
/// the seed, guidance against a zero text with the prompt's padding), bit for bit; the same seed
/// gives the same video; bad options are named.
fn generate_is_the_flow_loop<B: Backend>(device: &B::Device) {
    let model: LinGenDit<B> = tiny().init(device).unwrap();
    let options = GenerateOptions {
        latent_size: [3, 2, 4, 4],
        num_steps: 3,
        guidance_scale: 4.0,
        seed: 9,
        flow: RectifiedFlowConfig {
            shift: 3.0,
            ..Default::default()
        },
        ..GenerateOptions::default()
    };
    let text = TextConditioning::with_padding(
        normal::<B, 3>([2, TEXT_LEN, D_TEXT], device),
        key_padding_mask::<B>(&[3, 5], TEXT_LEN, device),
    );
    let generated = model.generate(&text, &options).unwrap();
    assert_eq!(generated.dims(), [2, 3, 2, 4, 4]);
    let values = |x: Tensor<B, 5>| x.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let flow = options.flow.init(3, None).unwrap();
    let null = TextConditioning {
        tokens: Tensor::zeros([2, TEXT_LEN, D_TEXT], device),
        padding: text.padding.clone(),
    };
    let cond = Conditioning::guided(text.clone(), Guidance::new(4.0, 0.0, null).unwrap());
    let mut rng = NoiseGenerator::seed_from_u64(9);
    let noise = rng.normal::<B, 5>([2, 3, 2, 4, 4], device);
    let on = FiniteCheck::EveryStep;
    let sampled = sample(&flow, &model, &cond, noise, &mut rng, on, |_| {}).unwrap();
    assert_eq!(values(generated.clone()), values(sampled));
    assert_eq!(
        values(generated),
        values(model.generate(&text, &options).unwrap())
    );
    let bad = GenerateOptions {
        fps: f64::NAN,
        ..options.clone()
    };
    let err = model.generate(&text, &bad).unwrap_err();
    assert!(err.to_string().contains("fps"), "{err}");
    let too_long = GenerateOptions {
        latent_size: [3, 5, 4, 4],
        ..options
    };
    let err = model.generate(&text, &too_long).unwrap_err();
    assert!(err.to_string().contains("max_grid"), "{err}");
}

backend_tests!(
    generate_is_the_flow_loop,
    video_shape,
    image_t1,
    forward_matches_reference,
    scan_order_per_layer,
    input_errors,
    sampling_with_cfg
);
