//! Bidirectional Mamba2 (LinGen's MA-branch scan, supplement sec. E.2: "the FLOPs should be doubled
//! when the module is bidirectional"): one [`Mamba2`] over the sequence, a second one with its own
//! weights over the reversed sequence whose output is reversed back, merged by sum, mean or
//! concatenation followed by a linear map.
//!
//! ```text
//! y_f = mamba_fwd(u);  y_b = flip(mamba_bwd(flip(u)))
//! y = y_f + y_b  |  (y_f + y_b) / 2  |  merge_proj([y_f, y_b])
//! ```
//!
//! LinGen's code is not public; the merge is configurable. The field names `mamba_fwd`,
//! `mamba_bwd`, `merge_proj` are ours.

use crate::error::SsmError;
use crate::mamba2::{Mamba2, Mamba2Cache, Mamba2Config};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use vidgen_nn::layout::contiguous;
use vidgen_nn::{Kernel, WithKernel};

/// How the two directions are merged.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum BiMerge {
    /// `y_f + y_b`.
    Sum,
    /// `(y_f + y_b) / 2`.
    Mean,
    /// `Linear(2·d_model → d_model)([y_f, y_b])`.
    ConcatLinear,
}

/// Configuration of [`BiMamba2`].
#[derive(Config, Debug)]
pub struct BiMamba2Config {
    /// Configuration shared by both directions.
    pub mamba: Mamba2Config,
    /// Merge of the two directions.
    #[config(default = "BiMerge::Sum")]
    pub merge: BiMerge,
    /// Bias of `merge_proj` (only with [`BiMerge::ConcatLinear`]).
    #[config(default = true)]
    pub merge_bias: bool,
}

impl BiMamba2Config {
    /// Builds both directions with independent weights.
    ///
    /// # Errors
    /// As [`Mamba2Config::validate`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<BiMamba2<B>, SsmError> {
        let d = self.mamba.d_model;
        let merge_proj = (self.merge == BiMerge::ConcatLinear)
            .then(|| LinearConfig::new(2 * d, d).with_bias(self.merge_bias));
        Ok(BiMamba2 {
            mamba_fwd: self.mamba.init(device)?,
            mamba_bwd: self.mamba.init(device)?,
            merge_proj: merge_proj.map(|c| c.init(device)),
            merge: self.merge,
        })
    }
}

/// Forward and backward Mamba2 scans of a sequence, merged.
#[derive(Module, Debug)]
pub struct BiMamba2<B: Backend> {
    /// Scan in sequence order.
    pub mamba_fwd: Mamba2<B>,
    /// Scan in reversed order.
    pub mamba_bwd: Mamba2<B>,
    /// `2·d_model → d_model`, present only for [`BiMerge::ConcatLinear`].
    pub merge_proj: Option<Linear<B>>,
    /// The merge.
    #[module(skip)]
    pub merge: BiMerge,
}

impl<B: Backend> WithKernel for BiMamba2<B> {
    /// Both directions scanning with `kernel` (see [`Mamba2::with_kernel`]).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.mamba_fwd = self.mamba_fwd.with_kernel(kernel);
        self.mamba_bwd = self.mamba_bwd.with_kernel(kernel);
        self
    }
}

impl<B: Backend> BiMamba2<B> {
    /// Both scans with the chunked SSD (or, built with [`Kernel::Reference`], the reference
    /// scan), merged.
    ///
    /// # Shapes
    /// `u`: `[B, L, d_model]` → `[B, L, d_model]`
    ///
    /// # Panics
    /// As [`Mamba2::forward`].
    pub fn forward(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let y_f = self.mamba_fwd.forward(u.clone());
        let y_b = contiguous(self.mamba_bwd.forward(contiguous(u.flip([1]))).flip([1]));
        self.merge(y_f, y_b)
    }

    /// Reference twin of [`BiMamba2::forward`]: each direction as a loop of [`Mamba2::step`],
    /// the backward one iterating from the last token to the first.
    ///
    /// # Shapes
    /// As [`BiMamba2::forward`].
    ///
    /// # Panics
    /// As [`Mamba2::step`].
    pub fn forward_reference(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let [bs, len, _] = u.dims();
        let y_f = self.mamba_fwd.forward_reference(u.clone());
        let mut cache: Mamba2Cache<B> = self.mamba_bwd.allocate_cache(bs, &u.device());
        let mut outs = Vec::with_capacity(len);
        for t in (0..len).rev() {
            let (y, next) = self
                .mamba_bwd
                .step(u.clone().narrow(1, t, 1).squeeze_dim::<2>(1), cache);
            outs.push(y);
            cache = next;
        }
        outs.reverse();
        self.merge(y_f, Tensor::stack(outs, 1))
    }

    fn merge(&self, y_f: Tensor<B, 3>, y_b: Tensor<B, 3>) -> Tensor<B, 3> {
        match (self.merge, &self.merge_proj) {
            (BiMerge::Sum, _) => y_f + y_b,
            (BiMerge::Mean, _) => (y_f + y_b) * 0.5,
            (BiMerge::ConcatLinear, Some(proj)) => proj.forward(Tensor::cat(vec![y_f, y_b], 2)),
            (BiMerge::ConcatLinear, None) => {
                panic!("BiMamba2: ConcatLinear merge without merge_proj")
            }
        }
    }
}
