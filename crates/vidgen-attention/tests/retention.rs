//! Multi-scale retention: the parallel, recurrent and chunkwise forms against each other and
//! against the unnormalised reference recurrence (lengths 1, 7, 64, 100; chunk sizes 16, 32, 64,
//! most not dividing the length), states across forms, gradients of parallel vs chunkwise, golden
//! parity with torchscale 0.3.0 (`golden/gen_attention_retention.py`), and config errors.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use vidgen_attention::AttentionError;
use vidgen_attention::ConfigError;
use vidgen_attention::retention::*;
use vidgen_testing::{Golden, Tolerance, assert_close, autodiff_backend_tests, backend_tests};

/// Forms vs reference with group-norm eps 0, where the norm is exactly scale invariant and the
/// forms are the same function: only f32 rounding remains (the normalised outputs are O(1)).
const FORMS_EPS0: Tolerance = Tolerance::new("FORMS_EPS0", 1e-5, 0.0);

/// Parallel vs recurrent with eps > 0: both divide row `n` by `sqrt(G(n+1))`; they differ only
/// where the parallel row guard `max(|row sum|, 1)` exceeds 1, which these inputs never reach,
/// so f32 rounding is all that is left.
const PARALLEL_RECURRENT: Tolerance = Tolerance::new("PARALLEL_RECURRENT", 1e-5, 0.0);

/// Chunkwise vs parallel with the default eps 1e-6 on this tiny layer (Burn's default init, unit
/// normal inputs): not rounding but the different weight of eps in each form's group norm, see
/// `forms_with_default_eps`. Measured max 4.1e-5 (length 100); at eps 0 the same pairs agree to
/// 2.4e-7. Larger weights or inputs shrink it, torchscale's small xavier init grows it.
const CHUNKWISE_DEFAULT_EPS: Tolerance = Tolerance::new("CHUNKWISE_DEFAULT_EPS", 1e-4, 0.0);

/// States of two forms after the same tokens: sums of up to 100 decayed outer products in f32;
/// measured on flex, max abs error 7.1e-5 on state entries of up to ~90 (relative 8e-7).
const STATE: Tolerance = Tolerance::new("STATE", 1e-5, 4e-6);

/// Gradients of parallel vs chunkwise (eps 0) w.r.t. the input and `q_proj`: backward through the
/// group norm, the decay matmuls and the projections, each side rounding on its own.
const GRADS: Tolerance = Tolerance::new("GRADS", 1e-5, 1e-3);

/// torchscale vs ours on the same weights: one block (projections, rotary, retention, norm, gate,
/// projection) in f32; our decay/rotary tables are computed in f64 then rounded, torchscale's in
/// f32, a difference of a few f32 ulps per entry. Measured max 7.5e-7 (outputs up to 0.25).
const GOLDEN: Tolerance = Tolerance::new("GOLDEN", 5e-6, 0.0);

/// Rotary and decay tables: f64-then-rounded vs torchscale's f32 (`sin(p·θ)` with `p ≤ 11`: the
/// f32 angle carries a relative error of ~6e-8, times `p`).
/// Measured max 6e-8 abs on values ≤ 1, 1e-7 rel on the query decays (up to ~30).
const TABLES: Tolerance = Tolerance::new("TABLES", 1e-6, 1e-6);

const LENGTHS: [usize; 4] = [1, 7, 64, 100];
const CHUNK_SIZES: [usize; 3] = [16, 32, 64];

fn tiny<B: Backend>(eps: f64, device: &B::Device) -> MultiScaleRetention<B> {
    B::seed(device, 3);
    MultiScaleRetentionConfig::new(16, 2)
        .with_value_dim(Some(32))
        .with_eps(eps)
        .init(device)
        .unwrap()
}

fn input<B: Backend>(len: usize, seed: u64, device: &B::Device) -> Tensor<B, 3> {
    B::seed(device, seed);
    Tensor::random([2, len, 16], Distribution::Normal(0.0, 1.0), device)
}

