//! Fused attention on the CubeCL GPU backends (`cuda`, `wgpu`): [`flash_attention_gpu`] runs one
//! CubeCL kernel (below) on the tensors' device buffers.
//!
//! # Algorithm
//! FlashAttention-2's forward, one launch for all heads: each cube owns a tile of query rows of
//! one head, streams key/value tiles through shared memory and keeps the online-softmax state
//! (`m`, `l`, the output row) in f32 registers; the `[Lq, Lk]` scores never reach global
//! memory, so memory is `O(L·D)` at every length. f32, f16 and bf16 inputs (as the device
//! supports them) with f32 accumulation; causal (bottom-right aligned) and `[B, Lk]`
//! key-padding masks; head dimensions up to [`FlashTiles::MAX_HEAD_DIM`]. Tile sizes and the
//! barrier schedule are documented on [`FlashTiles`].
//!
//! # Where it runs
//! [`memory_safe_attention`](crate::blocked::memory_safe_attention) takes this path
//! ([`AttentionPath::GpuFlash`](crate::blocked::AttentionPath::GpuFlash)) on `Cuda` and `Wgpu`
//! built without Burn's `fusion` feature (their float tensors are then CubeCL tensors) for
//! calls with no mask, a causal mask and/or key padding, when [`gpu_flash_supported`] holds.
//! Dense masks, additive biases, softcaps and `Autodiff` keep the other paths, which are the
//! kernel's reference twins in the tests.
//!
//! # The tensor-core kernel
//! [`flash_attention_gpu_tensor_cores`] is the same recurrence with `Q·Kᵀ` and `P·V` on
//! CubeCL's cooperative matrices (16×16×16, f16/bf16 in, f32 accumulation; CUDA from sm_80):
//! one plane (warp) per 16 query rows, see `gpu/tensor_core.rs`. It is not dispatched by
//! `memory_safe_attention`: the `cmma` calls can only run on a device with cooperative
//! matrices, which CI does not have (their CUDA source is compiled there by
//! `bench/cuda_compile_check.sh`), so it is called directly. The same kernel with those two
//! products on units ([`TensorCoreProducts::Units`], through
//! [`flash_attention_gpu_tensor_cores_with`]) runs on any CubeCL device, and
//! `tensor_cores_match_reference` checks it against the reference on lavapipe in CI; the
//! cooperative-matrix version is checked by the same test and by `gpu_bench`'s `*_tc` cases
//! wherever a device has them.

#[cfg(all(feature = "cuda", feature = "wgpu"))]
mod cuda_source;
mod kernel;
mod tensor_core;

#[cfg(all(feature = "cuda", feature = "wgpu"))]
#[doc(hidden)]
pub use cuda_source::{flash_kernel_cuda_source, tensor_core_kernel_cuda_source};
pub use kernel::FlashTiles;
pub use tensor_core::TensorCoreTiles;

use tensor_core::PLANE_SIZE;

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Tensor, TensorPrimitive, backend::Backend};
use burn_cubecl::{CubeRuntime, ops::numeric::empty_device_dtype, tensor::CubeTensor};
use cubecl::features::MmaConfig;
use cubecl::ir::{DeviceProperties, HardwareProperties};
use cubecl::prelude::{CubeCount, CubeDim, StorageType};
use std::any::{Any, TypeId};

#[cfg(feature = "cuda")]
type CudaRuntime = cubecl::cuda::CudaRuntime;
#[cfg(feature = "wgpu")]
type WgpuRuntime = cubecl::wgpu::WgpuRuntime;

/// Whether `B`'s float tensors are CubeCL tensors of a runtime this crate was built for (`cuda`,
/// `wgpu`): `Cuda` / `Wgpu` without Burn's `fusion`, not under `Autodiff`.
pub fn is_cube_backend<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    if is_runtime::<B, CudaRuntime>() {
        return true;
    }
    #[cfg(feature = "wgpu")]
    if is_runtime::<B, WgpuRuntime>() {
        return true;
    }
    false
}

