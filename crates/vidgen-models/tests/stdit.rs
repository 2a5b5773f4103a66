//! STDiT: shapes, the reference twin, timestep-0 conditioning frames, sampling with CFG and
//! clean conditioning frames, the text-to-video pipeline, and config/input errors.

use burn::tensor::{Bool, ElementConversion, Tensor, TensorData, backend::Backend};
use vidgen_models::ConfigError;
use vidgen_models::stdit::{
    CfgMode, Stdit, StditConditioning, StditConfig, StditInput, TextToVideo, sample_stdit,
};
use vidgen_models::text::{TextEmbedderConfig, WordTokenizer};
use vidgen_models::{GenerateOptions, Kernel, ModelError, TextConditioning, WithKernel};
use vidgen_nn::materialize;
use vidgen_schedulers::{
    ClassifierFreeGuidance, FiniteCheck, FrameMask, NoiseGenerator, RectifiedFlowConfig,
};
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Fused vs naive attention through a whole tiny model: a few blocks of f32 rounding.
const TWIN: Tolerance = Tolerance::BLOCK;
/// Batched CFG vs two passes: the same arithmetic in another batch layout, over a few Euler steps.
const CFG_SPLIT: Tolerance = Tolerance::new("CFG_SPLIT", 1e-4, 1e-3);

const D_TEXT: usize = 8;

/// A tiny model; `zero_init_temporal = false` so that the temporal blocks mix frames.
fn config(depth: usize) -> StditConfig {
    StditConfig::new(16, 2, depth, D_TEXT)
        .with_frequency_dim(16)
        .with_max_frames(8)
        .with_text_max_len(6)
        .with_zero_init_temporal(false)
}

fn rand<B: Backend, const D: usize>(
    seed: u64,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    NoiseGenerator::seed_from_u64(seed).normal(shape, device)
}

