//! FlashVideo: the retention forms of the whole model agree (parallel == reference == chunkwise ==
//! recurrent generation), redundancy-free interpolation samples exactly the non-inheritable
//! tokens, the recurrent state has a constant size, and invalid configs name their field.

use burn::tensor::{Distribution, Int, Tensor, backend::Backend};
use vidgen_models::ConfigError;
use vidgen_models::flashvideo::*;
use vidgen_models::{Kernel, ModelError, WithKernel};
use vidgen_testing::{Tolerance, assert_close, backend_tests};
use vidgen_vae::VectorQuantizerConfig;

/// Two blocks of f32 retention + SwiGLU whose forms differ only in summation order (and, for the
/// parallel/chunkwise forms, in a per-row scale that the eps = 0 group norm cancels up to
/// rounding): block-level f32 tolerance (measured on flex: 5.4e-7 abs, 8.3e-5 rel).
const FORMS: Tolerance = Tolerance::new("FORMS", 1e-4, 1e-3);

const GRID: [usize; 2] = [3, 4];

fn config() -> FlashVideoConfig {
    FlashVideoConfig::new(11, 7, 16, 2, 2, GRID, 5).with_key_frame_stride(2)
}

fn random_ids<B: Backend>(len: usize, max: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::<B, 2>::random([2, len], Distribution::Uniform(0.0, max as f64), device).int()
}

fn parallel_matches_reference<B: Backend>(device: &B::Device) {
    let model = config().init::<B>(device).unwrap();
    let tokens = random_ids::<B>(13, 11 + 7 + 5, device);
    let logits = model.forward_parallel(tokens.clone());
    assert_eq!(logits.dims(), [2, 13, 11]);
    let reference = model.with_kernel(Kernel::Reference);
    assert_close(logits, reference.forward_parallel(tokens), FORMS);
}

fn chunkwise_and_step_match_parallel<B: Backend>(device: &B::Device) {
    let tokens = random_ids::<B>(13, 11 + 7 + 5, device);
    for chunk_size in [1, 3, 5, 64] {
        let model = config()
            .with_chunk_size(chunk_size)
            .init::<B>(device)
            .unwrap();
        let expected = model.forward_parallel(tokens.clone());
        // Two calls from a non-empty state: 6 tokens, then 7 (chunk sizes that do not divide).
        let state = model.empty_state(2, device);
        let (a, state) = model.forward_chunkwise(tokens.clone().narrow(1, 0, 6), state);
        let (b, state) = model.forward_chunkwise(tokens.clone().narrow(1, 6, 7), state);
        assert_eq!(state.position(), 13);
        assert_close(Tensor::cat(vec![a, b], 1), expected.clone(), FORMS);
        if chunk_size == 1 {
            let mut state = model.empty_state(2, device);
            let mut steps = Vec::new();
            for i in 0..13 {
                let token = tokens.clone().narrow(1, i, 1).reshape([2]);
                let (logits, next) = model.step(token, state);
                steps.push(logits.unsqueeze_dim(1));
                state = next;
            }
            assert_close(Tensor::cat(steps, 1), expected, FORMS);
        }
    }
}

/// Compares every recorded set of decoder logits with the parallel logits over the final sequence
/// at the position before the predicted id, and checks greedy picks against the parallel argmax.
fn check_trace<B: Backend>(model: &FlashVideo<B>, dec: &Decoder<'_, B>, greedy: bool) {
    let device = &model.embed_tokens.weight.device();
    let ids = dec.ids().to_vec();
    let parallel = model.forward_parallel(FlashVideo::<B>::ids_tensor(&ids, device));
    let (mut rec, mut par) = (Vec::new(), Vec::new());
    for (pos, logits) in dec.trace() {
        rec.push(logits.clone().unsqueeze::<2>());
        par.push(parallel.clone().narrow(1, pos - 1, 1).reshape([1, -1]));
        if greedy && *pos < ids.len() {
            let row = parallel.clone().narrow(1, pos - 1, 1).reshape([-1]);
            let argmax = row.argmax(0).into_scalar().elem::<i64>() as usize;
            assert_eq!(ids[*pos], argmax, "greedy pick at position {pos}");
        }
    }
    assert!(!rec.is_empty());
    assert_close(Tensor::cat(rec, 0), Tensor::cat(par, 0), FORMS);
}