/// Whether [`flash_attention_gpu`] takes inputs of `dtype` with these head dimensions on
/// `device`: a CubeCL backend ([`is_cube_backend`]), f32 / f16 / bf16 supported by the device,
/// and [`FlashTiles::for_device`] finds tiles for its shared memory.
pub fn gpu_flash_supported<B: Backend>(
    dtype: DType,
    head_dim: usize,
    value_dim: usize,
    device: &B::Device,
) -> bool {
    tiles_for::<B>(dtype, head_dim, value_dim, device).is_some()
}

/// The kernel's tiles for these inputs on `device`, `None` where [`gpu_flash_supported`] is
/// false.
fn tiles_for<B: Backend>(
    dtype: DType,
    head_dim: usize,
    value_dim: usize,
    device: &B::Device,
) -> Option<FlashTiles> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return None;
    }
    let properties = cube_properties::<B>(device)?;
    if !properties.supports_type(StorageType::from(dtype)) {
        return None;
    }
    device_tiles(&properties.hardware, head_dim, value_dim)
}

/// The properties of `device` when `B` is a CubeCL backend of this build ([`is_cube_backend`]).
fn cube_properties<B: Backend>(device: &B::Device) -> Option<DeviceProperties> {
    #[cfg(feature = "cuda")]
    if is_runtime::<B, CudaRuntime>() {
        return properties_on::<CudaRuntime>(device);
    }
    #[cfg(feature = "wgpu")]
    if is_runtime::<B, WgpuRuntime>() {
        return properties_on::<WgpuRuntime>(device);
    }
    let _ = device;
    None
}

/// The properties of `device` (a `R::Device`).
fn properties_on<R: CubeRuntime>(device: &dyn Any) -> Option<DeviceProperties> {
    let device = device.downcast_ref::<R::Device>()?;
    Some(R::client(device).properties().clone())
}

/// `softmax(q·kᵀ·scale + mask)·v` in one fused kernel launch on a CubeCL GPU backend.
///
/// `options.scale` defaults to `1/√D`; `options.is_causal` masks key `j` for query `i` when
/// `j > i + Lk − Lq` (bottom-right aligned, as Burn's fused op); `key_padding[b, j] = true`
/// masks key `j` of batch `b`. Rows with every key masked get a zero context vector. The output
/// has `q`'s dtype and is contiguous.
///
/// # Shapes
/// `q: [B, H, Lq, D]`, `k: [B, H, Lk, D]`, `v: [B, H, Lk, Dv]`, `key_padding: [B, Lk]`
/// → `[B, H, Lq, Dv]`
///
/// # Panics
/// If the shapes disagree, `options.softcap` is set, or
/// [`gpu_flash_supported`] is false for these inputs.
pub fn flash_attention_gpu<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    flash_attention_gpu_blocks(q, k, v, key_padding, options, None)
}

/// [`flash_attention_gpu`] with the tile's `(block_q, block_k)` chosen by the caller instead of
/// [`FlashTiles::for_device`] (tests use small tiles so that lengths span several of them).
///
/// # Panics
/// As [`flash_attention_gpu`]; also if `block_q` is 0, `block_k` is not a positive multiple
/// of the units per row (8), or the tiles exceed the device's shared memory or units per cube.
pub fn flash_attention_gpu_blocks<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
    blocks: Option<(usize, usize)>,
) -> Tensor<B, 4> {
    let name = "flash_attention_gpu";
    let [_, _, _, _, head_dim, value_dim] = check_inputs(name, &q, &k, &v, &key_padding, &options);
    let tiles = tiles_for::<B>(q.dtype(), head_dim, value_dim, &q.device())
        .unwrap_or_else(|| unsupported::<B>(name, &q, head_dim, value_dim));
    run_kernel(q, k, v, key_padding, options, Plan::Units { tiles, blocks })
}

/// Whether [`flash_attention_gpu_tensor_cores`] takes inputs of `dtype` with these head
/// dimensions on `device`: a CubeCL backend, f16 or bf16, a device reporting 16×16×16
/// cooperative matrices for the dtype with f32 accumulation and planes of 32 units (CUDA
/// from sm_80), and [`TensorCoreTiles::for_device`] finds tiles for its shared memory.
pub fn gpu_tensor_cores_supported<B: Backend>(
    dtype: DType,
    head_dim: usize,
    value_dim: usize,
    device: &B::Device,
) -> bool {
    gpu_tensor_cores_supported_with::<B>(
        TensorCoreProducts::CooperativeMatrices,
        dtype,
        head_dim,
        value_dim,
        device,
    )
}

