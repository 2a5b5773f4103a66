//! Window attention (Swin 2D, Video Swin 3D, TESA): golden parity with the upstream code run by
//! `golden/gen_attention_window.py` (microsoft/Swin-Transformer's `SwinTransformerBlock` for the
//! square 2D window, cross-checked against timm 0.6.13; Video-Swin-Transformer's
//! `SwinTransformerBlock3D.forward_part1`, `get_window_size` and `compute_mask` for 3D and for the
//! non-square 2D window, run as a one-frame 3D window), fused == dense reference twin, padding
//! never attended, shift masks against a brute-force rule, partition round trips, bias inflation,
//! config errors.

use burn::module::Param;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use vidgen_attention::AttentionError;
use vidgen_attention::ConfigError;
use vidgen_attention::window::*;
use vidgen_testing::{
    Tolerance, assert_close, autodiff_backend_tests, backend_tests, flags, golden,
};

/// Fused (Burn's `attention` op on windows) against the dense reference (explicit matmul and
/// softmax over the whole padded grid): the same f32 math summed in a different order, and the
/// dense softmax adds exact zeros for masked keys.
const FUSED_VS_REFERENCE: Tolerance = Tolerance::new("FUSED_VS_REFERENCE", 1e-5, 1e-4);
/// Our window attention against the PyTorch reference block (qkv, scores, bias, softmax, proj in
/// f32); Swin's additive −100 mask differs from our −∞ by under e^−100 relative. Measured on
/// flex: max abs error 1.2e-7 on values of O(1).
const SWIN_GOLDEN: Tolerance = Tolerance::new("SWIN_GOLDEN", 1e-6, 1e-5);

fn ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec::<i64>().unwrap()
}

fn randn<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// A layer with a bias table of unit scale, so the bias visibly moves the scores.
fn layer<B: Backend>(cfg: WindowAttentionConfig, device: &B::Device) -> WindowAttention<B> {
    let mut attn = cfg.init::<B>(device).unwrap();
    let dims = attn.relative_position_bias_table.dims();
    attn.relative_position_bias_table = Param::from_tensor(randn(dims, device));
    attn
}

fn swin2d_matches_reference<B: Backend>(device: &B::Device) {
    let g = golden("attn_window_swin2d.safetensors");
    for (key, ws, ss) in [("a", [4, 4], [2, 2]), ("b", [4, 3], [2, 1])] {
        let mut attn = WindowAttentionConfig::new_2d(8, 2, ws)
            .with_shift_2d(ss)
            .init::<B>(device)
            .unwrap();
        g.load_linear(&mut attn.qkv, &format!("{key}.qkv"), device);
        g.load_linear(&mut attn.proj, &format!("{key}.proj"), device);
        attn.relative_position_bias_table =
            g.param(&format!("{key}.relative_position_bias_table"), device);
        let index = g.values(&format!("{key}.relative_position_index"));
        let index: Vec<i64> = index.iter().map(|&v| v as i64).collect();
        assert_eq!(
            ints(attn.relative_position_index.clone()),
            index,
            "case {key}"
        );

        let x: Tensor<B, 4> = g.tensor(&format!("{key}.x"), device);
        let [_, h, w, _] = x.dims();
        let plan = attn.plan([1, h, w], device);
        let mask: Vec<bool> = g
            .values(&format!("{key}.attn_mask"))
            .iter()
            .map(|&v| v != 0.0)
            .collect();
        assert_eq!(
            flags(plan.mask.clone().unwrap()),
            mask,
            "shift mask, case {key}"
        );

        let shifted = roll_left(roll_left(x.clone(), 1, ss[0]), 2, ss[1]);
        let windows = window_partition_2d(shifted, ws);
        assert_close(
            windows,
            g.tensor(&format!("{key}.windows"), device),
            Tolerance::EXACT,
        );

        let expected: Tensor<B, 4> = g.tensor(&format!("{key}.out"), device);
        assert_close(attn.forward_2d(x.clone()), expected.clone(), SWIN_GOLDEN);
        let (reference, _) = attn.forward_reference(x.unsqueeze_dim(1));
        assert_close(reference.squeeze_dim(1), expected, SWIN_GOLDEN);
    }
}