use burn::tensor::ElementConversion;

fn recurrent_generation_matches_parallel<B: Backend>(device: &B::Device) {
    let model = config().with_chunk_size(4).init::<B>(device).unwrap();
    let text = [1, 4, 2];
    for sampling in [
        Sampling::Greedy,
        Sampling::Seeded {
            seed: 7,
            temperature: 1.0,
        },
    ] {
        let mut dec = Decoder::new(&model, sampling, device).with_trace();
        let frames = generate_key_frames(&mut dec, &text, 2).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(
            frames
                .iter()
                .all(|f| f.len() == 12 && f.iter().all(|&c| c < 11))
        );
        // One model call per sampled code; the prompt is absorbed by the first (chunkwise) call.
        assert_eq!(dec.stats.model_calls, 24);
        assert_eq!(dec.stats.sampled_tokens, 24);
        assert_eq!(dec.ids().len(), 2 * (3 + 1 + 12));
        check_trace(&model, &dec, sampling == Sampling::Greedy);
        // The caller's seed fixes the result.
        let mut again = Decoder::new(&model, sampling, device);
        assert_eq!(generate_key_frames(&mut again, &text, 2).unwrap(), frames);
    }
}

fn interpolation_skips_inheritable_tokens<B: Backend>(device: &B::Device) {
    let model = config().with_chunk_size(3).init::<B>(device).unwrap();
    let key_a: Vec<usize> = (0..12).map(|i| i % 11).collect();
    let mut key_b = key_a.clone();
    key_b[0] = 10; // top-left corner differs: its ring is (0,1), (1,0), (1,1)
    let plan = classify_tokens(&key_a, &key_b, GRID, 1, 0.5, 3);
    assert_eq!(plan.count(TokenClass::Different), 1);
    assert_eq!(plan.count(TokenClass::Unstable), 3);
    assert_eq!(plan.count(TokenClass::Inheritable), 4); // round(0.5 · 8 stable)
    assert_eq!(plan.count(TokenClass::Stable), 4);
    let n_insert = 3;
    let sampling = Sampling::Seeded {
        seed: 11,
        temperature: 0.7,
    };
    let mut dec = Decoder::new(&model, sampling, device).with_trace();
    let frames = interpolate(&mut dec, &[5, 6], &key_a, &key_b, n_insert, &plan).unwrap();
    assert_eq!(frames.len(), n_insert);
    let inherit = plan.count(TokenClass::Inheritable);
    assert_eq!(dec.stats.inherited_tokens, n_insert * inherit);
    assert_eq!(dec.stats.sampled_tokens, n_insert * 12 - n_insert * inherit);
    assert_eq!(dec.stats.model_calls, n_insert * 12 - n_insert * inherit);
    for frame in &frames {
        for (j, &code) in frame.iter().enumerate() {
            if plan.inherits(j) {
                assert_eq!(code, key_a[j], "inherited code at {j}");
            }
        }
    }
    // Serial numbers: 1 before A, n + 2 before B, 2..=n+1 before the inserted frames.
    let serial = |s: usize| model.serial_id(s);
    let ids = dec.ids();
    let per_frame = 2 + 1 + 12;
    assert_eq!(ids[2], serial(1));
    assert_eq!(ids[per_frame + 2], serial(n_insert + 2));
    assert_eq!(ids[2 * per_frame + 2], serial(2));
    assert_eq!(ids[4 * per_frame + 2], serial(n_insert + 1));
    // Absorbing inherited runs with the chunkwise form changes no logits.
    check_trace(&model, &dec, false);
}