/// [`gpu_tensor_cores_supported`] for either way of computing the kernel's products: with
/// [`TensorCoreProducts::Units`], any CubeCL device with `dtype` (f16 or bf16) in place of
/// the cooperative matrices and planes of 32.
pub fn gpu_tensor_cores_supported_with<B: Backend>(
    products: TensorCoreProducts,
    dtype: DType,
    head_dim: usize,
    value_dim: usize,
    device: &B::Device,
) -> bool {
    tensor_core_tiles_for::<B>(products, dtype, head_dim, value_dim, device).is_some()
}

/// How the tensor-core kernel computes `Q·Kᵀ` and `P·V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorCoreProducts {
    /// 16×16×16 cooperative matrices (tensor cores): what the kernel is for.
    CooperativeMatrices,
    /// f32 arithmetic on the plane's units over the same shared-memory tiles, all else
    /// unchanged (tiles, loads, masks, online softmax, `P` rounding), with cube barriers for
    /// the plane ones and shared memory for the lane-pair shuffles: the reference twin of the
    /// cooperative-matrix products. It runs on any CubeCL device with the input dtype (wgpu on
    /// Mesa's lavapipe in CI), so everything but the `cmma` calls and shuffles is tested there;
    /// it is not fast.
    Units,
}

/// [`flash_attention_gpu`] with both products on tensor cores (the kernel of
/// `gpu/tensor_core.rs`), for f16 and bf16 inputs: same arguments, masks and output. `P` is
/// rounded to the input dtype before `P·V`, so it differs from [`flash_attention_gpu`] by
/// about that rounding. Not taken by `memory_safe_attention`: call it directly.
///
/// # Panics
/// As [`flash_attention_gpu`], with [`gpu_tensor_cores_supported`] in place of
/// [`gpu_flash_supported`].
pub fn flash_attention_gpu_tensor_cores<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    flash_attention_gpu_tensor_cores_with(
        q,
        k,
        v,
        key_padding,
        options,
        TensorCoreProducts::CooperativeMatrices,
        None,
    )
}

/// [`flash_attention_gpu_tensor_cores`] with its products computed as `products` says, and
/// with `tiles` in place of [`TensorCoreTiles::for_device`]'s when given (tests use tiles that
/// a small device holds; head caps may exceed the rounded head dims).
///
/// # Panics
/// As [`flash_attention_gpu`], with [`gpu_tensor_cores_supported_with`] in place of
/// [`gpu_flash_supported`]; also if `tiles` has no planes, a `block_k` or head cap that is not
/// a multiple of 16, a head cap below its head dim, or needs more shared memory or units per
/// cube than the device has.
pub fn flash_attention_gpu_tensor_cores_with<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
    products: TensorCoreProducts,
    tiles: Option<TensorCoreTiles>,
) -> Tensor<B, 4> {
    let name = "flash_attention_gpu_tensor_cores";
    let [_, _, _, _, head_dim, value_dim] = check_inputs(name, &q, &k, &v, &key_padding, &options);
    let (planned, limits) =
        tensor_core_tiles_for::<B>(products, q.dtype(), head_dim, value_dim, &q.device())
            .unwrap_or_else(|| unsupported::<B>(name, &q, head_dim, value_dim));
    let tiles = tiles.map_or(planned, |t| {
        check_tensor_core_tiles(t, products, head_dim, value_dim, limits)
    });
    run_kernel(
        q,
        k,
        v,
        key_padding,
        options,
        Plan::TensorCores { tiles, products },
    )
}

