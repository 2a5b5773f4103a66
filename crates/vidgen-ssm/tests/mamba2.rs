//! The Mamba2 layer: golden parity with mamba-ssm 2.3.2.post1's `Mamba2` forward (pure-torch path:
//! F.conv1d, `ssd_minimal_discrete`, `rms_norm_ref`), prefill states and `step` math
//! (`golden/gen_ssm_mamba2.py`); chunked forward == step loop, prefill-then-step == one pass,
//! gradients of the chunked path == the step loop's; bidirectional Mamba2 against its step-loop
//! twin; config errors naming the field.

use burn::module::Param;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use vidgen_nn::materialize;
use vidgen_ssm::ConfigError;
use vidgen_ssm::bidirectional::{BiMamba2Config, BiMerge};
use vidgen_ssm::mamba2::{Mamba2, Mamba2Cache, Mamba2Config};
use vidgen_ssm::{Kernel, SsmError, WithKernel};
use vidgen_testing::{
    Golden, Tolerance, assert_close, autodiff_backend_tests, backend_tests, golden,
};

/// A whole tiny Mamba2 layer in f32 against PyTorch: in_proj, conv, scan, norm and out_proj each
/// round differently; outputs are O(1–10) with weights of std 0.3, so a block-level bound.
const MAMBA2_GOLDEN: Tolerance = Tolerance::new("MAMBA2_GOLDEN", 1e-4, 1e-3);
/// Chunked layer vs step loop on the same weights (same f32 reordering as the SSD scan).
const MAMBA2_EQUIV: Tolerance = Tolerance::new("MAMBA2_EQUIV", 1e-4, 1e-3);
/// Parameter gradients summed over every token and batch entry.
const MAMBA2_GRAD: Tolerance = Tolerance::new("MAMBA2_GRAD", 1e-4, 1e-3);

fn meta_usize(g: &Golden, key: &str) -> usize {
    g.meta(key).unwrap().parse().unwrap()
}

/// The fixture's config and weights (mamba-ssm keys; `A_log` → `a_log`, `D` → `d`).
fn load<B: Backend>(g: &Golden, device: &B::Device) -> Mamba2<B> {
    let config = Mamba2Config::new(meta_usize(g, "d_model"))
        .with_d_state(meta_usize(g, "d_state"))
        .with_d_conv(meta_usize(g, "d_conv"))
        .with_expand(meta_usize(g, "expand"))
        .with_head_dim(meta_usize(g, "head_dim"))
        .with_n_groups(meta_usize(g, "n_groups"))
        .with_chunk_size(meta_usize(g, "chunk_size"))
        .with_norm_before_gate(g.meta("norm_before_gate") == Some("True"))
        .with_bias(g.meta("bias") == Some("True"));
    let mut m = config.init::<B>(device).unwrap();
    g.load_linear(&mut m.in_proj, "in_proj", device);
    g.load_linear(&mut m.out_proj, "out_proj", device);
    m.conv1d.weight = g.param("conv1d.weight", device);
    m.conv1d.bias = Some(g.param("conv1d.bias", device));
    m.dt_bias = g.param("dt_bias", device);
    m.a_log = g.param("A_log", device);
    m.d = g.param("D", device);
    m.norm.weight = g.param("norm.weight", device);
    m
}

fn golden_layer<B: Backend>(name: &str, device: &B::Device) {
    let g = golden(name);
    let m = load::<B>(&g, device);
    let u: Tensor<B, 3> = g.tensor("u", device);
    let [_, len, _] = u.dims();
    let prefill = meta_usize(&g, "prefill");
    // 1. full forward
    assert_close(m.forward(u.clone()), g.tensor("out", device), MAMBA2_GOLDEN);
    // 2. prefill states
    let (_, mut cache) = m.forward_cached(u.clone().narrow(1, 0, prefill), None);
    assert_close(
        cache.conv_state.clone(),
        g.tensor("prefill.conv_state", device),
        MAMBA2_GOLDEN,
    );
    assert_close(
        cache.ssm_state.clone(),
        g.tensor("prefill.ssm_state", device),
        MAMBA2_GOLDEN,
    );
    // 3. step math from the prefill states
    let mut outs = vec![];
    for t in prefill..len {
        let (y, next) = m.step(u.clone().narrow(1, t, 1).squeeze_dim(1), cache);
        outs.push(y);
        cache = next;
    }
    assert_close(
        Tensor::stack::<3>(outs, 1),
        g.tensor("step.out", device),
        MAMBA2_GOLDEN,
    );
    assert_close(
        cache.conv_state,
        g.tensor("step.conv_state", device),
        MAMBA2_GOLDEN,
    );
    assert_close(
        cache.ssm_state,
        g.tensor("step.ssm_state", device),
        MAMBA2_GOLDEN,
    );
}