fn mask<B: Backend>(flags: Vec<bool>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2, Bool> {
    Tensor::from_bool(TensorData::new(flags, shape), device)
}

/// `text` with the first `lens[b]` tokens of sample `b` valid.
fn tc<B: Backend>(text: Tensor<B, 3>, lens: &[usize]) -> TextConditioning<B> {
    TextConditioning::from_lens(text, lens).unwrap()
}

/// Runs the model with time `t` and fps 8 for every sample.
fn run<B: Backend>(
    model: &Stdit<B>,
    x: Tensor<B, 5>,
    t: f64,
    text: Tensor<B, 3>,
    lens: &[usize],
    frame_mask: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 5> {
    let (b, device) = (x.dims()[0], x.device());
    let tt = Tensor::full([b], t, &device);
    let fps = Tensor::full([b], 8.0, &device);
    model
        .forward(x, tt, &tc(text, lens), fps, frame_mask)
        .unwrap()
}

fn output_shape_and_reference_twin<B: Backend>(device: &B::Device) {
    let model = materialize(config(2).init::<B>(device).unwrap());
    let naive = model.clone().with_kernel(Kernel::Reference);
    // The kernel reaches every attention of every block.
    let kernels: Vec<Kernel> = naive
        .spatial_blocks
        .iter()
        .flat_map(|b| [b.attn.attn.kernel, b.cross_attn.kernel])
        .chain(
            naive
                .temporal_blocks
                .iter()
                .flat_map(|b| [b.attn.attn.kernel, b.cross_attn.kernel]),
        )
        .collect();
    assert_eq!(kernels, vec![Kernel::Reference; 8]);
    // T = 3, H = 4, W = 6 (non-square grid 2×3), two samples, one with a short text.
    for ([b, c, t, h, w], lens) in [([2, 4, 3, 4, 6], vec![5, 2]), ([1, 4, 1, 2, 2], vec![0])] {
        let x = rand::<B, 5>(1, [b, c, t, h, w], device);
        let text = rand::<B, 3>(2, [b, 5, D_TEXT], device);
        let flags: Vec<bool> = (0..b * t).map(|i| i % t == 0).collect();
        let fm = mask::<B>(flags, [b, t], device);
        let tt = Tensor::full([b], 420.0, device);
        let fps = Tensor::full([b], 12.0, device);
        let args = (tt, text, fps, Some(fm));
        let fast = model
            .forward(
                x.clone(),
                args.0.clone(),
                &tc(args.1.clone(), &lens),
                args.2.clone(),
                args.3.clone(),
            )
            .unwrap();
        assert_eq!(fast.dims(), [b, c, t, h, w]);
        let slow = naive
            .forward(x, args.0, &tc(args.1, &lens), args.2, args.3)
            .unwrap();
        assert_close(fast, slow, TWIN);
    }
}

fn single_frame_image_works<B: Backend>(device: &B::Device) {
    let model = config(1).init::<B>(device).unwrap();
    let x = rand::<B, 5>(3, [2, 4, 1, 4, 4], device);
    let text = rand::<B, 3>(4, [2, 3, D_TEXT], device);
    let y = run(&model, x, 500.0, text, &[3, 3], None);
    assert_eq!(y.dims(), [2, 4, 1, 4, 4]);
    let v: Vec<f32> = y.into_data().to_vec().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
}

fn conditioning_frames_use_timestep_zero<B: Backend>(device: &B::Device) {
    let x = rand::<B, 5>(5, [1, 4, 3, 2, 4], device);
    let text = rand::<B, 3>(6, [1, 4, D_TEXT], device);
    // With `final_t0_norm_modulated = false` (our variant of the final layer, kept for the
    // shipped tiny model), conditioning frames are fully at timestep 0:
    // (a) every frame conditioning: t no longer matters, and equals the unmasked model at t = 0.
    let ours = || config(2).with_final_t0_norm_modulated(false);
    let model = ours().init::<B>(device).unwrap();
    let all = || Some(mask::<B>(vec![true; 3], [1, 3], device));
    let at_100 = run(&model, x.clone(), 100.0, text.clone(), &[4], all());
    let at_900 = run(&model, x.clone(), 900.0, text.clone(), &[4], all());
    assert_close(at_100.clone(), at_900, Tolerance::SINGLE_OP);
    let unmasked_zero = run(&model, x.clone(), 0.0, text.clone(), &[4], None);
    assert_close(at_100, unmasked_zero.clone(), Tolerance::SINGLE_OP);
    // (b) mixed mask, frames independent (zero-init temporal blocks do not mix frames): frame 0
    // (conditioning) equals the t = 0 model, frames 1 and 2 the t = 700 model.
    let model = ours()
        .with_zero_init_temporal(true)
        .init::<B>(device)
        .unwrap();
    let first = Some(mask::<B>(vec![true, false, false], [1, 3], device));
    let mixed = run(&model, x.clone(), 700.0, text.clone(), &[4], first);
    let at_zero = run(&model, x.clone(), 0.0, text.clone(), &[4], None);
    let at_700 = run(&model, x.clone(), 700.0, text.clone(), &[4], None);
    let frame0 = |y: &Tensor<B, 5>| y.clone().narrow(2, 0, 1);
    assert_close(frame0(&mixed), frame0(&at_zero), Tolerance::SINGLE_OP);
    assert_close(
        mixed.narrow(2, 1, 2),
        at_700.clone().narrow(2, 1, 2),
        Tolerance::SINGLE_OP,
    );
    // ... and t = 0 differs from t = 700 there, so the mask did something.
    let diff: f64 = (frame0(&at_zero) - frame0(&at_700))
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert!(
        diff > 1e-4,
        "t = 0 and t = 700 agree on frame 0 (max diff {diff})"
    );
    // (c) upstream's final layer (the default) normalises the tokens already modulated at t
    // before modulating them at t = 0, so conditioning frames still depend on t. The same
    // weights with our variant do not.
    let upstream = config(2).init::<B>(device).unwrap();
    let all_100 = run(&upstream, x.clone(), 100.0, text.clone(), &[4], all());
    let all_900 = run(&upstream, x.clone(), 900.0, text.clone(), &[4], all());
    let diff: f64 = (all_100 - all_900).abs().max().into_scalar().elem();
    assert!(diff > 1e-4, "upstream's final layer ignored t ({diff})");
    let mut switched = upstream.clone();
    switched.final_layer.t0_norm_modulated = false;
    let zero = run(&switched, x.clone(), 0.0, text.clone(), &[4], None);
    let all_100 = run(&switched, x, 100.0, text, &[4], all());
    assert_close(all_100, zero, Tolerance::SINGLE_OP);
}

fn sampling_keeps_conditioning_frames_and_cfg_batch_equals_two_passes<B: Backend>(
    device: &B::Device,
) {
    let model = config(1).init::<B>(device).unwrap();
    let shape = [2, 4, 3, 2, 2];
    let clean = rand::<B, 5>(7, shape, device);
    let text = tc(rand::<B, 3>(8, [2, 4, D_TEXT], device), &[4, 1]);
    let cond = StditConditioning {
        uncond: TextConditioning {
            tokens: model.y_embedder.null(2, 4).unwrap(),
            padding: text.padding.clone(),
        },
        text,
        fps: 8.0,
        frames: Some((FrameMask::first_frames(2, 3, 1), clean.clone())),
        resolution: None,
    };
    let flow = RectifiedFlowConfig::default().init(4, None).unwrap();
    let guidance = ClassifierFreeGuidance::new(5.0, 0.5).unwrap();
    let sample = |mode| {
        let mut noise = NoiseGenerator::seed_from_u64(11);
        sample_stdit(
            &model,
            &flow,
            &guidance,
            &cond,
            shape,
            &mut noise,
            mode,
            FiniteCheck::EveryStep,
        )
        .unwrap()
    };
    let batched = sample(CfgMode::Batched);
    let two = sample(CfgMode::TwoPass);
    assert_eq!(batched.dims(), shape);
    assert_close(
        batched.clone().narrow(2, 0, 1),
        clean.clone().narrow(2, 0, 1),
        Tolerance::EXACT,
    );
    assert_close(batched.clone(), two, CFG_SPLIT);
    // The generated frames moved away from the noise and the clean latent.
    let moved = (batched.clone().narrow(2, 1, 2) - clean.narrow(2, 1, 2))
        .abs()
        .max();
    assert!(moved.into_scalar().elem::<f64>() > 1e-3);
    // The pixel resolution reaches the model (on a 2 × 2 token grid; the grid above is one
    // token, whose position is 0 at any scale): √(512·512) / input_sq_size = 1 is the fixed
    // scale, 128 × 128 pixels another.
    let cond = StditConditioning {
        frames: None,
        ..cond
    };
    let with = |resolution| {
        let cond = StditConditioning {
            resolution,
            ..cond.clone()
        };
        let mut noise = NoiseGenerator::seed_from_u64(11);
        let shape = [2, 4, 1, 4, 4];
        sample_stdit(
            &model,
            &flow,
            &guidance,
            &cond,
            shape,
            &mut noise,
            CfgMode::Batched,
            FiniteCheck::EveryStep,
        )
        .unwrap()
    };
    let fixed = with(None);
    assert_close(with(Some([512.0, 512.0])), fixed.clone(), Tolerance::EXACT);
    let d: f64 = (with(Some([128.0, 128.0])) - fixed)
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert!(d > 1e-4, "the resolution changed nothing ({d})");
}

fn text_to_video_pipeline<B: Backend>(device: &B::Device) {
    let tokenizer = WordTokenizer::new(&["red", "square", "moving", "right"], 5).unwrap();
    let embedder = TextEmbedderConfig::new(tokenizer.vocab_size(), D_TEXT)
        .init::<B>(device)
        .unwrap();
    let model = config(1).init::<B>(device).unwrap();
    let pipe = TextToVideo::new(model, tokenizer, embedder).unwrap();
    let options = GenerateOptions {
        latent_size: [4, 2, 2, 2],
        num_steps: 2,
        ..Default::default()
    };
    let a = pipe
        .generate(&["red square moving right", "square"], &options, device)
        .unwrap();
    assert_eq!(a.dims(), [2, 4, 2, 2, 2]);
    // Precomputed embeddings give the same result as the prompts they came from.
    let (text, lens) = pipe
        .encode(&["red square moving right", "square"], device)
        .unwrap();
    let b = pipe.generate_from_embeddings(text, lens, &options).unwrap();
    assert_close(a, b, Tolerance::EXACT);
    // Words outside the vocabulary are an error naming them, not silently dropped.
    let err = pipe
        .generate(&["red square", "blue square moving left"], &options, device)
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::UnknownWords { words, .. } if words == &["blue", "left"]),
        "{err}"
    );
    // A text longer than the null caption (text_max_len = 6) is rejected.
    let long = Tensor::<B, 3>::zeros([1, 7, D_TEXT], device);
    let err = pipe
        .generate_from_embeddings(long, vec![7], &options)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Config(ConfigError::OutOfDomain { field: "len", .. })
        ),
        "{err}"
    );
}

