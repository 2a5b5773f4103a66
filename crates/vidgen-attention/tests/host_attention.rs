//! The fused host kernel (`flash_attention_host`) against the naive reference
//! (`attention_reference`): odd lengths, blocks that do not divide them, `Dv ≠ Dh`, causal
//! masking with `Lq ≠ Lk`, key padding with a sample whose keys are all masked, and several
//! threads. Also the dispatch: `memory_safe_attention` on flex takes the host path and agrees.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, TensorData};
use vidgen_attention::blocked::{
    AttentionMask, AttentionPath, MemoryBudget, memory_safe_attention, memory_safe_path,
};
use vidgen_attention::full::{attention_reference, expand_key_padding, key_padding_mask};
use vidgen_attention::host::{
    HostLayout, HostOptions, HostShape, flash_attention_host, flash_attention_host_strided,
};
use vidgen_testing::{Flex, Tolerance, assert_close};

/// Same f32 math regrouped (online rescaling, polynomial exp): the 1e-4 bound.
const HOST_VS_REFERENCE: Tolerance = Tolerance::new("HOST_VS_REFERENCE", 1e-5, 1e-4);

/// Deterministic values in [-2, 2) from an LCG.
fn det(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) ^ 0x9e3779b97f4a7c15;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

struct Case {
    b: usize,
    h: usize,
    lq: usize,
    lk: usize,
    dh: usize,
    dv: usize,
    causal: bool,
    valid: Option<Vec<usize>>,
}

fn check(case: &Case, block_q: usize, block_k: usize, threads: usize) {
    let Case {
        b,
        h,
        lq,
        lk,
        dh,
        dv,
        causal,
        ..
    } = *case;
    let dev = Default::default();
    let (q, k, v) = (
        det(b * h * lq * dh, 1),
        det(b * h * lk * dh, 2),
        det(b * h * lk * dv, 3),
    );
    let tensor = |data: &[f32], shape: [usize; 4]| {
        Tensor::<Flex, 4>::from_data(TensorData::new(data.to_vec(), shape), &dev)
    };
    let pad = case
        .valid
        .as_ref()
        .map(|valid| key_padding_mask::<Flex>(valid, lk, &dev));
    let expected = attention_reference(
        tensor(&q, [b, h, lq, dh]),
        tensor(&k, [b, h, lk, dh]),
        tensor(&v, [b, h, lk, dv]),
        pad.clone().map(|m| expand_key_padding(m, [b, h, lq, lk])),
        causal,
        Some(0.3),
    );
    let pad_host: Option<Vec<bool>> = pad.map(|m| m.into_data().iter::<bool>().collect());
    let mut out = vec![f32::NAN; b * h * lq * dv];
    let options = HostOptions {
        scale: 0.3,
        causal_offset: causal.then_some(lk as i64 - lq as i64),
        key_padding: pad_host.as_deref().map(|m| (m, h)),
        block_q,
        block_k,
        threads,
    };
    let shape = HostShape {
        batch_heads: b * h,
        len_q: lq,
        len_k: lk,
        head_dim: dh,
        value_dim: dv,
    };
    flash_attention_host(&q, &k, &v, &mut out, shape, &options);
    assert_close(tensor(&out, [b, h, lq, dv]), expected, HOST_VS_REFERENCE);
}

const BLOCKS: [(usize, usize); 4] = [(64, 256), (4, 3), (5, 7), (1, 1)];

#[test]
fn host_kernel_matches_reference_unmasked() {
    for (lq, lk, dh, dv) in [(13, 13, 8, 9), (7, 29, 4, 4), (33, 5, 16, 3)] {
        let case = Case {
            b: 2,
            h: 3,
            lq,
            lk,
            dh,
            dv,
            causal: false,
            valid: None,
        };
        for (bq, bk) in BLOCKS {
            for threads in [1, 2, 3] {
                check(&case, bq, bk, threads);
            }
        }
    }
}

#[test]
fn host_kernel_matches_reference_causal_and_padded() {
    // Lq > Lk with causal: the first Lq − Lk rows see no key and must be zero.
    for (lq, lk, causal, valid) in [
        (11, 11, true, None),
        (9, 17, true, None),
        (17, 9, true, Some(vec![9, 4])),
        (12, 19, false, Some(vec![19, 0])),
        (8, 21, true, Some(vec![5, 21])),
    ] {
        let case = Case {
            b: 2,
            h: 2,
            lq,
            lk,
            dh: 8,
            dv: 5,
            causal,
            valid,
        };
        for (bq, bk) in BLOCKS {
            for threads in [1, 2] {
                check(&case, bq, bk, threads);
            }
        }
    }
}