fn swin3d_partition_and_mask_match_video_swin<B: Backend>(device: &B::Device) {
    let g = golden("attn_window_swin3d.safetensors");
    for (key, ws, ss) in [
        ("pad", [2, 4, 4], [1, 2, 2]),
        ("clamp", [4, 4, 4], [2, 2, 2]),
    ] {
        let x: Tensor<B, 5> = g.tensor(&format!("{key}.x"), device);
        let [_, t, h, w, _] = x.dims();
        let geo = WindowGeometry::new([t, h, w], ws, ss);
        let as_usize = |name: &str| -> Vec<usize> {
            g.values(&format!("{key}.{name}"))
                .iter()
                .map(|&v| v as usize)
                .collect()
        };
        assert_eq!(
            geo.window.to_vec(),
            as_usize("effective_window"),
            "case {key}"
        );
        assert_eq!(
            geo.shift.to_vec(),
            as_usize("effective_shift"),
            "case {key}"
        );
        assert_eq!(geo.padded.to_vec(), as_usize("padded"), "case {key}");

        let mut xs = x;
        for a in 0..3 {
            xs = roll_left(pad_axis(xs, a + 1, geo.padded[a]), a + 1, geo.shift[a]);
        }
        let windows = window_partition_3d(xs, geo.window);
        assert_close(
            windows,
            g.tensor(&format!("{key}.windows"), device),
            Tolerance::EXACT,
        );

        // Video Swin's mask is the region mask only (it attends to padding): compare it with
        // ours on real keys, and check ours additionally masks exactly the padded keys.
        let ref_mask = g.values(&format!("{key}.attn_mask"));
        let ours = geo.window_mask().unwrap();
        let pad = padded_keys(&geo);
        let n = geo.window_len();
        for (i, (&r, &o)) in ref_mask.iter().zip(&ours).enumerate() {
            let (win, q, k) = (i / (n * n), (i / n) % n, i % n);
            let (q_pad, k_pad) = (pad[win * n + q], pad[win * n + k]);
            assert_eq!(o, r != 0.0 || (k_pad && !q_pad), "case {key}, entry {i}");
        }
    }
}

/// Per window, per token: whether it is padding (after the shift), in window order.
fn padded_keys(geo: &WindowGeometry) -> Vec<bool> {
    let grid: [usize; 3] = std::array::from_fn(|a| geo.padded[a] / geo.window[a]);
    let mut out = vec![];
    for gt in 0..grid[0] {
        for gh in 0..grid[1] {
            for gw in 0..grid[2] {
                for t in 0..geo.window[0] {
                    for h in 0..geo.window[1] {
                        for w in 0..geo.window[2] {
                            let p = [
                                gt * geo.window[0] + t,
                                gh * geo.window[1] + h,
                                gw * geo.window[2] + w,
                            ];
                            out.push((0..3).any(|a| geo.is_padding(a, p[a])));
                        }
                    }
                }
            }
        }
    }
    out
}

fn swin3d_attention_matches_video_swin<B: Backend>(device: &B::Device) {
    let g = golden("attn_window_swin3d.safetensors");
    let mut attn = WindowAttentionConfig::new(8, 2, [2, 4, 4])
        .with_shift_size([1, 2, 2])
        .init::<B>(device)
        .unwrap();
    g.load_linear(&mut attn.qkv, "attn.qkv", device);
    g.load_linear(&mut attn.proj, "attn.proj", device);
    attn.relative_position_bias_table = g.param("attn.relative_position_bias_table", device);
    let index: Vec<i64> = g
        .values("attn.relative_position_index")
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(ints(attn.relative_position_index.clone()), index);
    let x: Tensor<B, 5> = g.tensor("attn.x", device);
    let expected: Tensor<B, 5> = g.tensor("attn.out", device);
    assert_close(attn.forward_3d(x.clone()), expected.clone(), SWIN_GOLDEN);
    assert_close(attn.forward_reference(x).0, expected, SWIN_GOLDEN);
}

/// (window, shift, input `[T, H, W]`) cases: divisible, padded, shifted, clamped, 2D and 3D.
const CASES: [([usize; 3], [usize; 3], [usize; 3]); 6] = [
    ([1, 4, 4], [0, 2, 2], [1, 8, 8]),
    ([1, 4, 3], [0, 2, 1], [1, 7, 5]),
    ([1, 3, 4], [0, 0, 0], [1, 5, 6]),
    ([2, 3, 2], [1, 1, 1], [5, 4, 3]),
    ([2, 2, 3], [0, 0, 0], [3, 3, 5]),
    ([4, 2, 2], [2, 1, 1], [3, 5, 3]),
];

fn fused_matches_reference<B: Backend>(device: &B::Device) {
    for (window, shift, [t, h, w]) in CASES {
        let attn = layer::<B>(
            WindowAttentionConfig::new(8, 2, window).with_shift_size(shift),
            device,
        );
        let x = randn::<B, 5>([2, t, h, w, 8], device);
        let (reference, _) = attn.forward_reference(x.clone());
        assert_close(attn.forward_3d(x), reference, FUSED_VS_REFERENCE);
    }
}