fn input_errors_name_the_input<B: Backend>(device: &B::Device) {
    let model = config(1).init::<B>(device).unwrap();
    let t = Tensor::<B, 1>::full([1], 1.0, device);
    let text = Tensor::<B, 3>::zeros([1, 2, D_TEXT], device);
    // Lengths are checked where the text is built, the rest by the forward.
    let call =
        |x: Tensor<B, 5>, text: Tensor<B, 3>, lens: &[usize]| match TextConditioning::from_lens(
            text, lens,
        ) {
            Ok(text) => model
                .forward(x, t.clone(), &text, t.clone(), None)
                .unwrap_err(),
            Err(e) => e,
        };
    let e = call(Tensor::zeros([1, 3, 1, 2, 2], device), text.clone(), &[2]);
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::ShapeMismatch {
                what: "input channels",
                expected: 4,
                got: 3
            })
        ),
        "{e}"
    );
    // Sizes that are not multiples of the patch size are zero-padded and cropped (upstream),
    // no longer an error: the same as padding by hand and cropping.
    let odd = rand::<B, 5>(9, [1, 4, 1, 3, 2], device);
    let y = model
        .forward(
            odd.clone(),
            t.clone(),
            &tc(text.clone(), &[2]),
            t.clone(),
            None,
        )
        .unwrap();
    assert_eq!(y.dims(), [1, 4, 1, 3, 2]);
    let padded = Tensor::cat(vec![odd, Tensor::zeros([1, 4, 1, 1, 2], device)], 3);
    let by_hand = model
        .forward(padded, t.clone(), &tc(text.clone(), &[2]), t.clone(), None)
        .unwrap();
    assert_close(y, by_hand.narrow(3, 0, 3), Tolerance::SINGLE_OP);
    let e = call(
        Tensor::zeros([1, 4, 1, 2, 2], device),
        Tensor::zeros([1, 2, 5], device),
        &[2],
    );
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::ShapeMismatch {
                what: "text width (d_text)",
                ..
            })
        ),
        "{e}"
    );
    let e = call(Tensor::zeros([1, 4, 1, 2, 2], device), text.clone(), &[3]);
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::ShapeMismatch { got: 3, .. })
        ),
        "{e}"
    );
    let e = call(Tensor::zeros([1, 4, 9, 2, 2], device), text, &[2]);
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::OutOfDomain { value: 9.0, .. })
        ),
        "{e}"
    );
}

