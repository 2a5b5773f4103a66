//! The fused GPU attention kernel (`vidgen_attention::gpu`, features `cuda` / `wgpu`) against
//! its reference twin `attention_reference` (explicit `[B, H, Lq, Lk]` masks, one softmax):
//! head dimensions 64 and 128 and odd ones (40 with Dv 24), odd lengths that span several query
//! and key tiles, no mask / causal (both alignments) / key padding / both, fully masked rows
//! and samples, an explicit scale, small tiles, f16 and bf16 inputs (where the device has them)
//! with f32 accumulation, strided views, the dispatch, and 8192 tokens.
//!
//! Without a GPU these run on wgpu over Mesa's CPU Vulkan driver (`.ci/wgpu`): correctness,
//! not speed.
#![cfg(any(feature = "cuda", feature = "wgpu"))]

mod common;

use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor};
use vidgen_attention::blocked::*;
use vidgen_attention::full::*;
use vidgen_attention::gpu::*;
use vidgen_testing::{Tolerance, assert_close, det, gpu_backend_tests};

/// Fused kernel vs one-shot softmax in f32: the same math regrouped (online max/sum rescaling,
/// the scale folded into q), so only rounding differs.
const FLASH_VS_REFERENCE: Tolerance = Tolerance::new("FLASH_VS_REFERENCE", 1e-5, 1e-4);

fn opts(causal: bool, scale: Option<f64>) -> AttentionModuleOptions {
    AttentionModuleOptions {
        scale,
        softcap: None,
        is_causal: causal,
    }
}

/// `q: [B, H, Lq, D]`, `k: [B, H, Lk, D]`, `v: [B, H, Lk, Dv]`, values in [-2, 2).
fn qkv<B: Backend>(
    [b, h, lq, lk, d, dv]: [usize; 6],
    dev: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    (
        det([b, h, lq, d], 1, dev),
        det([b, h, lk, d], 2, dev),
        det([b, h, lk, dv], 3, dev),
    )
}

/// [`qkv`] cast to `dtype`, and the rounded values back in f32 (the reference's inputs).
#[allow(clippy::type_complexity)]
fn half_qkv<B: Backend>(
    dims: [usize; 6],
    dtype: DType,
    dev: &B::Device,
) -> (
    (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>),
    (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>),
) {
    let (q, k, v) = qkv::<B>(dims, dev);
    let (q, k, v) = (q.cast(dtype), k.cast(dtype), v.cast(dtype));
    let rounded = (
        q.clone().cast(DType::F32),
        k.clone().cast(DType::F32),
        v.clone().cast(DType::F32),
    );
    ((q, k, v), rounded)
}

/// Every structured mask case for batch 2: (key padding, causal). The padding leaves the first
/// sample 5 keys short of Lk and masks every key of the second (rows with no key at all).
fn mask_cases<B: Backend>(lk: usize, dev: &B::Device) -> Vec<(Option<Tensor<B, 2, Bool>>, bool)> {
    let pad = key_padding_mask::<B>(&[lk - 5, 0], lk, dev);
    vec![
        (None, false),
        (None, true),
        (Some(pad.clone()), false),
        (Some(pad), true),
    ]
}

/// The reference with the padding expanded to an explicit mask.
fn reference<B: Backend>(
    (q, k, v): (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>),
    pad: Option<Tensor<B, 2, Bool>>,
    causal: bool,
    scale: Option<f64>,
) -> Tensor<B, 4> {
    let [b, h, lq, _] = q.dims();
    let lk = k.dims()[2];
    let mask = pad.map(|m| expand_key_padding(m, [b, h, lq, lk]));
    attention_reference(q, k, v, mask, causal, scale)
}

/// Head dims 64, 128 and 40/24, query lengths above and below the key length (causal rows that
/// see no key when Lq > Lk), every mask case, default and explicit scale.
fn flash_matches_reference<B: Backend>(dev: &B::Device) {
    for dims in [
        [2, 3, 37, 53, 64, 64],
        [2, 2, 29, 29, 128, 128],
        [2, 2, 45, 19, 40, 24],
    ] {
        let inputs = qkv::<B>(dims, dev);
        for (pad, causal) in mask_cases::<B>(dims[3], dev) {
            for scale in [None, Some(0.3)] {
                let (q, k, v) = inputs.clone();
                let expected = reference(inputs.clone(), pad.clone(), causal, scale);
                let out = flash_attention_gpu(q, k, v, pad.clone(), opts(causal, scale));
                assert_eq!(out.dtype(), DType::F32);
                assert_close(out, expected, FLASH_VS_REFERENCE);
            }
        }
    }
}