/// With eps 0: parallel == recurrent == chunkwise == reference for every length and chunk size.
fn forms_agree_with_reference<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(0.0, device);
    for len in LENGTHS {
        let x = input::<B>(len, len as u64, device);
        let reference = layer.forward_reference(x.clone());
        assert_close(
            layer.forward_parallel(x.clone()),
            reference.clone(),
            FORMS_EPS0,
        );
        let (recurrent, _) = layer.forward_recurrent(x.clone(), layer.empty_state(2, device));
        assert_close(recurrent, reference.clone(), FORMS_EPS0);
        for chunk in CHUNK_SIZES {
            let (y, _) = layer.forward_chunkwise(x.clone(), chunk, layer.empty_state(2, device));
            assert_close(y, reference.clone(), FORMS_EPS0);
        }
    }
}

/// With torchscale's default eps 1e-6: parallel and recurrent share the row factor
/// `1/sqrt(G(n+1))` and differ only where the parallel guard `max(|row sum|, 1)` exceeds 1, which
/// these inputs do not reach, so they agree to rounding. The chunkwise form divides by
/// `sqrt(G(j+1)) · max(Σ|scores|, cross scale)` instead, so eps weighs differently inside its norm
/// (`eps / c²`): it is checked against the parallel form under the eps-effect bound
/// `CHUNKWISE_DEFAULT_EPS` (torchscale's own chunkwise and parallel outputs differ by 9e-3 on the
/// golden case; `eps_effect_is_what_separates_the_forms` shows the gap is eps's, not rounding).
fn forms_with_default_eps<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(1e-6, device);
    for len in LENGTHS {
        let x = input::<B>(len, 10 + len as u64, device);
        let parallel = layer.forward_parallel(x.clone());
        let (recurrent, _) = layer.forward_recurrent(x.clone(), layer.empty_state(2, device));
        assert_close(recurrent, parallel.clone(), PARALLEL_RECURRENT);
        for chunk in CHUNK_SIZES {
            let (y, _) = layer.forward_chunkwise(x.clone(), chunk, layer.empty_state(2, device));
            assert_close(y, parallel.clone(), CHUNKWISE_DEFAULT_EPS);
        }
    }
}

/// The chunkwise state equals the recurrent one (kv, scale, position) for chunk sizes that do and
/// do not divide the length.
fn chunkwise_state_matches_recurrent<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(1e-6, device);
    let x = input::<B>(100, 5, device);
    let (_, expected) = layer.forward_recurrent(x.clone(), layer.empty_state(2, device));
    assert_eq!(expected.position, 100);
    for chunk in [1, 16, 32, 64, 100, 128] {
        let (_, state) = layer.forward_chunkwise(x.clone(), chunk, layer.empty_state(2, device));
        assert_eq!(state.position, 100);
        for (got, want) in state.scale.iter().zip(&expected.scale) {
            assert!((got - want).abs() <= 1e-12 * want, "scale {got} vs {want}");
        }
        assert_close(state.kv, expected.kv.clone(), STATE);
    }
}

/// Prefill with the chunkwise form, then generate token by token with `step`: the same outputs
/// and state as one recurrent run (same row scales, so this holds with the default eps too).
fn chunkwise_prefill_then_steps<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(1e-6, device);
    let x = input::<B>(45, 6, device);
    let (full, full_state) = layer.forward_recurrent(x.clone(), layer.empty_state(2, device));
    let (_, mut state) =
        layer.forward_chunkwise(x.clone().narrow(1, 0, 37), 16, layer.empty_state(2, device));
    let mut steps = Vec::new();
    for n in 37..45 {
        let token = x.clone().narrow(1, n, 1).squeeze_dim::<2>(1);
        let (y, next) = layer.step(token, state);
        steps.push(y.unsqueeze_dim::<3>(1));
        state = next;
    }
    assert_eq!(state.position, 45);
    assert_close(
        Tensor::cat(steps, 1),
        full.narrow(1, 37, 8),
        PARALLEL_RECURRENT,
    );
    assert_close(state.kv, full_state.kv, STATE);
}