/// `pooled_text`: zero-initialised, it leaves the output unchanged; once trained (here: set to
/// the identity), the pooled caption reaches every block, padded tokens excluded. With
/// `temporal_pos_embed` the frames get distinct tables, so the output changes.
fn pooled_text_and_temporal_table<B: Backend>(device: &B::Device) {
    let x = rand::<B, 5>(1, [2, 4, 3, 4, 4], device);
    let text = rand::<B, 3>(2, [2, 5, D_TEXT], device);
    let lens = [5, 3];
    let plain = config(1).init::<B>(device).unwrap();
    // Run first: parameters initialise lazily, and a clone taken before would draw its own.
    let out = run(&plain, x.clone(), 500.0, text.clone(), &lens, None);
    let pooled_proj = config(1)
        .with_pooled_text(true)
        .init::<B>(device)
        .unwrap()
        .pooled_proj;
    assert!(pooled_proj.is_some());
    // The same weights elsewhere.
    let mut pooled = Stdit {
        pooled_proj,
        ..plain.clone()
    };
    let zero = run(&pooled, x.clone(), 500.0, text.clone(), &lens, None);
    assert_close(zero, out.clone(), Tolerance::EXACT);
    let mut proj = pooled.pooled_proj.take().unwrap();
    proj.weight = proj
        .weight
        .map(|w| w.zeros_like() + Tensor::eye(16, device));
    pooled.pooled_proj = Some(proj);
    let with = run(&pooled, x.clone(), 500.0, text.clone(), &lens, None);
    let diff: f32 = (with.clone() - out.clone())
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert!(diff > 1e-3, "the pooled caption changed nothing ({diff})");
    // Sample 1 has 3 valid tokens: changing its padded tokens changes nothing.
    let padded = text.clone().slice_assign(
        [1..2, 3..5, 0..D_TEXT],
        rand::<B, 3>(3, [1, 2, D_TEXT], device),
    );
    let again = run(&pooled, x.clone(), 500.0, padded, &lens, None);
    assert_close(again, with, Tolerance::EXACT);

    let mut timed = config(1)
        .with_temporal_pos_embed(true)
        .init::<B>(device)
        .unwrap();
    timed.temporal_pos_embed = false;
    let same = run(&timed, x.clone(), 500.0, text.clone(), &lens, None);
    timed.temporal_pos_embed = true;
    let moved = run(&timed, x, 500.0, text, &lens, None);
    let diff: f32 = (moved - same).abs().max().into_scalar().elem();
    assert!(diff > 1e-3, "the temporal table changed nothing ({diff})");
}