fn matches_mamba_ssm_one_group<B: Backend>(device: &B::Device) {
    golden_layer::<B>("ssm_mamba2_g1.safetensors", device);
}

/// Two groups, d_conv 3, a prefill shorter than the conv window, gate before norm, biases.
fn matches_mamba_ssm_two_groups<B: Backend>(device: &B::Device) {
    golden_layer::<B>("ssm_mamba2_g2.safetensors", device);
}

fn tiny(groups: usize, chunk: usize) -> Mamba2Config {
    Mamba2Config::new(8)
        .with_d_state(6)
        .with_d_conv(3)
        .with_head_dim(4)
        .with_n_groups(groups)
        .with_chunk_size(chunk)
}

fn tokens<B: Backend>(len: usize, device: &B::Device) -> Tensor<B, 3> {
    Tensor::random([2, len, 8], Distribution::Normal(0.0, 1.0), device)
}

/// A layer whose D, norm weight and conv bias are not at their init values.
fn perturbed<B: Backend>(config: &Mamba2Config, device: &B::Device) -> Mamba2<B> {
    let mut m = config.init::<B>(device).unwrap();
    let h = m.n_heads();
    let normal = Distribution::Normal(0.0, 1.0);
    m.d = Param::from_tensor(Tensor::random([h], normal, device));
    m.norm.weight = Param::from_tensor(Tensor::random([m.d_inner()], normal, device) * 0.1 + 1.0);
    m
}

fn forward_matches_step_loop<B: Backend>(device: &B::Device) {
    B::seed(device, 5);
    for groups in [1, 2] {
        for chunk in [3, 8, 64] {
            let m = perturbed::<B>(&tiny(groups, chunk), device);
            for len in [1, 7, 20] {
                let u = tokens::<B>(len, device);
                assert_close(m.forward(u.clone()), m.forward_reference(u), MAMBA2_EQUIV);
            }
        }
    }
}

fn prefill_then_step_equals_one_pass<B: Backend>(device: &B::Device) {
    B::seed(device, 6);
    let m = perturbed::<B>(&tiny(2, 4), device);
    let u = tokens::<B>(15, device);
    let full = m.forward(u.clone());
    for prefill in [1, 2, 9] {
        let (head, mut cache) = m.forward_cached(u.clone().narrow(1, 0, prefill), None);
        let mut outs = vec![head];
        for t in prefill..15 {
            let (y, next) = m.step(u.clone().narrow(1, t, 1).squeeze_dim(1), cache);
            outs.push(y.unsqueeze_dim(1));
            cache = next;
        }
        assert_close(Tensor::cat(outs, 1), full.clone(), MAMBA2_EQUIV);
    }
    // two prefills in a row equal one
    let (a, cache) = m.forward_cached(u.clone().narrow(1, 0, 6), None);
    let (b, _) = m.forward_cached(u.narrow(1, 6, 9), Some(&cache));
    assert_close(Tensor::cat(vec![a, b], 1), full, MAMBA2_EQUIV);
}

fn cache_shapes<B: Backend>(device: &B::Device) {
    let m = tiny(2, 4).init::<B>(device).unwrap();
    let Mamba2Cache {
        conv_state,
        ssm_state,
    } = m.allocate_cache(3, device);
    // conv channels = d_inner 16 + 2·G·N = 16 + 24
    assert_eq!(conv_state.dims(), [3, 40, 3]);
    assert_eq!(ssm_state.dims(), [3, 4, 4, 6]);
    assert_eq!(m.in_proj.weight.dims(), [8, 2 * 16 + 2 * 2 * 6 + 4]);
    assert_eq!(m.conv1d.weight.dims(), [40, 1, 3]);
}