/// Chunkwise from a state: two chunkwise calls (37 then 63 tokens) equal one over 100 (eps 0).
fn chunkwise_resumes_from_state<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(0.0, device);
    let x = input::<B>(100, 8, device);
    let (whole, whole_state) = layer.forward_chunkwise(x.clone(), 16, layer.empty_state(2, device));
    let (first, state) =
        layer.forward_chunkwise(x.clone().narrow(1, 0, 37), 16, layer.empty_state(2, device));
    let (second, state) = layer.forward_chunkwise(x.narrow(1, 37, 63), 32, state);
    assert_close(Tensor::cat(vec![first, second], 1), whole, FORMS_EPS0);
    assert_close(state.kv, whole_state.kv, STATE);
}

/// Why the forms differ at eps > 0: the chunkwise-vs-parallel gap vanishes (to rounding) at
/// eps = 0 and grows with eps, as the `eps / c²` term inside each form's group norm predicts.
fn eps_effect_is_what_separates_the_forms<B: Backend>(device: &B::Device) {
    let x = input::<B>(64, 9, device);
    let gaps: Vec<f64> = [0.0, 1e-6, 1e-4, 1e-2]
        .into_iter()
        .map(|eps| {
            let layer = tiny::<B>(eps, device);
            let parallel = layer.forward_parallel(x.clone());
            let (chunked, _) = layer.forward_chunkwise(x.clone(), 16, layer.empty_state(2, device));
            let gap = (chunked - parallel).abs().max().into_scalar();
            burn::tensor::ElementConversion::elem::<f64>(gap)
        })
        .collect();
    assert!(gaps[0] <= FORMS_EPS0.abs, "eps 0 gap {gaps:?}");
    assert!(
        gaps.windows(2).all(|w| w[0] < w[1]),
        "gap must grow with eps: {gaps:?}"
    );
    assert!(
        gaps[3] > 1e-3,
        "eps 1e-2 should separate the forms visibly: {gaps:?}"
    );
    eprintln!("chunkwise vs parallel max gap for eps 0, 1e-6, 1e-4, 1e-2: {gaps:?}");
}

/// `step` token by token equals `forward_recurrent` on the whole sequence.
fn step_equals_forward_recurrent<B: Backend>(device: &B::Device) {
    let layer = tiny::<B>(1e-6, device);
    let x = input::<B>(7, 11, device);
    let (full, _) = layer.forward_recurrent(x.clone(), layer.empty_state(2, device));
    let mut state = layer.empty_state(2, device);
    for n in 0..7 {
        let (y, next) = layer.step(x.clone().narrow(1, n, 1).squeeze_dim::<2>(1), state);
        assert_close(
            y,
            full.clone().narrow(1, n, 1).squeeze_dim::<2>(1),
            Tolerance::EXACT,
        );
        state = next;
    }
}

#[test]
#[should_panic(expected = "chunk_size must be greater than 0")]
fn chunk_size_zero_panics() {
    let device = Default::default();
    let layer = tiny::<vidgen_testing::Flex>(1e-6, &device);
    let x = input(4, 1, &device);
    let _ = layer.forward_chunkwise(x, 0, layer.empty_state(2, &device));
}

backend_tests!(
    forms_agree_with_reference,
    forms_with_default_eps,
    chunkwise_state_matches_recurrent,
    chunkwise_prefill_then_steps,
    chunkwise_resumes_from_state,
    eps_effect_is_what_separates_the_forms,
    step_equals_forward_recurrent,
    golden_matches_torchscale,
    golden_tables_match_torchscale,
);

