//! The MATE block of LinGen (main paper sec. 3; supplement sec. A, E.1): an adaLN-modulated
//! RMSNorm feeding two parallel token mixers — the **MA-branch** (bidirectional Mamba2 over the
//! tokens in the layer's Rotary-Major Scan order, with review tokens) and the **TE-branch**
//! (TEmporal Swin Attention, shifted on odd layers) — whose outputs are summed and gated, then
//! cross-attention to the text, then a modulated RMSNorm → SwiGLU, gated.
//!
//! ```text
//! [s1, c1, g1, s2, c2, g2] = adaLN(t_emb)
//! h = modulate(rmsnorm1(x), s1, c1)
//! x = x + g1 · (MA(h) + TE(h))                       MA: scan → BiMamba2 → restore; TE: TESA
//! x = x + cross_attn(x, text)                        PixArt / Open-Sora: no norm, no gate
//! x = x + g2 · swiglu(modulate(rmsnorm2(x), s2, c2))
//! ```
//!
//! Our reading where the sources are silent (LinGen's code is not public): the two branches see
//! the same modulated input and are summed under one gate (a parallel block, so neither branch
//! has to be the first); in the MA-branch each direction sees the review tokens **first** (they
//! are prepended to the forward and to the reversed scan separately), so both scans start from a
//! summary of the whole video.

use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use vidgen_attention::{AttentionArgs, MultiHeadAttention, WindowAttention, WindowPlanCache};
use vidgen_nn::layout::contiguous;
use vidgen_nn::{AdaLnModulation, Kernel, SwiGluMlp, WithKernel, gate, modulate};
use vidgen_ssm::{BiMamba2, BiMerge, ReviewTokens, ScanOrder, ScanPlan};

/// One MATE block (fields mirror the components' checkpoint keys; the names of the block's own
/// fields are ours).
#[derive(Module, Debug)]
pub struct MateBlock<B: Backend> {
    /// RMSNorm before the MATE mixers.
    pub norm1: RmsNorm<B>,
    /// MA-branch: forward and backward Mamba2.
    pub bimamba: BiMamba2<B>,
    /// TE-branch: TESA window attention (shifted on odd layers).
    pub tesa: WindowAttention<B>,
    /// Cross-attention from the video tokens to the text tokens.
    pub cross_attn: MultiHeadAttention<B>,
    /// RMSNorm before the feed-forward.
    pub norm2: RmsNorm<B>,
    /// SwiGLU feed-forward.
    pub mlp: SwiGluMlp<B>,
    /// adaLN: six modulation vectors from the timestep embedding.
    pub adaln: AdaLnModulation<B>,
    /// This layer's scan order ([`vidgen_ssm::RotaryMajorScan::for_layer`]).
    #[module(skip)]
    pub scan_order: ScanOrder,
    /// Review-token builder, `None` when review tokens are off.
    #[module(skip)]
    pub review: Option<ReviewTokens>,
    /// What [`forward`](Self::forward) runs: the fast path or the reference twin
    /// ([`with_kernel`](Self::with_kernel)).
    #[module(skip)]
    pub kernel: Kernel,
}

/// Per-forward data shared by every block: the token grid, the scan plans of the (at most 3)
/// distinct Rotary-Major Scan orders, and the TESA window plans.
pub struct BlockContext<'a, B: Backend> {
    /// Token grid `[t, h, w]`.
    pub grid: [usize; 3],
    /// `(order, plan)` pairs for the orders in use.
    pub plans: &'a [(ScanOrder, ScanPlan<B>)],
    /// TESA masks and bias indices per (grid, window, shift).
    pub windows: &'a mut WindowPlanCache<B>,
    /// `[B, L_text]` key-padding mask of the text (`true` = padded).
    pub text_mask: Option<Tensor<B, 2, Bool>>,
}

impl<B: Backend> WithKernel for MateBlock<B> {
    /// This block computing with `kernel`, its Mamba2 scans and cross-attention included.
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self.bimamba = self.bimamba.with_kernel(kernel);
        self.cross_attn = self.cross_attn.with_kernel(kernel);
        self
    }
}

