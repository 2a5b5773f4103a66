//! `memory_safe_attention`: which path runs (host kernel, Burn's fused op or the blocked
//! kernel) for a backend and shape, and the bridge to the host kernel on f32 slices.

use super::{kernel::*, plan::*};
use crate::host::{HostLayout, HostOptions, HostShape, flash_attention_host_strided};
use crate::mask::{AttentionMask, expand_key_padding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor, TensorData, backend::Backend};

/// Which implementation [`memory_safe_attention`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPath {
    /// Burn's fused [`module::attention`](burn::tensor::module::attention).
    Fused,
    /// [`blocked_attention`].
    Blocked,
    /// [`flash_attention_host`](crate::host::flash_attention_host) on the tensors' host data:
    /// CPU backends outside `Autodiff`, f32, masks that are causal and/or key padding.
    Host,
    /// The fused CubeCL kernel (`gpu::flash_attention_gpu`, cargo features `cuda` / `wgpu`):
    /// `Cuda` / `Wgpu` outside `Autodiff`, f32 / f16 / bf16, masks that are causal and/or key
    /// padding, head dimensions the kernel's tiles cover.
    GpuFlash,
}

/// What an attention call masks, as [`choose_path`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// No mask, bias or softcap.
    None,
    /// Causal and/or key-padding masking only.
    Structured,
    /// A full `[B, H, Lq, Lk]` mask, an additive bias or a softcap.
    Dense,
}

/// Score-matrix size (`Lq·Lk` per head) above which Burn's `flex` backend leaves its two-gemm
/// path for a single-threaded flash loop.
pub const CPU_FUSED_MAX_SCORES: usize = 256 * 1024;

/// Picks the path for f32 attention of score shape `[B, H, Lq, Lk]`:
///
/// 1. [`AttentionPath::Host`] on `flex` / `ndarray` (not under `Autodiff`, whose backend name
///    differs) unless the mask is [`MaskKind::Dense`]: the fused host kernel is memory-bounded
///    and the fastest CPU path at every size measured (`docs/PERFORMANCE.md`);
///    [`AttentionPath::GpuFlash`] likewise on the CubeCL GPU backends (`Cuda`, `Wgpu`, not
///    under `Autodiff`) when this crate is built with their features;
/// 2. [`AttentionPath::Blocked`] if the fused op's score matrix (`TILE_COPIES` f32 copies, as
///    in Burn's unfused fallback) would exceed `budget.bytes`, or, unmasked, on a
///    multi-threaded CPU backend (see [`MemoryBudget::threads`]) when
///    `Lq·Lk > CPU_FUSED_MAX_SCORES`;
/// 3. [`AttentionPath::Fused`] otherwise.
///
/// On CubeCL backends Burn's flash kernels (with `autotune`) do not materialise the scores,
/// but without `autotune` and under `Autodiff` the fallback does, so the estimate is kept for
/// every backend.
pub fn choose_path<B: Backend>(
    [b, h, len_q, len_k]: [usize; 4],
    mask: MaskKind,
    budget: &MemoryBudget,
    device: &B::Device,
) -> AttentionPath {
    if is_host_backend::<B>(device) && mask != MaskKind::Dense {
        return AttentionPath::Host;
    }
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if crate::gpu::is_cube_backend::<B>() && mask != MaskKind::Dense {
        return AttentionPath::GpuFlash;
    }
    let fused_bytes = score_bytes(b * h, len_q, len_k).saturating_mul(TILE_COPIES);
    let cpu_faster = mask == MaskKind::None
        && len_q * len_k > CPU_FUSED_MAX_SCORES
        && resolve_threads::<B>(budget.threads, device) > 1;
    if fused_bytes > budget.bytes || cpu_faster {
        AttentionPath::Blocked
    } else {
        AttentionPath::Fused
    }
}

/// The path [`memory_safe_attention`] takes for these arguments: [`choose_path`] with the mask
/// kind they imply, leaving [`AttentionPath::Host`] for inputs that are not f32 and
/// [`AttentionPath::GpuFlash`] for inputs the kernel does not take (dtype, head dimensions).
pub fn memory_safe_path<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    mask: Option<&AttentionMask<B>>,
    has_bias: bool,
    options: &AttentionModuleOptions,
    budget: &MemoryBudget,
) -> AttentionPath {
    path_for(q, k, None, mask, has_bias, options, budget)
}