fn padded_tokens_get_no_weight<B: Backend>(device: &B::Device) {
    for (window, shift, [t, h, w]) in CASES {
        let attn = layer::<B>(
            WindowAttentionConfig::new(4, 2, window).with_shift_size(shift),
            device,
        );
        let (_, weights) = attn.forward_reference(randn::<B, 5>([1, t, h, w, 4], device));
        let geo = WindowGeometry::new([t, h, w], window, shift);
        let [tp, hp, wp] = geo.padded;
        let l = tp * hp * wp;
        let is_pad = |i: usize| i / (hp * wp) >= t || (i / wp) % hp >= h || i % wp >= w;
        let weights: Vec<f32> = weights.into_data().to_vec().unwrap();
        let mut n_pad_checked = 0;
        for head in 0..2 {
            for q in (0..l).filter(|&q| !is_pad(q)) {
                let row = &weights[(head * l + q) * l..(head * l + q + 1) * l];
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "row {q} sums to {sum}");
                for k in (0..l).filter(|&k| is_pad(k)) {
                    assert_eq!(row[k], 0.0, "real query {q} attends padded key {k}");
                    n_pad_checked += 1;
                }
            }
        }
        assert_eq!(n_pad_checked > 0, geo.padded != geo.input, "{geo:?}");
    }
}

/// Without shift, each window's real tokens form a box at the window's origin; attention with the
/// padding masked must equal attention over that box alone (no padding at all).
fn padding_masked_equals_unpadded_windows<B: Backend>(device: &B::Device) {
    for (window, [t, h, w]) in [([1, 4, 4], [1, 5, 7]), ([2, 3, 2], [3, 4, 5])] {
        let attn = layer::<B>(WindowAttentionConfig::new(4, 2, window), device);
        let x = randn::<B, 5>([2, t, h, w, 4], device);
        let y = attn.forward_3d(x.clone());
        let grid: [usize; 3] = std::array::from_fn(|a| [t, h, w][a].div_ceil(window[a]));
        for gt in 0..grid[0] {
            for gh in 0..grid[1] {
                for gw in 0..grid[2] {
                    let start = [gt * window[0], gh * window[1], gw * window[2]];
                    let size: [usize; 3] =
                        std::array::from_fn(|a| window[a].min([t, h, w][a] - start[a]));
                    let crop =
                        |z: Tensor<B, 5>| (0..3).fold(z, |z, a| z.narrow(a + 1, start[a], size[a]));
                    let box_windows = window_partition_3d(crop(x.clone()), size);
                    let index = relative_position_index(size, window);
                    let index =
                        Tensor::from_data(TensorData::new(index.clone(), [index.len()]), device);
                    let alone = attn.forward_windows(box_windows, index, None);
                    let alone = window_reverse_3d(alone, size, size);
                    assert_close(crop(y.clone()), alone, FUSED_VS_REFERENCE);
                }
            }
        }
    }
}

/// Brute force, independent of Swin's slice labelling: after `roll(−s)`, a token may attend to a
/// key iff both sit in the same window, on every axis both or neither wrapped around the seam
/// (came from original coordinate `< s`), and the key is real unless the query is padding.
fn shift_mask_matches_brute_force<B: Backend>(_device: &B::Device) {
    let cases = [
        ([1, 7, 10], [1, 4, 4], [0, 2, 2]),
        ([1, 9, 5], [1, 4, 3], [0, 3, 1]),
        ([5, 7, 6], [2, 4, 3], [1, 2, 1]),
        ([6, 4, 4], [4, 2, 2], [2, 1, 1]),
    ];
    for (input, window, shift) in cases {
        let geo = WindowGeometry::new(input, window, shift);
        let padded: [usize; 3] = std::array::from_fn(|a| input[a].div_ceil(window[a]) * window[a]);
        assert_eq!(geo.padded, padded);
        let n = window.iter().product::<usize>();
        let grid: [usize; 3] = std::array::from_fn(|a| padded[a] / window[a]);
        let n_win = grid.iter().product::<usize>();
        let mut expected = vec![false; n_win * n * n];
        let tokens = all_coords(padded);
        for ci in &tokens {
            for cj in &tokens {
                let pos = |c: &[usize; 3]| -> ([usize; 3], usize, [bool; 3], bool) {
                    let p: [usize; 3] =
                        std::array::from_fn(|a| (c[a] + padded[a] - shift[a]) % padded[a]);
                    let win: [usize; 3] = std::array::from_fn(|a| p[a] / window[a]);
                    let local = (p[0] % window[0] * window[1] + p[1] % window[1]) * window[2]
                        + p[2] % window[2];
                    let wrapped = std::array::from_fn(|a| c[a] < shift[a]);
                    (win, local, wrapped, (0..3).any(|a| c[a] >= input[a]))
                };
                let (wi, li, ri, pi) = pos(ci);
                let (wj, lj, rj, pj) = pos(cj);
                if wi != wj {
                    continue;
                }
                let w = (wi[0] * grid[1] + wi[1]) * grid[2] + wi[2];
                expected[(w * n + li) * n + lj] = ri != rj || (pj && !pi);
            }
        }
        assert_eq!(
            geo.window_mask().unwrap(),
            expected,
            "{input:?} {window:?} {shift:?}"
        );
    }
}