/// Gradients of `Σ w ⊙ y` w.r.t. the input and `q_proj.weight` agree between the parallel and
/// chunkwise forms (eps 0, length 37, chunk 16: two full chunks and a partial one).
fn gradients_parallel_vs_chunkwise<B: AutodiffBackend>(device: &B::Device) {
    let layer = tiny::<B>(0.0, device);
    let x = input::<B>(37, 12, device);
    B::seed(device, 13);
    let w = Tensor::<B, 3>::random([2, 37, 16], Distribution::Normal(0.0, 1.0), device);
    let grads_of = |y: Tensor<B, 3>, x: &Tensor<B, 3>| {
        let grads = (y * w.clone()).sum().backward();
        (
            x.grad(&grads).unwrap(),
            layer.q_proj.weight.grad(&grads).unwrap(),
        )
    };
    let xp = x.clone().require_grad();
    let (dx_par, dq_par) = grads_of(layer.forward_parallel(xp.clone()), &xp);
    let xc = x.require_grad();
    let (y, _) = layer.forward_chunkwise(xc.clone(), 16, layer.empty_state(2, device));
    let (dx_chunk, dq_chunk) = grads_of(y, &xc);
    assert_close(dx_chunk, dx_par, GRADS);
    assert_close(dq_chunk, dq_par, GRADS);
}

autodiff_backend_tests!(gradients_parallel_vs_chunkwise);

fn golden() -> Golden {
    Golden::open("attn_retention.safetensors").unwrap_or_else(|e| panic!("{e}"))
}

fn golden_layer<B: Backend>(g: &Golden, eps: f64, device: &B::Device) -> MultiScaleRetention<B> {
    let d_model = g.meta_f64("d_model") as usize;
    let mut layer = MultiScaleRetentionConfig::new(d_model, g.meta_f64("n_heads") as usize)
        .with_value_dim(Some(g.meta_f64("value_dim") as usize))
        .with_eps(eps)
        .init::<B>(device)
        .unwrap();
    g.load_linear(&mut layer.q_proj, "q_proj", device);
    g.load_linear(&mut layer.k_proj, "k_proj", device);
    g.load_linear(&mut layer.v_proj, "v_proj", device);
    g.load_linear(&mut layer.g_proj, "g_proj", device);
    g.load_linear(&mut layer.out_proj, "out_proj", device);
    layer
}

/// All three forms, the state after the recurrent run, and the eps-0 parallel output (vs our
/// parallel form and our reference) against torchscale on the same weights and input.
fn golden_matches_torchscale<B: Backend>(device: &B::Device) {
    let g = golden();
    let eps = g.meta_f64("eps");
    assert_eq!(eps, 1e-6, "torchscale's default layernorm_eps");
    let layer = golden_layer::<B>(&g, eps, device);
    let x: Tensor<B, 3> = g.tensor("x", device);
    let [batch, len, _] = x.dims();
    assert_close(
        layer.forward_parallel(x.clone()),
        g.tensor("parallel.out", device),
        GOLDEN,
    );
    let chunk = g.meta_f64("chunk_size") as usize;
    let (y, _) = layer.forward_chunkwise(x.clone(), chunk, layer.empty_state(batch, device));
    assert_close(y, g.tensor("chunkwise.out", device), GOLDEN);
    let mut state = layer.empty_state(batch, device);
    let mut steps = Vec::new();
    for n in 0..len {
        let (y, next) = layer.step(x.clone().narrow(1, n, 1).squeeze_dim::<2>(1), state);
        steps.push(y.unsqueeze_dim::<3>(1));
        state = next;
    }
    assert_close(
        Tensor::cat(steps, 1),
        g.tensor("recurrent.out", device),
        GOLDEN,
    );
    let prev_key_value: Tensor<B, 4> = g.tensor("recurrent.prev_key_value", device);
    assert_close(state.kv, prev_key_value.swap_dims(2, 3), GOLDEN);
    let scale = Tensor::<B, 1>::from_floats(
        state
            .scale
            .iter()
            .map(|&s| s as f32)
            .collect::<Vec<_>>()
            .as_slice(),
        device,
    );
    assert_close(
        scale,
        g.tensor("recurrent.scale", device),
        Tolerance::SINGLE_OP,
    );

    let exact = golden_layer::<B>(&g, 0.0, device);
    assert_close(
        exact.forward_parallel(x.clone()),
        g.tensor("eps0.parallel.out", device),
        GOLDEN,
    );
    assert_close(
        exact.forward_reference(x),
        g.tensor("eps0.parallel.out", device),
        GOLDEN,
    );
}