fn classify_tokens_rules<B: Backend>(_device: &B::Device) {
    // 4×5 grid, one difference in the middle at (1, 2): radius 1 marks its 8 neighbours.
    let a = vec![0; 20];
    let mut b = a.clone();
    b[7] = 1;
    let plan = classify_tokens(&a, &b, [4, 5], 1, 0.0, 0);
    assert_eq!(plan.classes[7], TokenClass::Different);
    for i in [1, 2, 3, 6, 8, 11, 12, 13] {
        assert_eq!(plan.classes[i], TokenClass::Unstable, "position {i}");
    }
    assert_eq!(plan.count(TokenClass::Stable), 11);
    assert_eq!(plan.count(TokenClass::Inheritable), 0);
    // Radius 2 reaches two rows and columns; ratio 1 inherits every stable token.
    let wide = classify_tokens(&a, &b, [4, 5], 2, 1.0, 0);
    assert_eq!(wide.count(TokenClass::Unstable), 19);
    let all = classify_tokens(&a, &b, [4, 5], 1, 1.0, 0);
    assert_eq!(all.count(TokenClass::Inheritable), 11);
    assert_eq!(all.count(TokenClass::Stable), 0);
    // The default 20 % of the 11 stable tokens: round(2.2) = 2, chosen by the seed.
    let p1 = classify_tokens(&a, &b, [4, 5], 1, 0.2, 1);
    assert_eq!(p1.count(TokenClass::Inheritable), 2);
    assert_eq!(p1, classify_tokens(&a, &b, [4, 5], 1, 0.2, 1));
    let differs = (2..40).any(|s| classify_tokens(&a, &b, [4, 5], 1, 0.2, s) != p1);
    assert!(differs, "the seed must change the inheritable subset");
    // Identical key frames: everything stable.
    let same = classify_tokens(&a, &a, [4, 5], 1, 0.0, 0);
    assert_eq!(same.count(TokenClass::Stable), 20);
}

fn state_size_is_constant<B: Backend>(device: &B::Device) {
    let model = config().init::<B>(device).unwrap();
    let mut dec = Decoder::new(&model, Sampling::Greedy, device);
    let empty = dec.state().numel();
    dec.push_known(&model.frame_prefix(&[1, 2, 3], 1, true));
    let mut sizes = Vec::new();
    for _ in 0..20 {
        dec.sample_next().unwrap();
        sizes.push((dec.state().position(), dec.state().numel()));
    }
    assert_eq!(sizes[0].0, 4);
    assert_eq!(sizes[19].0, 23);
    assert!(
        sizes.iter().all(|&(_, n)| n == empty),
        "{sizes:?} vs {empty}"
    );
    // 2 layers × [1, 2 heads, key_dim 8, head_dim 16] + 2 scales each.
    assert_eq!(empty, 2 * (2 * 8 * 16 + 2));
    assert_eq!(dec.state().layers[0].kv.dims(), [1, 2, 8, 16]);
}

