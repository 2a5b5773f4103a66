//! Forcing a module's lazily initialised parameters, so that its clones share weights.
//!
//! Burn 0.21 initialises a freshly built module's parameters lazily, on first use, and
//! `Clone` copies the *initialiser* of a parameter not yet used: the clone draws its own random
//! values. `model.clone()` right after `init` is therefore a different model. Pass the module
//! through [`materialize`] first whenever two copies must hold the same weights (comparing
//! the two [`Kernel`](crate::Kernel)s, an ablation on a copy).
//!
//! ```
//! use vidgen_testing::Flex;
//! use burn::module::Module;
//! use burn::nn::LinearConfig;
//! use vidgen_nn::materialize;
//!
//! let device = Default::default();
//! let linear = materialize(LinearConfig::new(4, 4).init::<Flex>(&device));
//! let copy = linear.clone();
//! let (a, b) = (linear.weight.val(), copy.weight.val());
//! assert_eq!(a.into_data(), b.into_data());
//! ```

use burn::module::{Module, ModuleMapper};
use burn::tensor::backend::Backend;

/// A mapper that takes every parameter out of its lazy state unchanged.
struct Touch;

impl<B: Backend> ModuleMapper<B> for Touch {}

/// `module` with every parameter initialised: its clones share its weights.
pub fn materialize<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut Touch)
}