/// `cross_qk_norm`: every cross-attention gets per-head RMSNorm on queries and keys (upstream
/// STDiT3 has none there); the fast path still equals the reference twin, and removing the norms
/// from the same weights changes the output.
fn cross_attention_qk_norm<B: Backend>(device: &B::Device) {
    let plain = config(1).init::<B>(device).unwrap();
    assert!(plain.spatial_blocks[0].cross_attn.q_norm.is_none());
    let normed = config(1)
        .with_cross_qk_norm(true)
        .init::<B>(device)
        .unwrap();
    for attn in [
        &normed.spatial_blocks[0].cross_attn,
        &normed.temporal_blocks[0].cross_attn,
    ] {
        assert!(attn.q_norm.is_some() && attn.k_norm.is_some());
    }
    let x = rand::<B, 5>(1, [2, 4, 3, 4, 4], device);
    let text = rand::<B, 3>(2, [2, 5, D_TEXT], device) * 4.0;
    let lens = [5, 2];
    let args = || {
        (
            Tensor::full([2], 300.0, device),
            Tensor::full([2], 8.0, device),
        )
    };
    let (t, fps) = args();
    let fast = normed
        .forward(x.clone(), t, &tc(text.clone(), &lens), fps, None)
        .unwrap();
    let (t, fps) = args();
    let slow = normed
        .clone()
        .with_kernel(Kernel::Reference)
        .forward(x.clone(), t, &tc(text.clone(), &lens), fps, None)
        .unwrap();
    assert_close(fast.clone(), slow, TWIN);
    let mut stripped = normed.clone();
    for block in &mut stripped.spatial_blocks {
        (block.cross_attn.q_norm, block.cross_attn.k_norm) = (None, None);
    }
    for block in &mut stripped.temporal_blocks {
        (block.cross_attn.q_norm, block.cross_attn.k_norm) = (None, None);
    }
    let without = run(&stripped, x, 300.0, text, &lens, None);
    let diff: f32 = (fast - without).abs().max().into_scalar().elem();
    assert!(
        diff > 1e-3,
        "the cross-attention QK-norm changed nothing ({diff})"
    );
}