impl<B: Backend> MateBlock<B> {
    /// The block: the fast path (scan plans and window plans of `ctx`), or, when built with
    /// [`Kernel::Reference`], its reference twin: the MA-branch by
    /// [`ma_branch_reference`](Self::ma_branch_reference), TESA by the dense
    /// [`WindowAttention::forward_reference`], cross-attention by matmul → softmax → matmul.
    ///
    /// # Shapes
    /// `x`: `[B, t·h·w, d_model]` (raster order), `cond`: `[B, d_model]`, `text`:
    /// `[B, L_text, d_text]` → `[B, t·h·w, d_model]`
    ///
    /// # Panics
    /// If no plan of `ctx` has this block's scan order, or on shape mismatches inside a component.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cond: Tensor<B, 2>,
        text: Tensor<B, 3>,
        ctx: &mut BlockContext<'_, B>,
    ) -> Tensor<B, 3> {
        if self.kernel.is_reference() {
            return self.forward_reference(x, cond, text, ctx.grid, ctx.text_mask.clone());
        }
        let m = self.adaln.forward(cond);
        let h = modulate(self.norm1.forward(x.clone()), m[0].clone(), m[1].clone());
        let plan = ctx
            .plans
            .iter()
            .find(|(o, _)| *o == self.scan_order)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("no scan plan for order {:?}", self.scan_order));
        let ma = self.ma_branch(h.clone(), ctx.grid, plan);
        let te = self.tesa.forward_sequence(h, ctx.grid, ctx.windows);
        let x = x + gate(ma + te, m[2].clone());
        let args = text_args(ctx.text_mask.clone());
        let x = x.clone() + self.cross_attn.forward_with(x, Some(text), args);
        let h = modulate(self.norm2.forward(x.clone()), m[3].clone(), m[4].clone());
        x + gate(self.mlp.forward(h), m[5].clone())
    }

    /// Reference twin of [`forward`](Self::forward), run by a block built with
    /// [`Kernel::Reference`]: the MA-branch by
    /// [`ma_branch_reference`](Self::ma_branch_reference), TESA by its dense
    /// [`WindowAttention::forward_reference`], cross-attention by matmul → softmax → matmul,
    /// whatever the block's [`Kernel`].
    ///
    /// # Shapes
    /// As [`forward`](Self::forward).
    fn forward_reference(
        &self,
        x: Tensor<B, 3>,
        cond: Tensor<B, 2>,
        text: Tensor<B, 3>,
        grid: [usize; 3],
        text_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let m = self.adaln.forward(cond);
        let h = modulate(self.norm1.forward(x.clone()), m[0].clone(), m[1].clone());
        let ma = self.ma_branch_reference(h.clone(), grid);
        let (te, _) = self
            .tesa
            .forward_reference(h.reshape([b, grid[0], grid[1], grid[2], d]));
        let x = x + gate(ma + te.reshape([b, l, d]), m[2].clone());
        let args = text_args(text_mask);
        let x = x.clone() + self.cross_attn.forward_reference(x, Some(text), args);
        let h = modulate(self.norm2.forward(x.clone()), m[3].clone(), m[4].clone());
        x + gate(self.mlp.forward(h), m[5].clone())
    }

    /// MA-branch: reorder the tokens into this layer's scan order (`plan`), prepend the review
    /// tokens to the forward and to the reversed sequence, run both Mamba2 directions (chunked
    /// SSD), drop the review outputs, flip the backward output back, merge, restore raster order.
    /// Without review tokens this is exactly `plan.restore(bimamba.forward(plan.apply(h)))`.
    ///
    /// # Shapes
    /// `h`: `[B, t·h·w, d_model]` in raster order → same, raster order
    ///
    /// # Panics
    /// If `plan` does not permute `t·h·w` tokens.
    pub fn ma_branch(&self, h: Tensor<B, 3>, grid: [usize; 3], plan: &ScanPlan<B>) -> Tensor<B, 3> {
        let scanned = plan.apply(h.clone());
        let Some(review) = &self.review else {
            return plan.restore(self.bimamba.forward(scanned));
        };
        let [_, n, _] = scanned.dims();
        let r = review.count(grid);
        let summary = review.summarize(h, grid);
        // The reversed sequences are copied (`contiguous`: row copies on flex, a no-op
        // elsewhere) so that the element-wise operations after them read contiguous memory.
        let fwd_in = ReviewTokens::prepend(summary.clone(), scanned.clone());
        let bwd_in = ReviewTokens::prepend(summary, contiguous(scanned.flip([1])));
        let y_f = contiguous(self.bimamba.mamba_fwd.forward(fwd_in).narrow(1, r, n));
        let y_b = contiguous(
            self.bimamba
                .mamba_bwd
                .forward(bwd_in)
                .narrow(1, r, n)
                .flip([1]),
        );
        plan.restore(merge(&self.bimamba, y_f, y_b))
    }

    /// Reference twin of [`ma_branch`](Self::ma_branch): the scan permutation, the reversal and
    /// the restore are explicit host-side gathers with the loop-built
    /// [`ScanOrder::permutation_reference`]; review tokens by
    /// [`ReviewTokens::summarize_reference`]; each Mamba2 direction as its per-token recurrence
    /// ([`vidgen_ssm::Mamba2::forward_reference`]).
    ///
    /// # Shapes
    /// As [`ma_branch`](Self::ma_branch).
    pub fn ma_branch_reference(&self, h: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 3> {
        let n = grid.iter().product::<usize>();
        let perm = self.scan_order.permutation_reference(grid);
        let reversed: Vec<usize> = perm.iter().rev().copied().collect();
        let (fwd_in, bwd_in) = (
            host_gather(h.clone(), &perm),
            host_gather(h.clone(), &reversed),
        );
        let (fwd_in, bwd_in, r) = match &self.review {
            Some(review) => {
                let summary = review.summarize_reference(h, grid);
                (
                    ReviewTokens::prepend(summary.clone(), fwd_in),
                    ReviewTokens::prepend(summary, bwd_in),
                    review.count(grid),
                )
            }
            None => (fwd_in, bwd_in, 0),
        };
        let y_f = self
            .bimamba
            .mamba_fwd
            .forward_reference(fwd_in)
            .narrow(1, r, n);
        let y_b = self
            .bimamba
            .mamba_bwd
            .forward_reference(bwd_in)
            .narrow(1, r, n);
        // Scan position i of the backward output holds raster token reversed[i] = perm[n-1-i].
        let y_b = host_gather(y_b, &(0..n).rev().collect::<Vec<_>>());
        let mut restore = vec![0; n];
        perm.iter().enumerate().for_each(|(i, &p)| restore[p] = i);
        host_gather(merge(&self.bimamba, y_f, y_b), &restore)
    }
}