/// Tokens at 1 000-scale logits: the online rescaling must not overflow.
#[test]
fn host_kernel_is_stable_for_large_logits() {
    let (lq, lk, d) = (6, 40, 4);
    let q: Vec<f32> = det(lq * d, 4).iter().map(|x| x * 30.0).collect();
    let k: Vec<f32> = det(lk * d, 5).iter().map(|x| x * 30.0).collect();
    let v = det(lk * d, 6);
    let dev = Default::default();
    let t = |data: &[f32], l: usize| {
        Tensor::<Flex, 4>::from_data(TensorData::new(data.to_vec(), [1, 1, l, d]), &dev)
    };
    let expected = attention_reference(t(&q, lq), t(&k, lk), t(&v, lk), None, false, Some(1.0));
    let mut out = vec![0.0; lq * d];
    let options = HostOptions {
        block_q: 2,
        block_k: 7,
        ..HostOptions::default()
    };
    let shape = HostShape {
        batch_heads: 1,
        len_q: lq,
        len_k: lk,
        head_dim: d,
        value_dim: d,
    };
    flash_attention_host(&q, &k, &v, &mut out, shape, &options);
    assert!(out.iter().all(|x| x.is_finite()));
    assert_close(t(&out, lq), expected, HOST_VS_REFERENCE);
}

/// `memory_safe_attention` on flex (outside autodiff) goes through the host kernel, for
/// unmasked, causal and key-padded inputs, with the automatic thread count: the planned path is
/// `Host`, the output is bit-identical to `flash_attention_host` on the same host data (the
/// blocked and fused paths round differently), and it agrees with the reference.
#[test]
fn dispatch_on_flex_uses_the_host_kernel_and_agrees() {
    let dev = Default::default();
    let (b, h, lq, lk, d) = (2, 4, 70, 300, 8);
    let t = |seed, l| {
        Tensor::<Flex, 4>::from_data(
            TensorData::new(det(b * h * l * d, seed), [b, h, l, d]),
            &dev,
        )
    };
    let (q, k, v) = (t(7, lq), t(8, lk), t(9, lk));
    let pad = key_padding_mask::<Flex>(&[300, 123], lk, &dev);
    for causal in [false, true] {
        for padded in [false, true] {
            let mask = padded.then(|| AttentionMask::KeyPadding(pad.clone()));
            let full = padded.then(|| expand_key_padding(pad.clone(), [b, h, lq, lk]));
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            };
            let budget = MemoryBudget::default();
            let path = memory_safe_path(&q, &k, mask.as_ref(), false, &options, &budget);
            assert_eq!(
                path,
                AttentionPath::Host,
                "causal {causal}, padded {padded}"
            );
            let out = memory_safe_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                mask,
                None,
                options,
                &budget,
            );
            let host = |t: &Tensor<Flex, 4>| t.to_data().into_vec::<f32>().unwrap();
            let pad_host: Option<Vec<bool>> =
                padded.then(|| pad.to_data().iter::<bool>().collect());
            let mut kernel = vec![f32::NAN; b * h * lq * d];
            let host_options = HostOptions {
                scale: (1.0 / (d as f64).sqrt()) as f32,
                causal_offset: causal.then_some(lk as i64 - lq as i64),
                key_padding: pad_host.as_deref().map(|m| (m, h)),
                ..HostOptions::default()
            };
            let shape = HostShape {
                batch_heads: b * h,
                len_q: lq,
                len_k: lk,
                head_dim: d,
                value_dim: d,
            };
            flash_attention_host(
                &host(&q),
                &host(&k),
                &host(&v),
                &mut kernel,
                shape,
                &host_options,
            );
            assert_eq!(host(&out), kernel, "causal {causal}, padded {padded}");
            let expected = attention_reference(q.clone(), k.clone(), v.clone(), full, causal, None);
            assert_close(out, expected, HOST_VS_REFERENCE);
        }
    }
}