/// [`Stdit::forward_input`] takes upstream's arguments: all `2·C` channels (`pred_sigma`), the
/// first `C` being [`Stdit::forward`]'s velocity; per-call positional scale from the pixel
/// resolution; caption masks by token (not only prefixes); `x_mask` = not a conditioning frame;
/// one fps for the batch.
fn upstream_input_api<B: Backend>(device: &B::Device) {
    let model = config(1).init::<B>(device).unwrap();
    let (b, c, t) = (2, 4, 3);
    let x = rand::<B, 5>(1, [b, c, t, 4, 4], device);
    let text = rand::<B, 3>(2, [b, 5, D_TEXT], device);
    let tt = Tensor::<B, 1>::from_floats([300.0, 700.0], device);
    let fps = Tensor::<B, 1>::full([b], 12.0, device);
    let frames = vec![true, false, false, false, true, false];
    let cond = mask::<B>(frames.clone(), [b, t], device);
    let velocity = model
        .forward(
            x.clone(),
            tt.clone(),
            &tc(text.clone(), &[5, 3]),
            fps.clone(),
            Some(cond),
        )
        .unwrap();
    let valid = mask::<B>(
        (0..2 * 5).map(|i| i % 5 < [5, 3][i / 5]).collect(),
        [b, 5],
        device,
    );
    let x_mask = mask::<B>(frames.iter().map(|f| !f).collect(), [b, t], device);
    let input = StditInput::new(
        x.clone(),
        tt.clone(),
        text.clone(),
        Tensor::full([1], 12.0, device),
    )
    .with_mask(valid.clone())
    .with_x_mask(x_mask.clone());
    let full = model.forward_input(input.clone()).unwrap();
    assert_eq!(full.dims(), [b, 2 * c, t, 4, 4]);
    assert_close(full.clone().narrow(1, 0, c), velocity, Tolerance::EXACT);

    // √(512·512) / input_sq_size = 1 = pos_interpolation_scale; another resolution moves the
    // positions.
    let same = model
        .forward_input(input.clone().with_resolution(512.0, 512.0))
        .unwrap();
    assert_close(same, full.clone(), Tolerance::EXACT);
    let moved = model
        .forward_input(input.clone().with_resolution(256.0, 384.0))
        .unwrap();
    let diff: f32 = (moved - full.clone()).abs().max().into_scalar().elem();
    assert!(diff > 1e-4, "the resolution changed nothing ({diff})");

    // A caption mask with a hole: the same as the valid tokens moved to the front.
    let holes = mask::<B>(
        vec![
            true, false, true, true, false, false, true, false, true, true,
        ],
        [b, 5],
        device,
    );
    let order =
        Tensor::<B, 2, burn::tensor::Int>::from_ints([[0, 2, 3, 1, 4], [1, 3, 4, 0, 2]], device);
    let packed = text
        .clone()
        .gather(1, order.reshape([b, 5, 1]).expand([b, 5, D_TEXT]));
    let lens_mask = mask::<B>((0..2 * 5).map(|i| i % 5 < 3).collect(), [b, 5], device);
    let with_holes = StditInput {
        mask: Some(holes),
        ..input.clone()
    };
    let front = StditInput {
        y: packed,
        mask: Some(lens_mask),
        ..input.clone()
    };
    assert_close(
        model.forward_input(with_holes).unwrap(),
        model.forward_input(front).unwrap(),
        TWIN,
    );

    let wrong = StditInput {
        mask: Some(mask::<B>(vec![true; 8], [b, 4], device)),
        ..input
    };
    let e = model.forward_input(wrong).unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::ShapeMismatch {
                what: "text mask length",
                expected: 5,
                got: 4
            })
        ),
        "{e}"
    );
}