/// Cross-attention arguments with the text's key-padding mask.
fn text_args<'a, B: Backend>(mask: Option<Tensor<B, 2, Bool>>) -> AttentionArgs<'a, B> {
    match mask {
        Some(m) => AttentionArgs::default().with_key_padding(m),
        None => AttentionArgs::default(),
    }
}

/// The merge of [`BiMamba2`] (`Sum`, `Mean`, `ConcatLinear`), for the two directions run
/// separately (with review tokens each direction has its own prefix).
fn merge<B: Backend>(bi: &BiMamba2<B>, y_f: Tensor<B, 3>, y_b: Tensor<B, 3>) -> Tensor<B, 3> {
    match (bi.merge, &bi.merge_proj) {
        (BiMerge::Sum, _) => y_f + y_b,
        (BiMerge::Mean, _) => (y_f + y_b) * 0.5,
        (BiMerge::ConcatLinear, Some(proj)) => concat_linear(proj, y_f, y_b),
        (BiMerge::ConcatLinear, None) => panic!("BiMamba2: ConcatLinear merge without merge_proj"),
    }
}

fn concat_linear<B: Backend>(
    proj: &Linear<B>,
    y_f: Tensor<B, 3>,
    y_b: Tensor<B, 3>,
) -> Tensor<B, 3> {
    proj.forward(Tensor::cat(vec![y_f, y_b], 2))
}

/// `out[:, i] = x[:, index[i]]`, copied element by element on the host.
fn host_gather<B: Backend>(x: Tensor<B, 3>, index: &[usize]) -> Tensor<B, 3> {
    let [b, l, c] = x.dims();
    let device = x.device();
    let values = x.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let mut out = Vec::with_capacity(b * index.len() * c);
    for batch in 0..b {
        for &src in index {
            assert!(src < l, "host_gather: index {src} outside length {l}");
            let base = (batch * l + src) * c;
            out.extend_from_slice(&values[base..base + c]);
        }
    }
    Tensor::from_data(TensorData::new(out, [b, index.len(), c]), &device)
}