/// Tiles from 2×8 to 16×32 on lengths that none of them divide, so every row and key tile
/// boundary case of the kernel runs (a last query tile with one row, a last key tile with one
/// key, causal tiles skipped).
fn flash_small_tiles<B: Backend>(dev: &B::Device) {
    let dims = [2, 2, 37, 41, 24, 20];
    let inputs = qkv::<B>(dims, dev);
    for (pad, causal) in mask_cases::<B>(dims[3], dev) {
        let expected = reference(inputs.clone(), pad.clone(), causal, None);
        for blocks in [(2, 8), (3, 16), (16, 32), (5, 40)] {
            let (q, k, v) = inputs.clone();
            let out =
                flash_attention_gpu_blocks(q, k, v, pad.clone(), opts(causal, None), Some(blocks));
            assert_close(out, expected.clone(), FLASH_VS_REFERENCE);
        }
    }
}

/// f16 and bf16 inputs: the output keeps the input dtype and equals the f32 reference on the
/// rounded inputs to the output's rounding (f16: 2⁻¹¹ relative, bf16: 2⁻⁸), because scores,
/// softmax and products accumulate in f32. A dtype the device lacks is reported and skipped
/// (lavapipe's wgpu has f16 but no bf16), and the dispatch then does not pick the kernel.
fn flash_half_precision<B: Backend>(dev: &B::Device) {
    let dims = [2, 2, 33, 47, 64, 64];
    let mut ran = 0;
    for (dtype, tol) in [
        (DType::F16, Tolerance::new("F16_OUTPUT", 2e-3, 2e-3)),
        (DType::BF16, Tolerance::new("BF16_OUTPUT", 1.5e-2, 1.5e-2)),
    ] {
        let ((q, k, v), rounded) = half_qkv::<B>(dims, dtype, dev);
        if !gpu_flash_supported::<B>(dtype, 64, 64, dev) {
            eprintln!("flash_half_precision: {dtype:?} is not supported on this device, skipped");
            assert_ne!(
                memory_safe_path(&q, &k, None, false, &opts(false, None), &Default::default()),
                AttentionPath::GpuFlash
            );
            continue;
        }
        ran += 1;
        let pad = key_padding_mask::<B>(&[40, 0], dims[3], dev);
        for (pad, causal) in [(None, false), (Some(pad), true)] {
            let expected = reference(rounded.clone(), pad.clone(), causal, None);
            let out = flash_attention_gpu(q.clone(), k.clone(), v.clone(), pad, opts(causal, None));
            assert_eq!(out.dtype(), dtype);
            assert_close(out.cast(DType::F32), expected, tol);
        }
    }
    assert!(ran > 0, "neither f16 nor bf16 is supported on this device");
}

/// q as a `[B, L, H, D]` tensor with its heads moved forward, k a slice of a wider tensor and v
/// a transposed one: the kernel reads them at their strides and gives the same output as for
/// contiguous copies.
fn flash_strided_views<B: Backend>(dev: &B::Device) {
    let [b, h, lq, lk, d] = [2, 3, 21, 26, 32];
    let q = det::<B, 4>([b, lq, h, d], 4, dev).swap_dims(1, 2);
    let k = det::<B, 4>([b, h, lk, d + 7], 5, dev).slice([0..b, 0..h, 0..lk, 3..3 + d]);
    let v = det::<B, 4>([b, h, d, lk], 6, dev).swap_dims(2, 3);
    let contiguous = |t: Tensor<B, 4>| {
        let dims = t.dims();
        Tensor::<B, 4>::from_data(t.into_data(), dev).reshape(dims)
    };
    let pad = key_padding_mask::<B>(&[lk, 9], lk, dev);
    let expected = flash_attention_gpu(
        contiguous(q.clone()),
        contiguous(k.clone()),
        contiguous(v.clone()),
        Some(pad.clone()),
        opts(true, None),
    );
    let out = flash_attention_gpu(
        q.clone(),
        k.clone(),
        v.clone(),
        Some(pad.clone()),
        opts(true, None),
    );
    assert_close(
        out,
        expected.clone(),
        Tolerance::new("SAME_KERNEL", 1e-6, 1e-6),
    );
    let reference = reference((q, k, v), Some(pad), true, None);
    assert_close(expected, reference, FLASH_VS_REFERENCE);
}