fn all_coords(size: [usize; 3]) -> Vec<[usize; 3]> {
    let mut out = vec![];
    for t in 0..size[0] {
        for h in 0..size[1] {
            for w in 0..size[2] {
                out.push([t, h, w]);
            }
        }
    }
    out
}

fn partition_reverse_is_identity<B: Backend>(device: &B::Device) {
    let x = randn::<B, 4>([2, 6, 9, 3], device);
    let windows = window_partition_2d(x.clone(), [3, 3]);
    assert_eq!(windows.dims(), [2 * 2 * 3, 9, 3]);
    assert_close(
        window_reverse_2d(windows, [3, 3], [6, 9]),
        x.clone(),
        Tolerance::EXACT,
    );
    let rolled = roll_right(roll_left(x.clone(), 2, 4), 2, 4);
    assert_close(rolled, x, Tolerance::EXACT);

    let v = randn::<B, 5>([2, 4, 6, 6, 3], device);
    let windows = window_partition_3d(v.clone(), [2, 3, 2]);
    assert_eq!(windows.dims(), [2 * 2 * 2 * 3, 12, 3]);
    assert_close(
        window_reverse_3d(windows, [2, 3, 2], [4, 6, 6]),
        v,
        Tolerance::EXACT,
    );
}

/// Video Swin's inflation: the 3D bias of a token pair is the 2D bias of their spatial offset,
/// whatever their temporal offset.
fn inflated_bias_repeats_2d_over_time<B: Backend>(device: &B::Device) {
    let table_2d = randn::<B, 2>([bias_table_len([1, 2, 3]), 2], device);
    let table_3d = inflate_bias_table_2d_to_3d(table_2d.clone(), 3);
    assert_eq!(table_3d.dims(), [bias_table_len([3, 2, 3]), 2]);
    let idx = |w: [usize; 3], d: &B::Device| {
        let i = relative_position_index(w, w);
        Tensor::<B, 1, Int>::from_data(TensorData::new(i.clone(), [i.len()]), d)
    };
    let bias_3d: Vec<f32> = gather_bias(table_3d, idx([3, 2, 3], device))
        .into_data()
        .to_vec()
        .unwrap();
    let bias_2d: Vec<f32> = gather_bias(table_2d, idx([1, 2, 3], device))
        .into_data()
        .to_vec()
        .unwrap();
    let (n3, n2) = (18, 6);
    for head in 0..2 {
        for i in 0..n3 {
            for j in 0..n3 {
                assert_eq!(
                    bias_3d[(head * n3 + i) * n3 + j],
                    bias_2d[(head * n2 + i % n2) * n2 + j % n2]
                );
            }
        }
    }
}

fn tesa_alternates_shift_and_runs_on_sequences<B: Backend>(device: &B::Device) {
    let cfg = TesaConfig::new(8, 2);
    assert_eq!(cfg.window_size, [8, 4, 4]);
    assert_eq!(cfg.shift_size(0), [0, 0, 0]);
    assert_eq!(cfg.shift_size(1), [4, 2, 2]);
    assert_eq!(
        cfg.init_layer::<B>(3, device).unwrap().shift_size,
        [4, 2, 2]
    );
    // A small TESA (window 4 frames × 2×2) on a grid that no window divides.
    let small = TesaConfig::new(8, 2).with_window_size([4, 2, 2]);
    let grid = [6, 3, 5];
    let mut cache = WindowPlanCache::new();
    for layer_index in 0..2 {
        let mut attn = small.init_layer::<B>(layer_index, device).unwrap();
        let dims = attn.relative_position_bias_table.dims();
        attn.relative_position_bias_table = Param::from_tensor(randn(dims, device));
        let x = randn::<B, 3>([2, 90, 8], device);
        let y = attn.forward_sequence(x.clone(), grid, &mut cache);
        let (reference, _) = attn.forward_reference(x.reshape([2, 6, 3, 5, 8]));
        assert_close(y, reference.reshape([2, 90, 8]), FUSED_VS_REFERENCE);
    }
    assert_eq!(cache.len(), 2, "one plan per (size, shift)");
    let attn = small.init_layer::<B>(1, device).unwrap();
    let x = randn::<B, 5>([1, 6, 3, 5, 8], device);
    let _ = attn.forward_3d_cached(x, &mut cache);
    assert_eq!(cache.len(), 2, "plan reused");
}