/// The shapes `[B, H, Lq, Lk, D, Dv]` after checking what both kernels require of their
/// inputs (panics naming `name` otherwise).
fn check_inputs<B: Backend>(
    name: &str,
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    key_padding: &Option<Tensor<B, 2, Bool>>,
    options: &AttentionModuleOptions,
) -> [usize; 6] {
    let dims = crate::blocked::check_qkv(name, q, k, v);
    assert!(
        options.softcap.is_none(),
        "{name}: softcap is not supported (memory_safe_attention takes another path)"
    );
    assert!(
        q.dtype() == k.dtype() && q.dtype() == v.dtype(),
        "{name}: q, k, v dtypes {:?}, {:?}, {:?} differ",
        q.dtype(),
        k.dtype(),
        v.dtype()
    );
    if let Some(m) = key_padding {
        assert_eq!(
            m.dims(),
            [dims[0], dims[3]],
            "{name}: key-padding mask {:?} is not [B, Lk]",
            m.dims()
        );
    }
    dims
}

fn unsupported<B: Backend>(name: &str, q: &Tensor<B, 4>, head_dim: usize, value_dim: usize) -> ! {
    panic!(
        "{name}: not supported for {:?} with head dims {head_dim}/{value_dim} on {}",
        q.dtype(),
        B::name(&q.device())
    )
}

fn run_kernel<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
    plan: Plan,
) -> Tensor<B, 4> {
    let [b, h, len_q, head_dim] = q.dims();
    let value_dim = v.dims()[3];
    let scale = options.scale.unwrap_or(1.0 / (head_dim as f64).sqrt()) as f32;
    let args = Args {
        heads: h,
        scale,
        causal: options.is_causal,
        shape: [b, h, len_q, value_dim],
        plan,
    };
    let padding = key_padding.map(|m| m.int());
    #[cfg(feature = "cuda")]
    if is_runtime::<B, CudaRuntime>() {
        return run::<B, CudaRuntime>(q, k, v, padding, &args);
    }
    #[cfg(feature = "wgpu")]
    if is_runtime::<B, WgpuRuntime>() {
        return run::<B, WgpuRuntime>(q, k, v, padding, &args);
    }
    unreachable!("the kernels' tiles exist only for CubeCL backends");
}

/// Which kernel a launch runs, with its tiles.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// `flash_attention_kernel` (f32 arithmetic on units) with the device's tiles, or
    /// `(block_q, block_k)` in their place.
    Units {
        tiles: FlashTiles,
        blocks: Option<(usize, usize)>,
    },
    /// `flash_attention_tc_kernel`, its products as `products` says.
    TensorCores {
        tiles: TensorCoreTiles,
        products: TensorCoreProducts,
    },
}

/// Per-call values the launch needs besides the tensors.
struct Args {
    heads: usize,
    scale: f32,
    causal: bool,
    /// Output shape `[B, H, Lq, Dv]`.
    shape: [usize; 4],
    plan: Plan,
}

/// The tensor-core kernel's tiles for these inputs on `device` with the device's shared memory
/// and units per cube, `None` where [`gpu_tensor_cores_supported_with`] is false.
fn tensor_core_tiles_for<B: Backend>(
    products: TensorCoreProducts,
    dtype: DType,
    head_dim: usize,
    value_dim: usize,
    device: &B::Device,
) -> Option<(TensorCoreTiles, DeviceLimits)> {
    if !matches!(dtype, DType::F16 | DType::BF16) {
        return None;
    }
    let properties = cube_properties::<B>(device)?;
    let input = StorageType::from(dtype);
    let hardware = &properties.hardware;
    let usable = match products {
        TensorCoreProducts::CooperativeMatrices => {
            let mma = MmaConfig {
                a_type: input,
                b_type: input,
                cd_type: StorageType::from(DType::F32),
                m: 16,
                n: 16,
                k: 16,
            };
            let planes_of_32 = hardware.plane_size_min == PLANE_SIZE as u32
                && hardware.plane_size_max == PLANE_SIZE as u32;
            properties.features.matmul.cmma.contains(&mma) && planes_of_32
        }
        TensorCoreProducts::Units => properties.supports_type(input),
    };
    if !usable {
        return None;
    }
    let limits = DeviceLimits {
        shared_bytes: hardware.max_shared_memory_size,
        units: hardware.max_units_per_cube as usize,
    };
    // Room for the twin's exchange of the most units `for_device` plans.
    let reserve = exchange_bytes(products, TensorCoreTiles::MAX_PLANES * PLANE_SIZE);
    let shared = limits.shared_bytes.saturating_sub(reserve);
    let tiles = TensorCoreTiles::for_device(head_dim, value_dim, shared, limits.units)?;
    Some((tiles, limits))
}