/// [`memory_safe_path`] for a value head dimension `value_dim` (`None`: as q's).
fn path_for<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    #[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(unused_variables))]
    value_dim: Option<usize>,
    mask: Option<&AttentionMask<B>>,
    has_bias: bool,
    options: &AttentionModuleOptions,
    budget: &MemoryBudget,
) -> AttentionPath {
    let [b, h, len_q, _] = q.dims();
    let shape = [b, h, len_q, k.dims()[2]];
    let kind =
        if matches!(mask, Some(AttentionMask::Full(_))) || has_bias || options.softcap.is_some() {
            MaskKind::Dense
        } else if mask.is_some() || options.is_causal {
            MaskKind::Structured
        } else {
            MaskKind::None
        };
    let device = q.device();
    let path = choose_path::<B>(shape, kind, budget, &device);
    let supported = match path {
        AttentionPath::Host => q.dtype() == DType::F32,
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        AttentionPath::GpuFlash => crate::gpu::gpu_flash_supported::<B>(
            q.dtype(),
            q.dims()[3],
            value_dim.unwrap_or(q.dims()[3]),
            &device,
        ),
        _ => true,
    };
    if supported {
        path
    } else {
        choose_path::<B>(shape, MaskKind::Dense, budget, &device)
    }
}

/// Attention through the path [`choose_path`] picks (f32 inputs; other float types skip the
/// host kernel): the fused host kernel on CPU backends, the fused CubeCL kernel on GPU
/// backends (`cuda` / `wgpu` features), Burn's fused op when its score matrix fits the budget
/// (and it is the faster one), [`blocked_attention`] otherwise. Same semantics
/// on every path, including zero context for fully masked rows.
///
/// # Shapes
/// As [`blocked_attention`].
///
/// # Panics
/// As [`blocked_attention`] / Burn's fused op.
pub fn memory_safe_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<AttentionMask<B>>,
    bias: Option<Tensor<B, 4>>,
    options: AttentionModuleOptions,
    budget: &MemoryBudget,
) -> Tensor<B, 4> {
    let value_dim = Some(v.dims()[3]);
    let path = path_for(
        &q,
        &k,
        value_dim,
        mask.as_ref(),
        bias.is_some(),
        &options,
        budget,
    );
    let [b, h, len_q, _] = q.dims();
    let shape = [b, h, len_q, k.dims()[2]];
    let device = q.device();
    match path {
        AttentionPath::Host => {
            let padding = match mask {
                Some(AttentionMask::KeyPadding(m)) => Some(m),
                _ => None,
            };
            let threads = resolve_threads::<B>(budget.threads, &device);
            host_attention(q, k, v, padding, options, threads)
        }
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        AttentionPath::GpuFlash => {
            let padding = match mask {
                Some(AttentionMask::KeyPadding(m)) => Some(m),
                _ => None,
            };
            crate::gpu::flash_attention_gpu(q, k, v, padding, options)
        }
        #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
        AttentionPath::GpuFlash => unreachable!("chosen only with the cuda / wgpu features"),
        AttentionPath::Blocked => blocked_attention(q, k, v, mask, bias, options, budget),
        AttentionPath::Fused => {
            let mask = mask.map(|m| match m {
                AttentionMask::Full(m) => m.expand(shape),
                AttentionMask::KeyPadding(m) => expand_key_padding(m, shape),
            });
            let bias = bias.map(|t| t.expand(shape));
            burn::tensor::module::attention(q, k, v, mask, bias, options)
        }
    }
}

/// `[B, H, Lq, Lk, Dh, Dv]` of `q: [B, H, Lq, Dh]`, `k: [B, H, Lk, Dh]`, `v: [B, H, Lk, Dv]`.
///
/// # Panics
/// If the shapes disagree (values in the message, which names `caller`).
pub(crate) fn check_qkv<B: Backend>(
    caller: &str,
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
) -> [usize; 6] {
    let [b, h, len_q, head_dim] = q.dims();
    let [kb, kh, len_k, k_dim] = k.dims();
    let [vb, vh, v_len, value_dim] = v.dims();
    assert!(
        [kb, kh, k_dim] == [b, h, head_dim] && [vb, vh, v_len] == [b, h, len_k],
        "{caller}: q {:?}, k {:?}, v {:?} disagree",
        q.dims(),
        k.dims(),
        v.dims()
    );
    [b, h, len_q, len_k, head_dim, value_dim]
}

/// Whether tensors of `B` live in host memory with synchronous reads (`flex`, `ndarray`).
pub(super) fn is_host_backend<B: Backend>(device: &B::Device) -> bool {
    matches!(B::name(device).as_str(), "flex" | "ndarray")
}