fn invalid_configs_name_the_field<B: Backend>(device: &B::Device) {
    let err = |cfg: WindowAttentionConfig| cfg.init::<B>(device).unwrap_err();
    assert_eq!(
        err(WindowAttentionConfig::new(0, 2, [1, 4, 4])),
        AttentionError::Config(ConfigError::Zero { field: "d_model" })
    );
    assert_eq!(
        err(WindowAttentionConfig::new(8, 0, [1, 4, 4])),
        AttentionError::Config(ConfigError::Zero { field: "n_heads" })
    );
    assert_eq!(
        err(WindowAttentionConfig::new(10, 4, [1, 4, 4])),
        AttentionError::Config(ConfigError::NotDivisible {
            field: "d_model",
            value: 10,
            by: 4,
            by_field: Some("n_heads")
        })
    );
    assert_eq!(
        err(WindowAttentionConfig::new_2d(8, 2, [4, 0])),
        AttentionError::Config(ConfigError::Zero {
            field: "window_size"
        })
    );
    let shift_err = err(WindowAttentionConfig::new_2d(8, 2, [4, 3]).with_shift_2d([2, 3]));
    assert!(
        matches!(shift_err, AttentionError::Config(ConfigError::OutOfDomain { field: "shift_size", value, .. }) if value == 3.0),
        "{shift_err:?}"
    );
    let scale_err = err(WindowAttentionConfig::new(8, 2, [1, 2, 2]).with_qk_scale(Some(0.0)));
    assert!(matches!(
        scale_err,
        AttentionError::Config(ConfigError::OutOfDomain {
            field: "qk_scale",
            ..
        })
    ));
    let tesa_err = TesaConfig::new(8, 2)
        .with_window_size([0, 4, 4])
        .init_layer::<B>(0, device)
        .unwrap_err();
    assert_eq!(
        tesa_err,
        AttentionError::Config(ConfigError::Zero {
            field: "window_size"
        })
    );
}

backend_tests!(
    swin2d_matches_reference,
    swin3d_partition_and_mask_match_video_swin,
    swin3d_attention_matches_video_swin,
    fused_matches_reference,
    padded_tokens_get_no_weight,
    padding_masked_equals_unpadded_windows,
    shift_mask_matches_brute_force,
    partition_reverse_is_identity,
    inflated_bias_repeats_2d_over_time,
    tesa_alternates_shift_and_runs_on_sequences,
    invalid_configs_name_the_field,
);

/// Training path: gradients of the bias table and the `qkv` weight through the fused forward
/// (Burn's attention under autodiff) equal those through the dense reference.
fn gradients_match_reference<B: AutodiffBackend>(device: &B::Device) {
    let attn = layer::<B>(
        WindowAttentionConfig::new(4, 2, [2, 2, 3]).with_shift_size([1, 1, 1]),
        device,
    );
    let x = randn::<B, 5>([1, 3, 3, 4, 4], device);
    let weight = randn::<B, 5>([1, 3, 3, 4, 4], device);
    let grads_of = |y: Tensor<B, 5>| {
        let grads = (y * weight.clone()).sum().backward();
        let table = attn.relative_position_bias_table.grad(&grads).unwrap();
        let qkv = attn.qkv.weight.grad(&grads).unwrap();
        (table, qkv)
    };
    let (table_fused, qkv_fused) = grads_of(attn.forward_3d(x.clone()));
    let (table_ref, qkv_ref) = grads_of(attn.forward_reference(x).0);
    assert_close(table_fused, table_ref, GRAD_FUSED_VS_REFERENCE);
    assert_close(qkv_fused, qkv_ref, GRAD_FUSED_VS_REFERENCE);
}

/// Backward through softmax and two matmuls, summed over windows in another order.
const GRAD_FUSED_VS_REFERENCE: Tolerance = Tolerance::new("GRAD_FUSED_VS_REFERENCE", 1e-5, 1e-4);

autodiff_backend_tests!(gradients_match_reference);