/// A device's shared memory per cube and units per cube.
#[derive(Debug, Clone, Copy)]
struct DeviceLimits {
    shared_bytes: usize,
    units: usize,
}

/// Shared memory the tensor-core kernel needs besides [`TensorCoreTiles::shared_bytes`] with
/// `units` units per cube: the twin's exchange array of one f32 per unit.
fn exchange_bytes(products: TensorCoreProducts, units: usize) -> usize {
    match products {
        TensorCoreProducts::CooperativeMatrices => 0,
        TensorCoreProducts::Units => 4 * units,
    }
}

/// `requested` checked against the inputs and the device (panics naming the tiles otherwise).
fn check_tensor_core_tiles(
    requested: TensorCoreTiles,
    products: TensorCoreProducts,
    head_dim: usize,
    value_dim: usize,
    limits: DeviceLimits,
) -> TensorCoreTiles {
    let t = requested;
    let caps_fit = |cap: usize, dim: usize| cap.is_multiple_of(16) && cap >= dim;
    assert!(
        t.planes > 0
            && t.block_k > 0
            && t.block_k.is_multiple_of(16)
            && caps_fit(t.head_cap, head_dim)
            && caps_fit(t.value_cap, value_dim),
        "flash_attention_gpu_tensor_cores: tiles {t:?} need planes > 0, block_k a positive \
         multiple of 16 and head caps multiples of 16 at least the head dims \
         {head_dim}/{value_dim}"
    );
    let shared = t.shared_bytes() + exchange_bytes(products, t.units());
    assert!(
        shared <= limits.shared_bytes && t.units() <= limits.units,
        "flash_attention_gpu_tensor_cores: tiles {t:?} need {shared} bytes of shared memory and \
         {} units; the device has {} and {}",
        t.units(),
        limits.shared_bytes,
        limits.units
    );
    t
}

fn is_runtime<B: Backend, R: CubeRuntime>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<CubeTensor<R>>()
}

/// Shared memory the kernel plans with: the device's, at most the 48 KiB that CUDA allows a
/// kernel's static shared arrays (devices report more, usable only as opt-in dynamic memory).
fn shared_limit(hardware: &HardwareProperties) -> usize {
    hardware.max_shared_memory_size.min(48 * 1024)
}

/// [`FlashTiles::for_device`] for `hardware`.
fn device_tiles(
    hardware: &HardwareProperties,
    head_dim: usize,
    value_dim: usize,
) -> Option<FlashTiles> {
    FlashTiles::for_device(
        head_dim,
        value_dim,
        shared_limit(hardware),
        hardware.max_units_per_cube as usize,
    )
}

/// `t`'s primitive as the CubeCL tensor it is (`is_runtime::<B, R>()`, checked by the caller).
fn cube<R: CubeRuntime, P: 'static>(t: P) -> CubeTensor<R> {
    let t: Box<dyn Any> = Box::new(t);
    *t.downcast::<CubeTensor<R>>()
        .expect("B's tensor primitives are CubeTensor<R> (is_runtime)")
}

fn run<B: Backend, R: CubeRuntime>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    padding: Option<Tensor<B, 2, burn::tensor::Int>>,
    args: &Args,
) -> Tensor<B, 4> {
    let q = cube::<R, _>(q.into_primitive().tensor());
    let k = cube::<R, _>(k.into_primitive().tensor());
    let v = cube::<R, _>(v.into_primitive().tensor());
    let padding = padding.map(|m| cube::<R, _>(m.into_primitive()));
    let out = launch(q, k, v, padding, args);
    let out: Box<dyn Any> = Box::new(out);
    let out = out
        .downcast::<B::FloatTensorPrimitive>()
        .expect("B's float primitive is CubeTensor<R> (is_runtime)");
    Tensor::from_primitive(TensorPrimitive::Float(*out))
}

