//! Full multi-head attention: the fused path (`burn::tensor::module::attention`) against the
//! naive reference on odd lengths with key-padding, causal and cross-attention masks; golden
//! parity with Open-Sora v1.2.0's own `Attention` / `MultiHeadCrossAttention` (`blocks.py`, with
//! rotary-embedding-torch's RoPE; `golden/gen_attention_full.py`), where the causal case, which
//! upstream lacks, is torch SDPA with `is_causal` on upstream's q, k, v and the key-padding case
//! is upstream's packed block-diagonal cross-attention; config errors.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Tensor};
use vidgen_attention::AttentionError;
use vidgen_attention::full::*;
use vidgen_attention::{ConfigError, Kernel, WithKernel};
use vidgen_nn::{Rope1dConfig, RopeLayout, RopeTables};
use vidgen_testing::{
    Golden, Tolerance, assert_close, autodiff_backend_tests, backend_tests, det, flags, golden,
};

/// Fused kernel vs reference: the same f32 math in a different order (Flex's kernel fuses the
/// scale, mask and an online softmax), so only rounding differs.
const FUSED_VS_REFERENCE: Tolerance = Tolerance::new("FUSED_VS_REFERENCE", 1e-5, 1e-4);
/// Whole attention block (projections, RMSNorm, RoPE, attention, proj) in f32 against upstream
/// run in f64 (its RMSNorm and softmax in f32). Measured on Flex: max abs error 1.5e-7 (self,
/// causal), 6e-8 (cross): at most 0.08 of this allowance.
const ATTENTION_BLOCK: Tolerance = Tolerance::new("ATTENTION_BLOCK", 1e-6, 1e-5);

fn no_nan<B: Backend, const D: usize>(x: Tensor<B, D>) {
    let v: Vec<f32> = x.into_data().to_vec().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "non-finite value in {v:?}");
}

/// `(lq, lk, lengths)`: odd sizes, Lq ≠ Lk both ways, and a sample with no valid key.
const CASES: [(usize, usize, [usize; 3]); 4] = [
    (7, 7, [7, 3, 1]),
    (5, 9, [9, 4, 0]),
    (11, 3, [3, 2, 1]),
    (1, 13, [13, 7, 5]),
];

fn fused_matches_reference_with_masks<B: Backend>(device: &B::Device) {
    let (b, h, dh) = (3, 2, 6);
    for (i, &(lq, lk, lengths)) in CASES.iter().enumerate() {
        let seed = 10 * i as u64;
        let q = det::<B, 4>([b, h, lq, dh], seed, device);
        let k = det::<B, 4>([b, h, lk, dh], seed + 1, device);
        let v = det::<B, 4>([b, h, lk, 5], seed + 2, device);
        let pad = expand_key_padding(key_padding_mask::<B>(&lengths, lk, device), [b, h, lq, lk]);
        for (mask, causal) in [
            (None, false),
            (None, true),
            (Some(pad.clone()), false),
            (Some(pad), true),
        ] {
            let scale = if causal { None } else { Some(0.3) };
            let fused = scaled_dot_product_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                mask.clone(),
                causal,
                scale,
            );
            let reference =
                attention_reference(q.clone(), k.clone(), v.clone(), mask, causal, scale);
            no_nan(fused.clone());
            assert_close(fused, reference, FUSED_VS_REFERENCE);
        }
    }
}

/// Flex switches from its naive kernel to a KV-tiled online-softmax kernel (tiles of 64 keys)
/// when `Lq·Lk > 256·1024`; 520 × 517 crosses that, and 517 is not a multiple of 64.
fn tiled_kernel_matches_reference<B: Backend>(device: &B::Device) {
    let (b, h, lq, lk, dh) = (2, 1, 520, 517, 4);
    let q = det::<B, 4>([b, h, lq, dh], 41, device);
    let k = det::<B, 4>([b, h, lk, dh], 42, device);
    let v = det::<B, 4>([b, h, lk, 3], 43, device);
    let lengths = [517, 130];
    let mask = expand_key_padding(key_padding_mask::<B>(&lengths, lk, device), [b, h, lq, lk]);
    for causal in [false, true] {
        let fused = scaled_dot_product_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            Some(mask.clone()),
            causal,
            None,
        );
        let reference = attention_reference(
            q.clone(),
            k.clone(),
            v.clone(),
            Some(mask.clone()),
            causal,
            None,
        );
        no_nan(fused.clone());
        assert_close(fused, reference, FUSED_VS_REFERENCE);
    }
}