/// Reversed scan: the bidirectional forward (chunked, flipped) against step loops where the
/// backward direction runs from the last token to the first, for every merge.
fn bidirectional_matches_step_loops<B: Backend>(device: &B::Device) {
    B::seed(device, 7);
    for merge in [BiMerge::Sum, BiMerge::Mean, BiMerge::ConcatLinear] {
        let bi = BiMamba2Config::new(tiny(2, 4))
            .with_merge(merge)
            .init::<B>(device)
            .unwrap();
        assert_eq!(bi.merge_proj.is_some(), merge == BiMerge::ConcatLinear);
        let u = tokens::<B>(11, device);
        let y = bi.forward(u.clone());
        assert_eq!(y.dims(), [2, 11, 8]);
        assert_close(y, bi.forward_reference(u.clone()), MAMBA2_EQUIV);
        if merge == BiMerge::Mean {
            // the backward half really reads the sequence right to left: its first output
            // depends on the last token, unlike a causal forward scan
            let mut v = u.clone();
            v = v.slice_assign([0..2, 10..11, 0..8], Tensor::zeros([2, 1, 8], device));
            let fwd_first = |x: Tensor<B, 3>| bi.mamba_fwd.forward(x).narrow(1, 0, 1);
            let bwd_first = |x: Tensor<B, 3>| bi.mamba_bwd.forward(x.flip([1])).narrow(1, 10, 1);
            assert_close(fwd_first(u.clone()), fwd_first(v.clone()), Tolerance::EXACT);
            let diff = (bwd_first(u) - bwd_first(v)).abs().max().into_scalar();
            assert!(burn::tensor::ElementConversion::elem::<f64>(diff) > 1e-6);
        }
    }
}

/// A non-default `dt_limit` clamps `dt` in both the chunked forward and the step, which agree;
/// the clamp changes the output.
fn dt_limit_clamps_both_paths<B: Backend>(device: &B::Device) {
    B::seed(device, 9);
    // Materialised first: a clone of lazily initialised parameters draws its own weights.
    let free = materialize(perturbed::<B>(&tiny(1, 4), device));
    let mut clamped = free.clone();
    clamped.dt_limit = (0.02, 0.03);
    let u = tokens::<B>(10, device);
    let y = clamped.forward(u.clone());
    assert_close(
        y.clone(),
        clamped.forward_reference(u.clone()),
        MAMBA2_EQUIV,
    );
    let diff = (y - free.forward(u)).abs().max().into_scalar();
    assert!(burn::tensor::ElementConversion::elem::<f64>(diff) > 1e-4);
    let config = tiny(1, 4)
        .with_dt_limit_min(0.02)
        .with_dt_limit_max(Some(0.03));
    assert_eq!(config.init::<B>(device).unwrap().dt_limit, (0.02, 0.03));
}

fn values<B: Backend>(x: Tensor<B, 3>) -> Vec<f32> {
    x.into_data().convert::<f32>().to_vec().unwrap()
}

/// `with_kernel(Kernel::Reference)` makes `forward` run the step loop (bit for bit the reference
/// twin), for one layer and for both directions of a bidirectional one; `Fast` is the default.
fn kernel_chosen_at_build<B: Backend>(device: &B::Device) {
    B::seed(device, 11);
    let m = materialize(perturbed::<B>(&tiny(2, 3), device));
    assert_eq!(m.kernel, Kernel::Fast);
    let u = tokens::<B>(7, device);
    let reference = m.clone().with_kernel(Kernel::Reference);
    assert_eq!(
        values(reference.forward(u.clone())),
        values(m.forward_reference(u.clone()))
    );
    assert_eq!(
        values(m.forward(u.clone())),
        values(m.forward_cached(u.clone(), None).0)
    );
    let bi = materialize(BiMamba2Config::new(tiny(1, 4)).init::<B>(device).unwrap());
    let bi_ref = bi.clone().with_kernel(Kernel::Reference);
    assert_eq!(bi_ref.mamba_bwd.kernel, Kernel::Reference);
    assert_close(
        bi_ref.forward(u.clone()),
        bi.forward_reference(u),
        MAMBA2_EQUIV,
    );
}

backend_tests!(
    kernel_chosen_at_build,
    matches_mamba_ssm_one_group,
    dt_limit_clamps_both_paths,
    matches_mamba_ssm_two_groups,
    forward_matches_step_loop,
    prefill_then_step_equals_one_pass,
    cache_shapes,
    bidirectional_matches_step_loops,
);