/// One launch of the plan's kernel: a cube per (batch, head, query tile), laid out as a
/// rectangle within the device's cube-count limit.
fn launch<R: CubeRuntime>(
    q: CubeTensor<R>,
    k: CubeTensor<R>,
    v: CubeTensor<R>,
    padding: Option<CubeTensor<R>>,
    args: &Args,
) -> CubeTensor<R> {
    let client = q.client.clone();
    let [b, h, len_q, value_dim] = args.shape;
    let out = empty_device_dtype::<R>(client.clone(), q.device.clone(), args.shape.into(), q.dtype);
    if b * h * len_q * value_dim == 0 {
        return out;
    }
    let properties = client.properties();
    let hardware = &properties.hardware;
    let (block_q, cube_dim) = match args.plan {
        Plan::Units { tiles, blocks } => {
            let tiles = with_blocks(tiles, blocks, hardware);
            let dim = CubeDim::new_2d(tiles.threads_per_row as u32, tiles.block_q as u32);
            (tiles.block_q, dim)
        }
        Plan::TensorCores { tiles, .. } => (
            tiles.block_q(),
            CubeDim::new_2d(PLANE_SIZE as u32, tiles.planes as u32),
        ),
    };
    let q_tiles = len_q.div_ceil(block_q);
    let cubes = b * h * q_tiles;
    let max_x = (hardware.max_cube_count.0 as usize).clamp(1, 65_535);
    let x = cubes.min(max_x);
    let y = cubes.div_ceil(x);
    assert!(
        y <= hardware.max_cube_count.1 as usize,
        "flash_attention_gpu: {cubes} tiles exceed the device's cube grid"
    );
    let cube_count = CubeCount::Static(x as u32, y as u32, 1);
    let dtype = q.dtype;
    // Without key padding the kernels never read the mask argument: `q` stands in for it.
    let (mask, mask_dtype, padded) = match padding {
        Some(m) => {
            let d = m.dtype;
            (m, d, true)
        }
        None => (q.clone(), dtype, false),
    };
    let dtypes = [dtype.into(), mask_dtype.into()];
    match args.plan {
        Plan::Units { tiles, blocks } => kernel::flash_attention_kernel::launch::<R>(
            &client,
            cube_count,
            cube_dim,
            q.into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            mask.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            args.scale,
            args.heads as u32,
            q_tiles as u32,
            with_blocks(tiles, blocks, hardware),
            args.causal,
            padded,
            dtypes,
        ),
        Plan::TensorCores { tiles, products } => {
            tensor_core::flash_attention_tc_kernel::launch::<R>(
                &client,
                cube_count,
                cube_dim,
                q.into_tensor_arg(),
                k.into_tensor_arg(),
                v.into_tensor_arg(),
                mask.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                args.scale,
                args.heads as u32,
                q_tiles as u32,
                tiles,
                products == TensorCoreProducts::CooperativeMatrices,
                args.causal,
                padded,
                dtypes,
            )
        }
    }
    out
}

/// `tiles` with `(block_q, block_k)` from `blocks` when given, checked against the device.
fn with_blocks(
    mut tiles: FlashTiles,
    blocks: Option<(usize, usize)>,
    hardware: &HardwareProperties,
) -> FlashTiles {
    let Some((block_q, block_k)) = blocks else {
        return tiles;
    };
    let threads = tiles.threads_per_row;
    assert!(
        block_q > 0 && block_k > 0 && block_k % threads == 0,
        "flash_attention_gpu: blocks ({block_q}, {block_k}) need block_q > 0 and block_k a \
         positive multiple of {threads}"
    );
    tiles.block_q = block_q;
    tiles.block_k = block_k;
    assert!(
        tiles.shared_bytes() <= shared_limit(hardware)
            && tiles.units() <= hardware.max_units_per_cube as usize,
        "flash_attention_gpu: tiles {tiles:?} need {} bytes of shared memory and {} units; \
         the device has {} and {}",
        tiles.shared_bytes(),
        tiles.units(),
        shared_limit(hardware),
        hardware.max_units_per_cube
    );
    tiles
}
