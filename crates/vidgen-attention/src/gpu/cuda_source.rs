//! CUDA C++ source of the flash-attention kernels (`kernel.rs`, `tensor_core.rs`), generated
//! on a machine without a CUDA device (built with both `cuda` and `wgpu`).
//!
//! CubeCL builds a kernel's intermediate representation from the launch arguments and the
//! client's device properties, then compiles it for the runtime. A CUDA client needs a CUDA
//! driver, so here the representation is built with a wgpu client (any adapter, e.g. Mesa's
//! lavapipe) and handed to the CUDA runtime's own compiler, which turns it into the C++ that
//! NVRTC compiles at the first launch on a GPU. `bench/cuda_compile_check.sh` feeds these
//! sources to NVRTC and `ptxas` (from NVIDIA's pip wheels, no GPU needed), so a kernel that the
//! CUDA toolchain rejects, or that spills registers, is found before device time is spent.
//!
//! The representation is the one a CUDA launch builds except for what it reads from the
//! device properties (none of the kernel's branches do).

use super::kernel::flash_attention_kernel;
use super::tensor_core::{PLANE_SIZE, flash_attention_tc_kernel};
use super::{FlashTiles, TensorCoreTiles};
use burn::tensor::DType;
use burn_cubecl::ops::numeric::empty_device_dtype;
use cubecl::Compiler;
use cubecl::prelude::{
    AddressType, CubeDim, CubeKernel, ExecutionMode, KernelLauncher, KernelMetadata,
    KernelSettings, LaunchArg, Runtime, StorageType, Tensor,
};
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};

/// The CUDA source of `$kernel` (in module `$module`) on `$cube_dim`, with the comptime
/// arguments `$comptime` (those before `causal`).
macro_rules! cuda_source {
    ($module:ident, $kernel:ident, $dtype:expr, [$($comptime:expr),+], $cube_dim:expr, $causal:expr, $padded:expr) => {{
        type F = $module::F;
        type M = $module::M;
        let (dtype, causal, padded): (DType, bool, bool) = ($dtype, $causal, $padded);
        let device = WgpuDevice::default();
        let client = WgpuRuntime::client(&device);
        let mask_dtype = if padded { DType::I32 } else { dtype };
        let tensor = |dt: DType| {
            empty_device_dtype::<WgpuRuntime>(
                client.clone(),
                device.clone(),
                [1, 1, 1, 16].into(),
                dt,
            )
            .into_tensor_arg()
        };
        let settings = KernelSettings::default()
            .cube_dim($cube_dim)
            .address_type(AddressType::U32);
        let mut launcher = KernelLauncher::<WgpuRuntime>::new(settings.clone());
        let dtypes: [StorageType; 2] = [dtype.into(), mask_dtype.into()];
        launcher.with_scope(|scope| {
            scope.device_properties(client.properties());
            scope.register_type::<F>(dtypes[0].into());
            scope.register_type::<M>(dtypes[1].into());
        });
        let q = <Tensor<F> as LaunchArg>::register(tensor(dtype), &mut launcher);
        let k = <Tensor<F> as LaunchArg>::register(tensor(dtype), &mut launcher);
        let v = <Tensor<F> as LaunchArg>::register(tensor(dtype), &mut launcher);
        let mask = <Tensor<M> as LaunchArg>::register(tensor(mask_dtype), &mut launcher);
        let out = <Tensor<F> as LaunchArg>::register(tensor(dtype), &mut launcher);
        let scale = <f32 as LaunchArg>::register(1.0f32, &mut launcher);
        let heads = <u32 as LaunchArg>::register(1u32, &mut launcher);
        let q_tiles = <u32 as LaunchArg>::register(1u32, &mut launcher);
        let kernel = $module::$kernel::<WgpuRuntime>::new(
            settings,
            client.clone(),
            q,
            k,
            v,
            mask,
            out,
            scale,
            heads,
            q_tiles,
            $($comptime,)+
            causal,
            padded,
            dtypes,
        );
        let definition = kernel.define();
        let mut compiler = cubecl::cuda::CudaCompiler::default();
        compiler
            .compile(
                definition,
                &Default::default(),
                ExecutionMode::Checked,
                kernel.address_type(),
            )
            .map(|compiled| compiled.to_string())
            .map_err(|e| format!("{e:?}"))
    }};
}

/// The CUDA C++ source of the f32-unit flash-attention kernel for inputs of `dtype` (f32,
/// f16 or bf16) with these tiles and masks, as NVRTC receives it; `Err` with CubeCL's message
/// if the CUDA compiler rejects the kernel's representation.
#[doc(hidden)]
pub fn flash_kernel_cuda_source(
    dtype: DType,
    tiles: FlashTiles,
    causal: bool,
    padded: bool,
) -> Result<String, String> {
    let cube_dim = CubeDim::new_2d(tiles.threads_per_row as u32, tiles.block_q as u32);
    cuda_source!(
        flash_attention_kernel,
        FlashAttentionKernel,
        dtype,
        [tiles],
        cube_dim,
        causal,
        padded
    )
}

/// [`flash_kernel_cuda_source`] for the tensor-core kernel (`dtype` f16 or bf16).
#[doc(hidden)]
pub fn tensor_core_kernel_cuda_source(
    dtype: DType,
    tiles: TensorCoreTiles,
    causal: bool,
    padded: bool,
) -> Result<String, String> {
    let cube_dim = CubeDim::new_2d(PLANE_SIZE as u32, tiles.planes as u32);
    cuda_source!(
        flash_attention_tc_kernel,
        FlashAttentionTcKernel,
        dtype,
        [tiles, true],
        cube_dim,
        causal,
        padded
    )
}
