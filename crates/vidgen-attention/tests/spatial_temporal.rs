//! STDiT spatial / temporal attention: layout helpers invert each other exactly and move the
//! right tokens; golden parity with the spatial and temporal `Attention` of Open-Sora v1.2.0's
//! `STDiT3Block` (temporal RoPE from rotary-embedding-torch; `golden/gen_attention_full.py`);
//! fused vs reference on odd grids; T = 1 reduces to spatial attention; config and grid errors.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use vidgen_attention::AttentionError;
use vidgen_attention::ConfigError;
use vidgen_attention::full::MultiHeadAttention;
use vidgen_attention::spatial_temporal::*;
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, det, golden};

/// Fused kernel vs reference: same f32 math, different summation order.
const FUSED_VS_REFERENCE: Tolerance = Tolerance::new("FUSED_VS_REFERENCE", 1e-5, 1e-4);
/// Attention block in f32 (projections, RMSNorm, RoPE, attention, proj) against upstream run in
/// f64 (its RMSNorm and softmax in f32). Measured on Flex: max abs error 1.2e-7 (spatial,
/// temporal), 4.8e-7 (residual pair, values up to a few units): at most 0.13 of this allowance.
const ATTENTION_BLOCK: Tolerance = Tolerance::new("ATTENTION_BLOCK", 1e-6, 1e-5);

fn layout_helpers_invert_and_index_correctly<B: Backend>(device: &B::Device) {
    let (b, t, s, c) = (2, 3, 5, 2);
    // x[b, t·S + s, ch] = 1000·b + 100·t + 10·s + ch
    let data: Vec<f32> = (0..b)
        .flat_map(|bi| {
            (0..t).flat_map(move |ti| {
                (0..s).flat_map(move |si| {
                    (0..c).map(move |ch| (1000 * bi + 100 * ti + 10 * si + ch) as f32)
                })
            })
        })
        .collect();
    let x = Tensor::<B, 3>::from_data(TensorData::new(data, [b, t * s, c]), device);
    let sp = to_spatial_batch(x.clone(), t, s).unwrap();
    let tp = to_temporal_batch(x.clone(), t, s).unwrap();
    assert_eq!(sp.dims(), [b * t, s, c]);
    assert_eq!(tp.dims(), [b * s, t, c]);
    let sp_v: Vec<f32> = sp.clone().into_data().to_vec().unwrap();
    let tp_v: Vec<f32> = tp.clone().into_data().to_vec().unwrap();
    for bi in 0..b {
        for ti in 0..t {
            for si in 0..s {
                let want = (1000 * bi + 100 * ti + 10 * si) as f32;
                assert_eq!(
                    sp_v[((bi * t + ti) * s + si) * c],
                    want,
                    "spatial row b·T + t"
                );
                assert_eq!(
                    tp_v[((bi * s + si) * t + ti) * c],
                    want,
                    "temporal row b·S + s"
                );
            }
        }
    }
    assert_close(from_spatial_batch(sp, t), x.clone(), Tolerance::EXACT);
    assert_close(from_temporal_batch(tp, s), x, Tolerance::EXACT);
}

fn load_self<B: Backend>(
    g: &Golden,
    attn: &mut MultiHeadAttention<B>,
    prefix: &str,
    device: &B::Device,
) {
    g.load_linear(attn.qkv.as_mut().unwrap(), &format!("{prefix}.qkv"), device);
    g.load_linear(&mut attn.proj, &format!("{prefix}.proj"), device);
    attn.q_norm.as_mut().unwrap().gamma = g.param(&format!("{prefix}.q_norm.weight"), device);
    attn.k_norm.as_mut().unwrap().gamma = g.param(&format!("{prefix}.k_norm.weight"), device);
}

fn spatial_temporal_match_open_sora<B: Backend>(device: &B::Device) {
    let g = golden("attn_full_st.safetensors");
    let meta = |k: &str| g.meta_f64(k) as usize;
    let (t, s) = (meta("frames"), meta("spatial"));
    let cfg = SpatialTemporalConfig::new(meta("d_model"), meta("n_heads"))
        .with_qk_norm_eps(g.meta_f64("qk_norm_eps"))
        .with_rope_theta(g.meta_f64("rope_theta"));
    let mut st = cfg.init::<B>(device).unwrap();
    load_self(&g, &mut st.spatial.attn, "spatial", device);
    load_self(&g, &mut st.temporal.attn, "temporal", device);
    let x: Tensor<B, 3> = g.tensor("x", device);
    let out = st.spatial.forward(x.clone(), t, s).unwrap();
    assert_close(out, g.tensor("spatial_out", device), ATTENTION_BLOCK);
    let out = st.temporal.forward(x.clone(), t, s).unwrap();
    assert_close(out, g.tensor("temporal_out", device), ATTENTION_BLOCK);
    let out = st.forward(x.clone(), t, s).unwrap();
    assert_close(out, g.tensor("pair_out", device), ATTENTION_BLOCK);
    let out = st.forward_reference(x, t, s).unwrap();
    assert_close(out, g.tensor("pair_out", device), ATTENTION_BLOCK);
}