/// [`flash_attention_host`](crate::host::flash_attention_host) on the host data of f32
/// tensors. On `flex` the kernel reads the tensors' storage in place (a permuted or sliced view
/// with a contiguous last axis needs no copy) and writes the output in `q`'s axis order (a `q`
/// that is a `[B, L, H, D]` tensor with its heads moved forward gives an output whose
/// `swap_dims(1, 2)` is contiguous again); other backends copy to and from host vectors.
pub(super) fn host_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
    threads: usize,
) -> Tensor<B, 4> {
    let [b, h, len_q, len_k, head_dim, value_dim] = check_qkv("memory_safe_attention", &q, &k, &v);
    let padding: Option<Vec<bool>> = key_padding.map(|m| {
        assert_eq!(
            m.dims(),
            [b, len_k],
            "memory_safe_attention: key-padding mask {:?} is not [B, Lk]",
            m.dims()
        );
        m.into_data().iter::<bool>().collect()
    });
    let host_options = HostOptions {
        scale: options.scale.unwrap_or(1.0 / (head_dim as f64).sqrt()) as f32,
        causal_offset: options.is_causal.then_some(len_k as i64 - len_q as i64),
        key_padding: padding.as_deref().map(|m| (m, h)),
        threads,
        ..HostOptions::default()
    };
    let shape = HostShape {
        batch_heads: b * h,
        len_q,
        len_k,
        head_dim,
        value_dim,
    };
    #[cfg(feature = "flex")]
    if vidgen_nn::layout::flex::is_flex::<B>() {
        return flex::in_place(q, k, v, shape, h, &host_options);
    }
    let device = q.device();
    let host = |t: Tensor<B, 4>| -> Vec<f32> {
        t.into_data()
            .into_vec::<f32>()
            .expect("f32 tensor data (checked by the caller)")
    };
    let (q, k, v) = (host(q), host(k), host(v));
    let mut out = vec![0.0f32; b * h * len_q * value_dim];
    let layout = HostLayout::contiguous(shape);
    flash_attention_host_strided(&q, &k, &v, &mut out, shape, &layout, &host_options);
    Tensor::from_data(TensorData::new(out, [b, h, len_q, value_dim]), &device)
}

/// The host kernel on `flex` tensors' own storage.
#[cfg(feature = "flex")]
mod flex {
    use super::*;
    use burn::backend::flex::FlexTensor;
    use vidgen_nn::layout::flex::{from_flex, into_flex};

    /// The host kernel on the flex tensors behind `q`, `k`, `v` (f32; `B` is flex: both checked
    /// by the caller), read in place unless a last axis is strided or a stride negative.
    pub(super) fn in_place<B: Backend>(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        shape: HostShape,
        heads: usize,
        options: &HostOptions<'_>,
    ) -> Tensor<B, 4> {
        let operand = |t: Tensor<B, 4>| {
            let t = into_flex(t);
            let s = t.layout().strides();
            if s[3] == 1 && s.iter().all(|&s| s >= 0) {
                t
            } else {
                t.to_contiguous()
            }
        };
        let (q, k, v) = (operand(q), operand(k), operand(v));
        let strides = |t: &FlexTensor| {
            let s = t.layout().strides();
            [s[0], s[1], s[2]].map(|s| s as usize)
        };
        let qs = strides(&q);
        let layout = HostLayout {
            heads,
            q: qs,
            k: strides(&k),
            v: strides(&v),
            out_rows_first: heads > 1 && qs[2] > qs[1],
        };
        let [b, lq, dv] = [shape.batch_heads / heads, shape.len_q, shape.value_dim];
        let mut out = vec![0.0f32; b * heads * lq * dv];
        flash_attention_host_strided(
            data(&q),
            data(&k),
            data(&v),
            &mut out,
            shape,
            &layout,
            options,
        );
        let out = if layout.out_rows_first {
            let t = FlexTensor::from_data(TensorData::new(out, [b, lq, heads, dv]));
            let swapped = t.layout().transpose(1, 2);
            t.with_layout(swapped)
        } else {
            FlexTensor::from_data(TensorData::new(out, [b, heads, lq, dv]))
        };
        from_flex(out)
    }

    /// `t`'s f32 storage from its first element on.
    fn data(t: &FlexTensor) -> &[f32] {
        &t.storage::<f32>()[t.layout().start_offset()..]
    }
}

/// `threads`, with 0 resolved to the available cores on `flex` / `ndarray` and 1 elsewhere.
pub(super) fn resolve_threads<B: Backend>(threads: usize, device: &B::Device) -> usize {
    if threads > 0 {
        return threads;
    }
    if is_host_backend::<B>(device) {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}