fn padded_keys_get_zero_weight<B: Backend>(device: &B::Device) {
    let (b, h, lq, lk, dh) = (3, 2, 4, 9, 4);
    let lengths = [9, 4, 0];
    let q = det::<B, 4>([b, h, lq, dh], 1, device);
    let k = det::<B, 4>([b, h, lk, dh], 2, device);
    let mask = expand_key_padding(key_padding_mask::<B>(&lengths, lk, device), [b, h, lq, lk]);
    let w: Vec<f32> = attention_weights_reference(q, k, Some(mask), false, None)
        .into_data()
        .to_vec()
        .unwrap();
    for (bi, &len) in lengths.iter().enumerate() {
        for row in 0..h * lq {
            let start = (bi * h * lq + row) * lk;
            let r = &w[start..start + lk];
            assert!(
                r[len..].iter().all(|&x| x == 0.0),
                "sample {bi}: padded weight in {r:?}"
            );
            let sum: f32 = r.iter().sum();
            // Rows with at least one valid key sum to one; a fully masked row is all zeros.
            let want = if len == 0 { 0.0 } else { 1.0 };
            assert!((sum - want).abs() < 1e-5, "sample {bi}: row sums to {sum}");
        }
    }
}

fn causal_mask_is_bottom_right_aligned<B: Backend>(device: &B::Device) {
    let m = flags(causal_mask::<B>(2, 4, device));
    assert_eq!(
        m,
        vec![false, false, false, true, false, false, false, false]
    );
    let m = flags(key_padding_mask::<B>(&[2, 0], 3, device));
    assert_eq!(m, vec![false, false, true, true, true, true]);
}

fn module_fused_matches_reference<B: Backend>(device: &B::Device) {
    let (b, lq, lk, d, h) = (3, 7, 5, 12, 3);
    let cfg = MultiHeadAttentionConfig::new(d, h).with_qk_norm(true);
    let attn = cfg.init::<B>(device).unwrap();
    let x = det::<B, 3>([b, lq, d], 3, device);
    let rope = Rope1dConfig::new(d / h, 16).init::<B>(device).unwrap();
    let pad = key_padding_mask::<B>(&[7, 2, 5], lq, device);
    let args = || {
        AttentionArgs::default()
            .with_rope(RopeRef::OneD(&rope))
            .with_key_padding(pad.clone())
            .with_causal(true)
    };
    let fused = attn.forward_with(x.clone(), None, args());
    assert_close(
        fused,
        attn.forward_reference(x.clone(), None, args()),
        FUSED_VS_REFERENCE,
    );

    let cross = cfg.with_d_context(Some(9)).init::<B>(device).unwrap();
    assert!(cross.is_cross() && !attn.is_cross());
    let c = det::<B, 3>([b, lk, 9], 4, device);
    let cpad = key_padding_mask::<B>(&[5, 1, 3], lk, device);
    let args = || AttentionArgs::default().with_key_padding(cpad.clone());
    let fused = cross.forward_with(x.clone(), Some(c.clone()), args());
    assert_eq!(fused.dims(), [b, lq, d]);
    assert_close(
        fused,
        cross.forward_reference(x.clone(), Some(c.clone()), args()),
        FUSED_VS_REFERENCE,
    );

    // Built with Kernel::Reference, every forward is the reference twin, bit for bit.
    assert_eq!(cross.kernel, Kernel::Fast);
    let naive = cross.clone().with_kernel(Kernel::Reference);
    let values = |y: Tensor<B, 3>| y.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    assert_eq!(
        values(naive.forward_with(x.clone(), Some(c.clone()), args())),
        values(cross.forward_reference(x.clone(), Some(c.clone()), args()))
    );
    assert_eq!(
        values(naive.forward_cross(x.clone(), c.clone())),
        values(cross.forward_reference(x, Some(c), AttentionArgs::default()))
    );
}