/// The strided kernel reads operands where they lie: `q` inside a wider `[B, Lq, H, 2·Dh]`
/// buffer (a slice of its last axis, heads moved forward), `k` shared by every head (head stride
/// 0, as an expanded tensor), `v` as `[B, Lk, H, Dv]` with its heads moved forward; the output in
/// either order equals the kernel on contiguous copies.
#[test]
fn strided_kernel_reads_views_in_place() {
    let (b, h, lq, lk, dh, dv) = (2, 3, 37, 53, 8, 5);
    let wide = det(b * lq * h * 2 * dh, 11);
    let k_shared = det(b * lk * dh, 12);
    let v_rows = det(b * lk * h * dv, 13);
    // Contiguous [B, H, L, D] copies of the same operands.
    let gather = |data: &[f32], len: usize, width: usize, strides: [usize; 3]| -> Vec<f32> {
        let mut out = Vec::with_capacity(b * h * len * width);
        for g in 0..b * h {
            for i in 0..len {
                let start = (g / h) * strides[0] + (g % h) * strides[1] + i * strides[2];
                out.extend_from_slice(&data[start..start + width]);
            }
        }
        out
    };
    let layout = HostLayout {
        heads: h,
        q: [lq * h * 2 * dh, 2 * dh, h * 2 * dh],
        k: [lk * dh, 0, dh],
        v: [lk * h * dv, dv, h * dv],
        out_rows_first: false,
    };
    let q = gather(&wide, lq, dh, layout.q);
    let k = gather(&k_shared, lk, dh, layout.k);
    let v = gather(&v_rows, lk, dv, layout.v);
    let shape = HostShape {
        batch_heads: b * h,
        len_q: lq,
        len_k: lk,
        head_dim: dh,
        value_dim: dv,
    };
    let mask: Vec<bool> = (0..b * lk).map(|i| i % lk >= 40 && i >= lk).collect();
    let options = HostOptions {
        scale: 0.3,
        causal_offset: Some(lk as i64 - lq as i64),
        key_padding: Some((&mask, h)),
        block_q: 16,
        block_k: 32,
        threads: 2,
    };
    let mut expected = vec![f32::NAN; b * h * lq * dv];
    flash_attention_host(&q, &k, &v, &mut expected, shape, &options);
    for rows_first in [false, true] {
        let layout = HostLayout {
            out_rows_first: rows_first,
            ..layout
        };
        let mut out = vec![f32::NAN; b * h * lq * dv];
        flash_attention_host_strided(
            &wide, &k_shared, &v_rows, &mut out, shape, &layout, &options,
        );
        let out = if rows_first {
            gather(&out, lq, dv, layout.out_strides(shape))
        } else {
            out
        };
        let worst = out
            .iter()
            .zip(&expected)
            .map(|(a, e)| (a - e).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "rows first {rows_first}: max |Δ| {worst}");
    }
}

/// On flex, the dispatch runs the host kernel on permuted views (`[B, L, H, D]` tensors with
/// their heads moved forward, as attention blocks make them) without copying them: same output
/// as on contiguous inputs, and the output keeps `q`'s axis order, so moving the heads back is
/// free (`swap_dims(1, 2)` of it is contiguous).
#[test]
fn dispatch_on_flex_reads_permuted_views() {
    let dev = Default::default();
    let (b, h, lq, lk, d) = (2, 4, 70, 90, 8);
    let rows = |seed, l| {
        Tensor::<Flex, 4>::from_data(
            TensorData::new(det(b * l * h * d, seed), [b, l, h, d]),
            &dev,
        )
        .swap_dims(1, 2)
    };
    let (q, k, v) = (rows(21, lq), rows(22, lk), rows(23, lk));
    let contiguous = |t: &Tensor<Flex, 4>| Tensor::<Flex, 4>::from_data(t.to_data(), &dev);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let budget = MemoryBudget::default();
    let pad = key_padding_mask::<Flex>(&[90, 31], lk, &dev);
    let run = |q: Tensor<Flex, 4>, k: Tensor<Flex, 4>, v: Tensor<Flex, 4>| {
        let mask = Some(AttentionMask::KeyPadding(pad.clone()));
        memory_safe_attention(q, k, v, mask, None, options, &budget)
    };
    let strided = run(q.clone(), k.clone(), v.clone());
    let dense = run(contiguous(&q), contiguous(&k), contiguous(&v));
    assert_close(
        strided.clone(),
        dense,
        Tolerance::new("STRIDED_VS_DENSE", 1e-6, 1e-6),
    );
    let full = expand_key_padding(pad.clone(), [b, h, lq, lk]);
    let expected = attention_reference(q, k, v, Some(full), true, None);
    assert_close(strided.clone(), expected.clone(), HOST_VS_REFERENCE);
    // Heads moved back and merged, as the attention blocks do next.
    let merged = strided.swap_dims(1, 2).reshape([b, lq, h * d]);
    let merged_expected = expected.swap_dims(1, 2).reshape([b, lq, h * d]);
    assert_close(merged, merged_expected, HOST_VS_REFERENCE);
}