backend_tests!(
    upstream_input_api,
    cross_attention_qk_norm,
    pooled_text_and_temporal_table,
    output_shape_and_reference_twin,
    single_frame_image_works,
    conditioning_frames_use_timestep_zero,
    sampling_keeps_conditioning_frames_and_cfg_batch_equals_two_passes,
    text_to_video_pipeline,
    input_errors_name_the_input,
);

/// `parameter_count` is the element count of the model `init` builds, for each option that adds
/// or removes parameters.
#[test]
fn parameter_count_is_exact() {
    use burn::module::Module;
    type B = vidgen_testing::Flex;
    let device = Default::default();
    let configs = [
        config(2),
        config(1).with_qk_norm(false).with_cross_qk_norm(true),
        config(2).with_pooled_text(true).with_pred_sigma(true),
        config(1)
            .with_in_channels(3)
            .with_patch_size([2, 2, 2])
            .with_mlp_ratio(2.5)
            .with_frequency_dim(18),
    ];
    for c in configs {
        let model = c.init::<B>(&device).unwrap();
        assert_eq!(c.parameter_count(), Some(model.num_params()), "{c:?}");
    }
}

#[test]
fn config_errors_name_fields() {
    type B = vidgen_testing::Flex;
    let device = Default::default();
    let field = |c: StditConfig| match c.init::<B>(&device).unwrap_err() {
        ModelError::Config(ConfigError::Zero { field })
        | ModelError::Config(ConfigError::NotDivisible { field, .. })
        | ModelError::Config(ConfigError::OutOfDomain { field, .. }) => field,
        other => panic!("unexpected {other}"),
    };
    assert_eq!(field(StditConfig::new(16, 2, 0, 8)), "depth");
    assert_eq!(field(StditConfig::new(16, 3, 1, 8)), "d_model");
    assert_eq!(field(StditConfig::new(18, 3, 1, 8)), "d_model"); // not a multiple of 4
    assert_eq!(field(StditConfig::new(20, 4, 1, 8)), "d_model"); // odd head_dim 5
    assert_eq!(field(StditConfig::new(16, 2, 1, 0)), "d_text");
    assert_eq!(
        field(StditConfig::new(16, 2, 1, 8).with_mlp_ratio(-1.0)),
        "mlp_ratio"
    );
    assert_eq!(
        field(StditConfig::new(16, 2, 1, 8).with_patch_size([1, 0, 2])),
        "patch_size"
    );
    assert_eq!(
        field(StditConfig::new(16, 2, 1, 8).with_rope_theta(0.0)),
        "rope_theta"
    );
    assert_eq!(
        field(StditConfig::new(16, 2, 1, 8).with_frequency_dim(1)),
        "frequency_dim"
    );
    // Sizes whose parameters could not be allocated are refused before anything is.
    let huge = field(StditConfig::new(16, 2, 1, usize::MAX));
    assert!(huge.starts_with("sizes"), "{huge}");
    // A block count above MAX_LAYERS is refused by name before the blocks are allocated.
    let deep = field(StditConfig::new(16, 2, usize::MAX / 4, 8));
    assert_eq!(deep, "depth");
    let msg = StditConfig::new(16, 3, 1, 8)
        .init::<B>(&device)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("d_model") && msg.contains("16"), "{msg}");
}