fn video_pipeline_counts_and_decodes<B: Backend>(device: &B::Device) {
    let key_model = config().init::<B>(device).unwrap();
    let interp_model = config()
        .with_inheritable_ratio(1.0)
        .init::<B>(device)
        .unwrap();
    let sampling = Sampling::Seeded {
        seed: 5,
        temperature: 1.0,
    };
    let video = generate_video(&key_model, &interp_model, &[3, 1], sampling, 9, device).unwrap();
    assert_eq!(video.frames.len(), 5);
    assert_eq!(video.plans.len(), 2); // key frames 0, 2, 4
    assert_eq!(video.key_frame_stats.model_calls, 3 * 12);
    let inherited: usize = video
        .plans
        .iter()
        .map(|p| p.count(TokenClass::Inheritable))
        .sum();
    let s = video.interpolation_stats;
    assert_eq!(s.inherited_tokens, inherited);
    assert_eq!(s.model_calls, 2 * 12 - inherited);
    assert_eq!(s.sampled_tokens + s.inherited_tokens, 2 * 12);
    for (p, plan) in video.plans.iter().enumerate() {
        let (a, mid) = (&video.frames[2 * p], &video.frames[2 * p + 1]);
        for j in 0..12 {
            if plan.inherits(j) {
                assert_eq!(mid[j], a[j]);
            }
            assert_ne!(
                plan.classes[j],
                TokenClass::Stable,
                "ratio 1 inherits every stable token"
            );
        }
    }
    let vq = VectorQuantizerConfig::new(11, 3 * 2 * 2)
        .init::<B>(device)
        .unwrap();
    let rgb = decode_video(&vq, &video.frames, GRID, 2, device).unwrap();
    assert_eq!(rgb.dims(), [3, 5, 6, 8]);
    // Pixel (c, t, y, x) is component (c, y % p, x % p) of the code at token (y / p, x / p).
    let codebook = vq.embedding.val();
    let code = video.frames[4][4 + 3] as i64; // token (1, 3)
    let expected = codebook
        .select(0, Tensor::from_ints([code], device))
        .reshape([3, 2, 2]);
    let got = rgb
        .clone()
        .narrow(1, 4, 1)
        .narrow(2, 2, 2)
        .narrow(3, 6, 2)
        .reshape([3, 2, 2]);
    assert_close(got, expected, Tolerance::EXACT);
    let bad = decode_video(&vq, &video.frames, GRID, 3, device).unwrap_err();
    assert!(matches!(
        bad,
        ModelError::Config(ConfigError::ShapeMismatch {
            expected: 27,
            got: 12,
            ..
        })
    ));
}

fn config_errors_name_fields<B: Backend>(device: &B::Device) {
    let err = |c: FlashVideoConfig| c.init::<B>(device).unwrap_err();
    let cases = [
        (
            err(FlashVideoConfig {
                vocab_size: 0,
                ..config()
            }),
            "vocab_size",
        ),
        (
            err(FlashVideoConfig {
                text_vocab_size: 0,
                ..config()
            }),
            "text_vocab_size",
        ),
        (
            err(FlashVideoConfig {
                depth: 0,
                ..config()
            }),
            "depth",
        ),
        (
            err(FlashVideoConfig {
                frame_grid: [3, 0],
                ..config()
            }),
            "frame_grid[1]",
        ),
        (err(config().with_key_frame_stride(0)), "key_frame_stride"),
        (err(config().with_chunk_size(0)), "chunk_size"),
        (err(config().with_ffn_dim(Some(0))), "ffn_dim"),
        (
            err(FlashVideoConfig {
                n_heads: 3,
                ..config()
            }),
            "d_model",
        ),
        (
            err(FlashVideoConfig {
                n_heads: 2,
                d_model: 6,
                ..config()
            }),
            "d_model",
        ),
        (err(config().with_key_frame_stride(3)), "n_frames"),
        (
            err(config().with_inheritable_ratio(1.5)),
            "inheritable_ratio",
        ),
        (err(config().with_retention_eps(-1.0)), "retention_eps"),
        (err(config().with_norm_eps(0.0)), "norm_eps"),
    ];
    for (e, field) in cases {
        assert!(
            e.to_string().contains(&format!("`{field}`")),
            "{e} should name {field}"
        );
    }
    assert!(matches!(
        err(FlashVideoConfig {
            n_frames: 0,
            ..config()
        }),
        ModelError::Config(ConfigError::Zero { field: "n_frames" })
    ));
    assert!(matches!(
        err(config().with_key_frame_stride(3)),
        ModelError::Config(ConfigError::Unsupported {
            field: "n_frames",
            ..
        })
    ));
    assert!(config().with_key_frame_stride(4).init::<B>(device).is_ok());
}

backend_tests!(
    parallel_matches_reference,
    chunkwise_and_step_match_parallel,
    recurrent_generation_matches_parallel,
    interpolation_skips_inheritable_tokens,
    classify_tokens_rules,
    state_size_is_constant,
    video_pipeline_counts_and_decodes,
    config_errors_name_fields,
);