/// `memory_safe_attention` takes the kernel for no mask, causal and key padding (and then
/// equals it), and keeps the other paths for a full mask, a bias, a softcap and head
/// dimensions above the kernel's maximum.
fn dispatch_takes_gpu_flash<B: Backend>(dev: &B::Device) {
    let [b, h, lq, lk, d] = [2, 2, 19, 23, 16];
    let (q, k, v) = qkv::<B>([b, h, lq, lk, d, d], dev);
    let budget = MemoryBudget::default();
    let pad = key_padding_mask::<B>(&[lk, 11], lk, dev);
    for (mask, causal) in [
        (None, false),
        (None, true),
        (Some(AttentionMask::KeyPadding(pad.clone())), false),
        (Some(AttentionMask::KeyPadding(pad.clone())), true),
    ] {
        let path = memory_safe_path(&q, &k, mask.as_ref(), false, &opts(causal, None), &budget);
        assert_eq!(path, AttentionPath::GpuFlash);
        let padding = match &mask {
            Some(AttentionMask::KeyPadding(m)) => Some(m.clone()),
            _ => None,
        };
        let out = memory_safe_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            mask,
            None,
            opts(causal, None),
            &budget,
        );
        let direct =
            flash_attention_gpu(q.clone(), k.clone(), v.clone(), padding, opts(causal, None));
        assert_close(out, direct, Tolerance::EXACT);
    }
    let full = expand_key_padding(pad, [b, h, lq, lk]);
    let dense = memory_safe_path(
        &q,
        &k,
        Some(&AttentionMask::Full(full)),
        false,
        &opts(false, None),
        &budget,
    );
    assert_ne!(dense, AttentionPath::GpuFlash);
    assert_ne!(
        memory_safe_path(&q, &k, None, true, &opts(false, None), &budget),
        AttentionPath::GpuFlash
    );
    let softcap = AttentionModuleOptions {
        softcap: Some(30.0),
        ..opts(false, None)
    };
    assert_ne!(
        memory_safe_path(&q, &k, None, false, &softcap, &budget),
        AttentionPath::GpuFlash
    );
    let wide = det::<B, 4>([1, 1, 4, 300], 7, dev);
    assert_ne!(
        memory_safe_path(&wide, &wide, None, false, &opts(false, None), &budget),
        AttentionPath::GpuFlash
    );
    assert!(!gpu_flash_supported::<B>(DType::F32, 300, 300, dev));
}

/// 8192 tokens, 2 heads, causal with key padding, through `memory_safe_attention`: the fused
/// kernel (memory `O(L·D)`; Burn's fallback would hold 2·8192² f32 scores, 512 MiB per copy),
/// and sampled query rows — first, around the padding edge, last — equal the reference computed
/// for those rows alone with the same mask.
fn long_sequence_gpu_flash<B: Backend>(dev: &B::Device) {
    let [b, h, l, d] = [1, 2, 8192, 16];
    let valid = l - 37;
    let (q, k, v) = qkv::<B>([b, h, l, l, d, d], dev);
    let pad = key_padding_mask::<B>(&[valid], l, dev);
    let mask = Some(AttentionMask::KeyPadding(pad));
    let budget = MemoryBudget::default();
    assert_eq!(
        memory_safe_path(&q, &k, mask.as_ref(), false, &opts(true, None), &budget),
        AttentionPath::GpuFlash
    );
    let out = memory_safe_attention(
        q.clone(),
        k.clone(),
        v.clone(),
        mask,
        None,
        opts(true, None),
        &budget,
    );
    assert_eq!(out.dims(), [b, h, l, d]);
    common::assert_causal_padded_rows((q, k, v), out, valid, FLASH_VS_REFERENCE);
}

