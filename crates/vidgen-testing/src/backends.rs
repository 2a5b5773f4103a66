//! Backends that generic tests run on, and the macro that instantiates them.

/// The default CPU backend: Burn's `flex`.
pub type Flex = burn::backend::Flex;
/// `flex` wrapped in reverse-mode autodiff, for gradient tests.
pub type AutodiffFlex = burn::backend::Autodiff<Flex>;

/// Burn's `ndarray` CPU backend (feature `ndarray`).
#[cfg(feature = "ndarray")]
pub type NdArray = burn::backend::NdArray;
/// CUDA backend (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;
/// wgpu backend (feature `wgpu`).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
/// CUDA wrapped in autodiff (feature `cuda`).
#[cfg(feature = "cuda")]
pub type AutodiffCuda = burn::backend::Autodiff<Cuda>;
/// wgpu wrapped in autodiff (feature `wgpu`).
#[cfg(feature = "wgpu")]
pub type AutodiffWgpu = burn::backend::Autodiff<Wgpu>;

// Each `__if_*` macro keeps its tokens when this crate was built with that feature and drops them
// otherwise. `#[cfg]` inside an exported `macro_rules!` would read the *calling* crate's features;
// defining the helper per feature here makes the choice follow vidgen-testing's own features.

#[doc(hidden)]
#[cfg(feature = "ndarray")]
#[macro_export]
macro_rules! __if_ndarray { ($($t:tt)*) => { $($t)* }; }
#[doc(hidden)]
#[cfg(not(feature = "ndarray"))]
#[macro_export]
macro_rules! __if_ndarray {
    ($($t:tt)*) => {};
}

#[doc(hidden)]
#[cfg(feature = "cuda")]
#[macro_export]
macro_rules! __if_cuda { ($($t:tt)*) => { $($t)* }; }
#[doc(hidden)]
#[cfg(not(feature = "cuda"))]
#[macro_export]
macro_rules! __if_cuda {
    ($($t:tt)*) => {};
}

#[doc(hidden)]
#[cfg(feature = "wgpu")]
#[macro_export]
macro_rules! __if_wgpu { ($($t:tt)*) => { $($t)* }; }
#[doc(hidden)]
#[cfg(not(feature = "wgpu"))]
#[macro_export]
macro_rules! __if_wgpu {
    ($($t:tt)*) => {};
}

/// Instantiates generic test bodies on every enabled backend.
///
/// Each named function must have the signature `fn name<B: Backend>(device: &B::Device)`. For each,
/// the macro writes a module `name` holding one `#[test]` per backend: `flex` always; `ndarray`,
/// `cuda`, `wgpu` when vidgen-testing is built with the feature of that name (run e.g.
/// `cargo test -p vidgen-nn --features cuda`).
///
/// ```
/// use burn::tensor::{Tensor, backend::Backend};
///
/// fn doubles<B: Backend>(device: &B::Device) {
///     let x = Tensor::<B, 1>::from_floats([1.0, 2.0], device);
///     let y = Tensor::<B, 1>::from_floats([2.0, 4.0], device);
///     vidgen_testing::assert_close(x * 2.0, y, vidgen_testing::Tolerance::EXACT);
/// }
/// vidgen_testing::backend_tests!(doubles);
/// # fn main() { doubles::<vidgen_testing::Flex>(&Default::default()); }
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                #[test]
                pub fn flex() {
                    super::$name::<$crate::Flex>(&::core::default::Default::default());
                }
                $crate::__if_ndarray! {
                    #[test]
                    pub fn ndarray() {
                        super::$name::<$crate::NdArray>(&::core::default::Default::default());
                    }
                }
                $crate::__gpu_instances!($name);
            }
        )+
    };
}

/// The `cuda` and `wgpu` tests of a generic body, behind those features.
#[doc(hidden)]
#[macro_export]
macro_rules! __gpu_instances {
    ($name:ident) => {
        $crate::__if_cuda! {
            #[test]
            pub fn cuda() {
                super::$name::<$crate::Cuda>(&::core::default::Default::default());
            }
        }
        $crate::__if_wgpu! {
            #[test]
            pub fn wgpu() {
                super::$name::<$crate::Wgpu>(&::core::default::Default::default());
            }
        }
    };
}

/// Like [`backend_tests!`], on the GPU backends only (`cuda`, `wgpu`, behind those features): for
/// bodies of GPU code paths at sizes a debug build on the CPU backends cannot afford (the CPU
/// backends take other paths, tested at their own sizes). Without either feature the bodies are
/// unused: mark them `#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]`.
#[macro_export]
macro_rules! gpu_backend_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                $crate::__gpu_instances!($name);
            }
        )+
    };
}

/// Like [`backend_tests!`], for bodies that need gradients: instantiates them on `Autodiff<flex>`
/// (and on `Autodiff<cuda>` / `Autodiff<wgpu>` behind those features).
#[macro_export]
macro_rules! autodiff_backend_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                #[test]
                pub fn autodiff_flex() {
                    super::$name::<$crate::AutodiffFlex>(&::core::default::Default::default());
                }
                $crate::__if_cuda! {
                    #[test]
                    pub fn autodiff_cuda() {
                        super::$name::<$crate::AutodiffCuda>(&::core::default::Default::default());
                    }
                }
                $crate::__if_wgpu! {
                    #[test]
                    pub fn autodiff_wgpu() {
                        super::$name::<$crate::AutodiffWgpu>(&::core::default::Default::default());
                    }
                }
            }
        )+
    };
}
