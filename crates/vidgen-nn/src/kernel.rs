//! Which implementation a module computes with, fixed when the module is built.
//!
//! Every fast path in vidgen (Burn's fused attention and the memory-bounded blocked kernels,
//! the chunked SSD scan, the parallel retention form) has a readable reference twin that
//! computes the same function the obvious way. A module holds a [`Kernel`] field, set once
//! with [`WithKernel::with_kernel`] (which passes it on to every sub-module); its `forward` then
//! runs that implementation. No flag travels through the calls.
//!
//! ```
//! use vidgen_nn::Kernel;
//!
//! assert_eq!(Kernel::default(), Kernel::Fast);
//! assert!(Kernel::Reference.is_reference());
//! ```

use serde::{Deserialize, Serialize};

/// The implementation a module's `forward` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Kernel {
    /// The fast path: fused or blocked attention, chunked scans. What users run.
    #[default]
    Fast,
    /// The reference twin: matmul → softmax → matmul with the full score matrix, sequential
    /// scans. Slow and memory-hungry; for equivalence tests and debugging.
    Reference,
}

impl Kernel {
    /// Whether this is [`Kernel::Reference`].
    pub fn is_reference(self) -> bool {
        self == Self::Reference
    }
}

/// A module whose implementation is chosen by a [`Kernel`] when it is built.
pub trait WithKernel: Sized {
    /// This module computing with `kernel`, every sub-module included.
    fn with_kernel(self, kernel: Kernel) -> Self;
}

/// Every module of a stack (a model's blocks).
impl<M: WithKernel> WithKernel for Vec<M> {
    fn with_kernel(self, kernel: Kernel) -> Self {
        self.into_iter().map(|m| m.with_kernel(kernel)).collect()
    }
}