fn rope_1d_and_tables_agree<B: Backend>(device: &B::Device) {
    let (b, l, d, h) = (2, 5, 8, 2);
    let attn = MultiHeadAttentionConfig::new(d, h)
        .init::<B>(device)
        .unwrap();
    let x = det::<B, 3>([b, l, d], 5, device);
    let rope = Rope1dConfig::new(d / h, 8).init::<B>(device).unwrap();
    let positions: Vec<f64> = (0..l).map(|p| p as f64).collect();
    let tables =
        RopeTables::<B>::new_1d(&positions, d / h, 10000.0, RopeLayout::Interleaved, device)
            .unwrap();
    let a = attn.forward_with(
        x.clone(),
        None,
        AttentionArgs::default().with_rope(RopeRef::OneD(&rope)),
    );
    let t = attn.forward_with(
        x,
        None,
        AttentionArgs::default().with_rope(RopeRef::Tables(&tables)),
    );
    // Burn builds its table in f32, RopeTables in f64: angles differ by an f32 rounding.
    assert_close(a, t, Tolerance::new("ROPE_TABLE_ROUNDING", 1e-5, 1e-4));
}

fn fully_masked_sample_returns_proj_bias<B: Backend>(device: &B::Device) {
    let (lq, lk, d, h) = (3, 4, 8, 2);
    let attn = MultiHeadAttentionConfig::new(d, h)
        .with_d_context(Some(d))
        .init::<B>(device)
        .unwrap();
    let x = det::<B, 3>([2, lq, d], 6, device);
    let c = det::<B, 3>([2, lk, d], 7, device);
    let pad = key_padding_mask::<B>(&[4, 0], lk, device);
    let y = attn.forward_with(x, Some(c), AttentionArgs::default().with_key_padding(pad));
    no_nan(y.clone());
    let bias = attn.proj.bias.as_ref().unwrap().val();
    let empty: Tensor<B, 2> = y.narrow(0, 1, 1).reshape([lq, d]);
    assert_close(
        empty,
        bias.unsqueeze::<2>().expand([lq, d]),
        Tolerance::EXACT,
    );
}

fn load_self<B: Backend>(
    g: &Golden,
    attn: &mut MultiHeadAttention<B>,
    prefix: &str,
    device: &B::Device,
) {
    g.load_linear(attn.qkv.as_mut().unwrap(), &format!("{prefix}.qkv"), device);
    g.load_linear(&mut attn.proj, &format!("{prefix}.proj"), device);
    if let Some(n) = attn.q_norm.as_mut() {
        n.gamma = g.param(&format!("{prefix}.q_norm.weight"), device);
    }
    if let Some(n) = attn.k_norm.as_mut() {
        n.gamma = g.param(&format!("{prefix}.k_norm.weight"), device);
    }
}

fn self_attention_matches_torch_sdpa<B: Backend>(device: &B::Device) {
    let g = golden("attn_full_self.safetensors");
    let (d, h) = (
        g.meta_f64("d_model") as usize,
        g.meta_f64("n_heads") as usize,
    );
    let mut attn = MultiHeadAttentionConfig::new(d, h)
        .with_qk_norm(true)
        .with_qk_norm_eps(g.meta_f64("qk_norm_eps"))
        .init::<B>(device)
        .unwrap();
    load_self(&g, &mut attn, "attn", device);
    let x: Tensor<B, 3> = g.tensor("x", device);
    let rope = Rope1dConfig::new(d / h, 16)
        .with_theta(g.meta_f64("rope_theta"))
        .init::<B>(device)
        .unwrap();
    let args = |causal| {
        AttentionArgs::default()
            .with_rope(RopeRef::OneD(&rope))
            .with_causal(causal)
    };
    assert_close(
        attn.forward_with(x.clone(), None, args(false)),
        g.tensor("out", device),
        ATTENTION_BLOCK,
    );
    assert_close(
        attn.forward_with(x.clone(), None, args(true)),
        g.tensor("out_causal", device),
        ATTENTION_BLOCK,
    );
    assert_close(
        attn.forward_reference(x, None, args(true)),
        g.tensor("out_causal", device),
        ATTENTION_BLOCK,
    );
}

fn cross_attention_matches_torch_sdpa<B: Backend>(device: &B::Device) {
    let g = golden("attn_full_cross.safetensors");
    let (d, h) = (
        g.meta_f64("d_model") as usize,
        g.meta_f64("n_heads") as usize,
    );
    let mut attn = MultiHeadAttentionConfig::new(d, h)
        .with_d_context(Some(g.meta_f64("d_context") as usize))
        .init::<B>(device)
        .unwrap();
    g.load_linear(attn.q_linear.as_mut().unwrap(), "attn.q_linear", device);
    g.load_linear(attn.kv_linear.as_mut().unwrap(), "attn.kv_linear", device);
    g.load_linear(&mut attn.proj, "attn.proj", device);
    let x: Tensor<B, 3> = g.tensor("x", device);
    let c: Tensor<B, 3> = g.tensor("context", device);
    let lengths: Vec<usize> = g.values("lengths").iter().map(|&v| v as usize).collect();
    let pad: Tensor<B, 2, Bool> = key_padding_mask(&lengths, c.dims()[1], device);
    let args = || AttentionArgs::default().with_key_padding(pad.clone());
    let out = attn.forward_with(x.clone(), Some(c.clone()), args());
    assert_close(out, g.tensor("out", device), ATTENTION_BLOCK);
    let reference = attn.forward_reference(x.clone(), Some(c.clone()), args());
    assert_close(reference, g.tensor("out", device), ATTENTION_BLOCK);
    assert_close(
        attn.forward_cross(x, c),
        g.tensor("out_unmasked", device),
        ATTENTION_BLOCK,
    );
}