fn fused_matches_reference_on_odd_grids<B: Backend>(device: &B::Device) {
    let st = SpatialTemporalConfig::new(12, 3)
        .with_zero_init_temporal(false)
        .init::<B>(device)
        .unwrap();
    for (b, t, s) in [(1, 5, 7), (2, 3, 1), (3, 1, 9)] {
        let x = det::<B, 3>([b, t * s, 12], (t * s) as u64, device);
        let fused = st.forward(x.clone(), t, s).unwrap();
        assert_close(
            fused,
            st.forward_reference(x, t, s).unwrap(),
            FUSED_VS_REFERENCE,
        );
    }
}

fn single_frame_is_spatial_attention_alone<B: Backend>(device: &B::Device) {
    let (b, s, d) = (2, 7, 8);
    let cfg = SpatialTemporalConfig::new(d, 2).with_zero_init_temporal(false);
    let st = cfg.init::<B>(device).unwrap();
    let x = det::<B, 3>([b, s, d], 31, device);
    // T = 1: the spatial layout is the identity, so spatial attention is plain attention on [B, S, C].
    let spatial = st.spatial.forward(x.clone(), 1, s).unwrap();
    assert_close(
        spatial.clone(),
        st.spatial.attn.forward(x.clone()),
        Tolerance::EXACT,
    );
    // Temporal attention over one frame: softmax over one key is 1 and RoPE at position 0 is the
    // identity, so each token maps to proj(v).
    let qkv = st.temporal.attn.qkv.as_ref().unwrap().forward(x.clone());
    let v_only = st.temporal.attn.proj.forward(qkv.narrow(2, 2 * d, d));
    let temporal = st.temporal.forward(x.clone(), 1, s).unwrap();
    assert_close(temporal, v_only, FUSED_VS_REFERENCE);
    // With Open-Sora's zero-initialised temporal proj, the pair is x + spatial(x).
    let st0 = cfg.with_zero_init_temporal(true).init::<B>(device).unwrap();
    let pair = st0.forward(x.clone(), 1, s).unwrap();
    let alone = x.clone() + st0.spatial.forward(x, 1, s).unwrap();
    assert_close(pair, alone, Tolerance::EXACT);
}

fn grid_and_config_errors_name_the_field<B: Backend>(device: &B::Device) {
    let x = det::<B, 3>([1, 12, 8], 1, device);
    assert_eq!(
        to_spatial_batch(x.clone(), 5, 2).unwrap_err(),
        AttentionError::Config(ConfigError::ShapeMismatch {
            what: "token count N = frames·spatial",
            expected: 10,
            got: 12
        })
    );
    assert_eq!(
        to_temporal_batch(x.clone(), 0, 2).unwrap_err(),
        AttentionError::Config(ConfigError::Zero { field: "frames" })
    );
    assert_eq!(
        to_temporal_batch(x.clone(), 3, 0).unwrap_err(),
        AttentionError::Config(ConfigError::Zero { field: "spatial" })
    );
    let st = SpatialTemporalConfig::new(8, 2)
        .with_max_frames(4)
        .init::<B>(device)
        .unwrap();
    assert!(st.forward(x.clone(), 4, 3).is_ok());
    let long = det::<B, 3>([1, 12, 8], 2, device);
    assert!(matches!(
        st.temporal.forward(long, 6, 2).unwrap_err(),
        AttentionError::Config(ConfigError::OutOfDomain {
            field: "frames",
            ..
        })
    ));
    let err = |cfg: SpatialTemporalConfig| cfg.init::<B>(device).unwrap_err();
    assert!(matches!(
        err(SpatialTemporalConfig::new(12, 5)),
        AttentionError::Config(ConfigError::NotDivisible {
            field: "d_model",
            value: 12,
            by: 5,
            ..
        })
    ));
    assert_eq!(
        err(SpatialTemporalConfig::new(12, 0)),
        AttentionError::Config(ConfigError::Zero { field: "n_heads" })
    );
    assert!(matches!(
        err(SpatialTemporalConfig::new(12, 4)),
        AttentionError::Config(ConfigError::Unsupported {
            field: "d_model",
            ..
        })
    ));
    assert!(
        SpatialTemporalConfig::new(12, 4)
            .with_temporal_rope(false)
            .init::<B>(device)
            .is_ok()
    );
    assert_eq!(
        err(SpatialTemporalConfig::new(8, 2).with_max_frames(0)),
        AttentionError::Config(ConfigError::Zero {
            field: "max_frames"
        })
    );
    assert!(matches!(
        err(SpatialTemporalConfig::new(8, 2).with_rope_theta(-1.0)),
        AttentionError::Config(ConfigError::OutOfDomain {
            field: "rope_theta",
            ..
        })
    ));
}

backend_tests!(
    layout_helpers_invert_and_index_correctly,
    spatial_temporal_match_open_sora,
    fused_matches_reference_on_odd_grids,
    single_frame_is_spatial_attention_alone,
    grid_and_config_errors_name_the_field,
);