/// The tensor-core kernel's bounds against the f32 reference on rounded inputs: twice the f32
/// kernel's half-precision ones, since `P` is also rounded to the input dtype before `P·V`.
const TENSOR_CORE_TOLERANCES: [(DType, Tolerance); 2] = [
    (DType::F16, Tolerance::new("F16_TENSOR_CORES", 4e-3, 4e-3)),
    (DType::BF16, Tolerance::new("BF16_TENSOR_CORES", 3e-2, 3e-2)),
];

/// The tensor-core kernel against the f32 reference on the rounded inputs, with its products
/// on cooperative matrices (f16/bf16 on devices with 16×16×16 ones) and on units (the reference
/// twin of those products, everything else the same kernel): head dims 64, 128 and 40/24
/// (rounded up to 16), lengths spanning several query and key tiles, every mask case. Beyond
/// the output's own rounding, `P` is rounded to the input dtype before `P·V`, so the bounds are
/// twice the f32 kernel's half-precision ones. Where the device has no cooperative matrices
/// (lavapipe) that half reports unsupported and says it skipped; the units half must run
/// wherever the device has f16 or bf16.
fn tensor_cores_match_reference<B: Backend>(dev: &B::Device) {
    for products in [
        TensorCoreProducts::CooperativeMatrices,
        TensorCoreProducts::Units,
    ] {
        assert!(!gpu_tensor_cores_supported_with::<B>(
            products,
            DType::F32,
            64,
            64,
            dev
        ));
        let mut ran = 0;
        let mut available = 0;
        for (dtype, tol) in TENSOR_CORE_TOLERANCES {
            available += usize::from(gpu_flash_supported::<B>(dtype, 64, 64, dev));
            if !gpu_tensor_cores_supported_with::<B>(products, dtype, 64, 64, dev) {
                eprintln!(
                    "tensor_cores_match_reference: {products:?} not here for {dtype:?}, skipped"
                );
                continue;
            }
            ran += 1;
            for dims in [
                [2, 3, 150, 133, 64, 64],
                [2, 2, 70, 70, 128, 128],
                [2, 2, 45, 19, 40, 24],
            ] {
                let ((q, k, v), rounded) = half_qkv::<B>(dims, dtype, dev);
                for (pad, causal) in mask_cases::<B>(dims[3], dev) {
                    let expected = reference(rounded.clone(), pad.clone(), causal, None);
                    let out = flash_attention_gpu_tensor_cores_with(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        pad,
                        opts(causal, None),
                        products,
                        None,
                    );
                    assert_eq!(out.dtype(), dtype);
                    assert_close(out.cast(DType::F32), expected, tol);
                }
            }
        }
        eprintln!("tensor_cores_match_reference: {products:?}: {ran} of 2 dtypes ran");
        if products == TensorCoreProducts::Units {
            assert_eq!(
                ran, available,
                "the units twin must run for every half dtype the device has"
            );
        }
    }
}

/// The tensor-core kernel on tiles chosen here, with both kinds of products where the device
/// has them: 1, 2 and 4 planes (16–64 query rows), 16-, 32- and 64-key tiles (64 is what large
/// devices get) and head caps above the rounded head dims, at head dims 32/16 so that the tiles
/// fit lavapipe's 32 KiB; lengths span several query and key tiles, every mask case.
fn tensor_core_small_tiles<B: Backend>(dev: &B::Device) {
    let dims = [2, 2, 77, 101, 32, 16];
    let tiles = |planes, block_k, head_cap, value_cap| TensorCoreTiles {
        planes,
        block_k,
        head_cap,
        value_cap,
    };
    let chosen = [
        tiles(1, 64, 32, 16),
        tiles(2, 64, 32, 16),
        tiles(4, 32, 32, 16),
        tiles(2, 16, 48, 32),
    ];
    for products in [
        TensorCoreProducts::CooperativeMatrices,
        TensorCoreProducts::Units,
    ] {
        let (mut ran, mut available) = (0, 0);
        for (dtype, tol) in TENSOR_CORE_TOLERANCES {
            available += usize::from(gpu_flash_supported::<B>(dtype, 32, 16, dev));
            if !gpu_tensor_cores_supported_with::<B>(products, dtype, 32, 16, dev) {
                continue;
            }
            ran += 1;
            let ((q, k, v), rounded) = half_qkv::<B>(dims, dtype, dev);
            for (pad, causal) in mask_cases::<B>(dims[3], dev) {
                let expected = reference(rounded.clone(), pad.clone(), causal, None);
                for t in chosen {
                    let out = flash_attention_gpu_tensor_cores_with(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        pad.clone(),
                        opts(causal, None),
                        products,
                        Some(t),
                    );
                    assert_close(out.cast(DType::F32), expected.clone(), tol);
                }
            }
        }
        eprintln!("tensor_core_small_tiles: {products:?}: {ran} of 2 dtypes ran");
        if products == TensorCoreProducts::Units {
            assert_eq!(
                ran, available,
                "the units twin must run for every half dtype"
            );
        }
    }
}