/// `RetentionRelPos` tables against torchscale's `RetNetRelPos`: sin/cos, the parallel decay mask
/// and the chunkwise tables.
fn golden_tables_match_torchscale<B: Backend>(device: &B::Device) {
    let g = golden();
    let layer = golden_layer::<B>(&g, 1e-6, device);
    let len = g.meta_f64("length") as usize;
    let (sin, cos) = layer.rel_pos.sin_cos::<B>(0, len, device);
    assert_close(sin, g.tensor("rel_pos.sin", device), TABLES);
    assert_close(cos, g.tensor("rel_pos.cos", device), TABLES);
    assert_close(
        layer.rel_pos.decay_mask::<B>(len, device),
        g.tensor("rel_pos.mask", device),
        TABLES,
    );
    let chunk = g.meta_f64("chunk_size") as usize;
    let tables = layer.rel_pos.chunk_tables::<B>(chunk, chunk, device);
    assert_close(
        tables.inner_mask,
        g.tensor("chunk.inner_mask", device),
        TABLES,
    );
    assert_close(
        tables.query_decay,
        g.tensor("chunk.query_inner_decay", device),
        TABLES,
    );
    assert_close(
        tables.value_decay,
        g.tensor("chunk.value_inner_decay", device),
        TABLES,
    );
    let cross: Vec<f32> = tables.cross_decay.iter().map(|&c| c as f32).collect();
    assert_close(
        Tensor::<B, 1>::from_floats(cross.as_slice(), device),
        g.tensor("chunk.cross_decay", device),
        TABLES,
    );
}

fn expect_err(config: MultiScaleRetentionConfig, field: &str) -> AttentionError {
    let err = config
        .init::<vidgen_testing::Flex>(&Default::default())
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("`{field}`")),
        "{err} should name `{field}`"
    );
    err
}

#[test]
fn invalid_configs_name_the_field() {
    let err = expect_err(MultiScaleRetentionConfig::new(0, 2), "d_model");
    assert_eq!(
        err,
        AttentionError::Config(ConfigError::Zero { field: "d_model" })
    );
    expect_err(MultiScaleRetentionConfig::new(16, 0), "n_heads");
    let err = expect_err(MultiScaleRetentionConfig::new(30, 4), "d_model");
    assert!(
        matches!(
            err,
            AttentionError::Config(ConfigError::NotDivisible {
                value: 30,
                by: 4,
                ..
            })
        ),
        "{err:?}"
    );
    let err = expect_err(MultiScaleRetentionConfig::new(12, 4), "d_model");
    assert!(
        matches!(err, AttentionError::Config(ConfigError::Unsupported { .. })),
        "{err:?}"
    );
    expect_err(
        MultiScaleRetentionConfig::new(16, 2).with_value_dim(Some(0)),
        "value_dim",
    );
    let err = expect_err(
        MultiScaleRetentionConfig::new(16, 4).with_value_dim(Some(30)),
        "value_dim",
    );
    assert!(
        matches!(
            err,
            AttentionError::Config(ConfigError::NotDivisible {
                value: 30,
                by: 4,
                ..
            })
        ),
        "{err:?}"
    );
    for eps in [-1e-6, f64::NAN, f64::INFINITY] {
        expect_err(MultiScaleRetentionConfig::new(16, 2).with_eps(eps), "eps");
    }
}

#[test]
fn defaults_follow_retnet() {
    let layer = MultiScaleRetentionConfig::new(16, 4)
        .init::<vidgen_testing::Flex>(&Default::default())
        .unwrap();
    assert_eq!(
        (layer.n_heads(), layer.key_dim(), layer.head_dim()),
        (4, 4, 8)
    );
    assert_eq!(layer.group_norm.eps, 1e-6);
    assert_eq!(layer.gate_fn, RetentionGate::Swish);
    let gammas = layer.rel_pos.gammas();
    assert_eq!(
        gammas,
        &[
            1.0 - 1.0 / 32.0,
            1.0 - 1.0 / 64.0,
            1.0 - 1.0 / 128.0,
            1.0 - 1.0 / 256.0
        ]
    );
    assert_eq!(layer.rel_pos.angles(), &[1.0, 1e-4]);
}