fn invalid_configs_name_the_field<B: Backend>(device: &B::Device) {
    let err = |cfg: MultiHeadAttentionConfig| cfg.init::<B>(device).unwrap_err();
    assert!(matches!(
        err(MultiHeadAttentionConfig::new(10, 4)),
        AttentionError::Config(ConfigError::NotDivisible {
            field: "d_model",
            value: 10,
            by: 4,
            by_field: Some("n_heads")
        })
    ));
    assert_eq!(
        err(MultiHeadAttentionConfig::new(8, 0)),
        AttentionError::Config(ConfigError::Zero { field: "n_heads" })
    );
    assert_eq!(
        err(MultiHeadAttentionConfig::new(0, 2)),
        AttentionError::Config(ConfigError::Zero { field: "d_model" })
    );
    assert_eq!(
        err(MultiHeadAttentionConfig::new(8, 2).with_d_context(Some(0))),
        AttentionError::Config(ConfigError::Zero { field: "d_context" })
    );
    assert!(matches!(
        err(MultiHeadAttentionConfig::new(8, 2).with_qk_norm_eps(0.0)),
        AttentionError::Config(ConfigError::OutOfDomain {
            field: "qk_norm_eps",
            ..
        })
    ));
    let msg = err(MultiHeadAttentionConfig::new(10, 4)).to_string();
    assert!(
        msg.contains("d_model") && msg.contains("10") && msg.contains("n_heads"),
        "{msg}"
    );
}

fn zero_init_out_gives_zero_output<B: Backend>(device: &B::Device) {
    let attn = MultiHeadAttentionConfig::new(8, 2)
        .with_zero_init_out(true)
        .init::<B>(device)
        .unwrap();
    let y = attn.forward(det::<B, 3>([1, 3, 8], 8, device));
    assert_close(y, Tensor::zeros([1, 3, 8], device), Tolerance::EXACT);
}

/// Under Autodiff the fused op is Burn's unfused fallback; its gradients must match the
/// reference's (masks and causal included).
fn fused_gradients_match_reference<B: AutodiffBackend>(device: &B::Device) {
    let (b, h, lq, lk, dh) = (2, 2, 5, 7, 4);
    let grads_of = |fused: bool| {
        let q = det::<B, 4>([b, h, lq, dh], 21, device).require_grad();
        let k = det::<B, 4>([b, h, lk, dh], 22, device).require_grad();
        let v = det::<B, 4>([b, h, lk, dh], 23, device).require_grad();
        let mask = expand_key_padding(key_padding_mask::<B>(&[6, 3], lk, device), [b, h, lq, lk]);
        let f = if fused {
            scaled_dot_product_attention::<B>
        } else {
            attention_reference::<B>
        };
        let y = f(q.clone(), k.clone(), v.clone(), Some(mask), true, None);
        let grads = (y.clone() * y).sum().backward();
        [q, k, v].map(|t| t.grad(&grads).unwrap())
    };
    for (a, r) in grads_of(true).into_iter().zip(grads_of(false)) {
        no_nan(a.clone());
        assert_close(a, r, FUSED_VS_REFERENCE);
    }
}

backend_tests!(
    fused_matches_reference_with_masks,
    tiled_kernel_matches_reference,
    padded_keys_get_zero_weight,
    causal_mask_is_bottom_right_aligned,
    module_fused_matches_reference,
    rope_1d_and_tables_agree,
    fully_masked_sample_returns_proj_bias,
    self_attention_matches_torch_sdpa,
    cross_attention_matches_torch_sdpa,
    invalid_configs_name_the_field,
    zero_init_out_gives_zero_output,
);
autodiff_backend_tests!(fused_gradients_match_reference);