gpu_backend_tests!(
    flash_matches_reference,
    tensor_cores_match_reference,
    tensor_core_small_tiles,
    flash_small_tiles,
    flash_half_precision,
    flash_strided_views,
    dispatch_takes_gpu_flash,
    long_sequence_gpu_flash,
);

#[test]
fn tiles_fit_the_device() {
    // Roomy device: the default 16 × 32 tiles.
    let t = FlashTiles::for_device(64, 64, 48 * 1024, 1024).unwrap();
    assert_eq!(
        (t.block_q, t.block_k, t.head_cap, t.value_cap),
        (16, 32, 64, 64)
    );
    assert!(t.shared_bytes() <= 48 * 1024);
    // Head dim 128 in 32 KiB: block_k halves first.
    let t = FlashTiles::for_device(128, 128, 32 * 1024, 1024).unwrap();
    assert_eq!((t.block_q, t.block_k), (16, 16));
    assert!(t.shared_bytes() <= 32 * 1024);
    // 256 in 16 KiB does not fit even 2 × 8 tiles; 300 is above the maximum; 0 is invalid.
    assert_eq!(FlashTiles::for_device(256, 256, 16 * 1024, 1024), None);
    assert!(FlashTiles::for_device(256, 256, 32 * 1024, 1024).is_some());
    assert_eq!(FlashTiles::for_device(300, 64, 1 << 20, 1024), None);
    assert_eq!(FlashTiles::for_device(0, 64, 1 << 20, 1024), None);
    // Few units per cube: block_q shrinks until 8·block_q fits.
    let t = FlashTiles::for_device(16, 16, 1 << 20, 64).unwrap();
    assert_eq!(t.units(), 64);
    // Odd head dims round up to a power of two, at least 16.
    let t = FlashTiles::for_device(40, 5, 1 << 20, 1024).unwrap();
    assert_eq!((t.head_cap, t.value_cap), (64, 16));
}

#[test]
fn tensor_core_tiles_fit_the_device() {
    // An H100's 227 KiB: 4 planes (64 rows) × 64 keys, head dims rounded up to 16.
    let t = TensorCoreTiles::for_device(128, 128, 227 * 1024, 1024).unwrap();
    assert_eq!(
        (t.planes, t.block_k, t.head_cap, t.value_cap),
        (4, 64, 128, 128)
    );
    assert_eq!(
        t.shared_bytes(),
        (64 * 128 * 3 + 64 * 64) * 2 + 64 * 128 * 4
    );
    // 48 KiB: block_k halves first, then the planes.
    let t = TensorCoreTiles::for_device(128, 128, 48 * 1024, 1024).unwrap();
    assert!(t.shared_bytes() <= 48 * 1024);
    assert_eq!((t.planes, t.block_k), (2, 16));
    let t = TensorCoreTiles::for_device(40, 24, 1 << 20, 1024).unwrap();
    assert_eq!(
        (t.head_cap, t.value_cap, t.block_q(), t.units()),
        (48, 32, 64, 128)
    );
    assert_eq!(TensorCoreTiles::for_device(300, 64, 1 << 20, 1024), None);
    assert_eq!(TensorCoreTiles::for_device(64, 64, 4 * 1024, 1024), None);
}