/// Gradients wrt every parameter through the chunked forward equal those through the step loop.
fn gradients_match_step_loop<B: AutodiffBackend>(device: &B::Device) {
    B::seed(device, 8);
    let m = perturbed::<B>(&tiny(2, 4), device);
    let u = tokens::<B>(9, device);
    let w = tokens::<B>(9, device);
    let chunked = (m.forward(u.clone()) * w.clone()).sum().backward();
    let stepped = (m.forward_reference(u) * w).sum().backward();
    let g1 = |p: &Param<Tensor<B, 1>>, g| p.val().grad(g).expect("grad");
    for p in [&m.dt_bias, &m.a_log, &m.d, &m.norm.weight] {
        let got = g1(p, &chunked);
        assert!(got.clone().abs().sum().into_scalar().to_f64_lossy() > 0.0);
        assert_close(got, g1(p, &stepped), MAMBA2_GRAD);
    }
    for p in [&m.in_proj.weight, &m.out_proj.weight] {
        assert_close(
            p.val().grad(&chunked).unwrap(),
            p.val().grad(&stepped).unwrap(),
            MAMBA2_GRAD,
        );
    }
    let cw = &m.conv1d.weight;
    assert_close(
        cw.val().grad(&chunked).unwrap(),
        cw.val().grad(&stepped).unwrap(),
        MAMBA2_GRAD,
    );
}

trait ToF64 {
    fn to_f64_lossy(self) -> f64;
}
impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64_lossy(self) -> f64 {
        self.elem::<f64>()
    }
}

autodiff_backend_tests!(gradients_match_step_loop);

fn expect_err(config: Mamba2Config, field: &str) {
    let err = config
        .init::<vidgen_testing::Flex>(&Default::default())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("`{field}`")), "{field}: {text}");
}

#[test]
fn invalid_configs_name_the_field() {
    let ok = || tiny(1, 4);
    expect_err(ok().with_d_state(0), "d_state");
    expect_err(Mamba2Config::new(0), "d_model");
    expect_err(ok().with_d_conv(0), "d_conv");
    expect_err(ok().with_expand(0), "expand");
    expect_err(ok().with_head_dim(0), "head_dim");
    expect_err(ok().with_chunk_size(0), "chunk_size");
    expect_err(ok().with_n_groups(0), "n_groups");
    expect_err(ok().with_head_dim(5), "d_inner"); // 16 % 5
    expect_err(ok().with_n_groups(3), "n_heads"); // 4 heads % 3
    expect_err(ok().with_dt_min(0.0), "dt_min");
    expect_err(ok().with_dt_max(1e-4), "dt_max");
    expect_err(ok().with_dt_init_floor(-1.0), "dt_init_floor");
    expect_err(ok().with_dt_limit_min(-0.5), "dt_limit_min");
    expect_err(ok().with_dt_limit_max(Some(0.0)), "dt_limit_max");
    expect_err(ok().with_a_init_range((0.0, 16.0)), "a_init_range.0");
    expect_err(ok().with_a_init_range((4.0, 2.0)), "a_init_range.1");
    expect_err(ok().with_eps(0.0), "eps");
    let e = ok().with_head_dim(5).validate().unwrap_err();
    assert_eq!(
        e,
        SsmError::Config(ConfigError::NotDivisible {
            field: "d_inner",
            value: 16,
            by: 5,
            by_field: Some("head_dim")
        })
    );
    assert!(
        BiMamba2Config::new(ok().with_d_state(0))
            .init::<vidgen_testing::Flex>(&Default::default())
            .is_err()
    );
}

#[test]
fn init_follows_mamba_ssm() {
    let m = Mamba2Config::new(32)
        .with_head_dim(8)
        .init::<vidgen_testing::Flex>(&Default::default())
        .unwrap();
    // dt = softplus(dt_bias) within [dt_min, dt_max]; A = exp(A_log) within A_init_range; D = 1
    for b in m.dt_bias.val().into_data().iter::<f64>() {
        let dt = b.exp().ln_1p();
        assert!((0.001 - 1e-6..=0.1 + 1e-6).contains(&dt), "dt = {dt}");
    }
    for a in m.a_log.val().into_data().iter::<f64>() {
        assert!(
            (1.0 - 1e-5..=16.0 + 1e-4).contains(&a.exp()),
            "A = {}",
            a.exp()
        );
    }
    assert!(m.d.val().into_data().iter::<f32>().all(|d| d == 1.0));
    assert_eq!(m.d_state, 128);
    assert_eq!(m.n_heads(), 8);
}
