//! One FIT block (Snap Video Sec. 3.4, Fig. 3b): conditioning read → group-wise read → latent
//! self-attention → group-wise write, with a feed-forward after each read/write and after each
//! latent self-attention. All sub-layers are pre-norm residuals.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};
use vidgen_attention::{
    AttentionArgs, MultiHeadAttention, MultiHeadAttentionConfig, attention_reference,
};
use vidgen_nn::{Kernel, Mlp, MlpConfig, WithKernel};

/// Widths and counts of one [`FitBlock`] (derived from
/// [`SnapFitConfig`](super::SnapFitConfig), which validates them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockDims {
    pub d_patch: usize,
    pub d_latent: usize,
    pub n_heads: usize,
    pub n_latent_layers: usize,
    pub mlp_ratio: f64,
    pub norm_eps: f64,
}

impl BlockDims {
    fn norm<B: Backend>(&self, d: usize, device: &B::Device) -> LayerNorm<B> {
        LayerNormConfig::new(d)
            .with_epsilon(self.norm_eps)
            .init(device)
    }

    fn attention<B: Backend>(
        &self,
        d: usize,
        d_context: Option<usize>,
        device: &B::Device,
    ) -> MultiHeadAttention<B> {
        MultiHeadAttentionConfig::new(d, self.n_heads)
            .with_d_context(d_context)
            .init(device)
            .expect("SnapFitConfig::init validated the attention widths")
    }

    fn feed_forward<B: Backend>(&self, d: usize, device: &B::Device) -> FeedForward<B> {
        let hidden = ((d as f64 * self.mlp_ratio).round() as usize).max(1);
        FeedForward {
            norm: self.norm(d, device),
            mlp: MlpConfig::new(d, hidden)
                .init(device)
                .expect("SnapFitConfig::init validated the MLP widths"),
        }
    }

    /// Builds a block with fresh random weights.
    pub(crate) fn init<B: Backend>(&self, device: &B::Device) -> FitBlock<B> {
        let (dp, dl) = (self.d_patch, self.d_latent);
        let latent_layers = (0..self.n_latent_layers)
            .map(|_| LatentLayer {
                norm: self.norm(dl, device),
                attn: self.attention(dl, None, device),
                ff: self.feed_forward(dl, device),
            })
            .collect();
        FitBlock {
            cond_norm: self.norm(dl, device),
            cond_read: self.attention(dl, Some(dl), device),
            cond_ff: self.feed_forward(dl, device),
            read_norm_latents: self.norm(dl, device),
            read_norm_patches: self.norm(dp, device),
            read: self.attention(dl, Some(dp), device),
            read_ff: self.feed_forward(dl, device),
            latent_layers,
            write_norm_patches: self.norm(dp, device),
            write_norm_latents: self.norm(dl, device),
            write: self.attention(dp, Some(dl), device),
            write_ff: self.feed_forward(dp, device),
        }
    }
}

/// Pre-norm residual feed-forward `x + mlp(norm(x))` (GELU-tanh [`Mlp`]).
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// LayerNorm before the MLP.
    pub norm: LayerNorm<B>,
    /// `d → mlp_ratio·d → d`.
    pub mlp: Mlp<B>,
}

impl<B: Backend> FeedForward<B> {
    /// `x + mlp(norm(x))`.
    ///
    /// # Shapes
    /// `x`: `[.., d]` → `[.., d]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.clone() + self.mlp.forward(self.norm.forward(x))
    }
}

/// One latent self-attention layer: `z ← z + attn(norm(z))`, then a [`FeedForward`].
#[derive(Module, Debug)]
pub struct LatentLayer<B: Backend> {
    /// LayerNorm before the attention.
    pub norm: LayerNorm<B>,
    /// Self-attention over all latents of a sample (every group).
    pub attn: MultiHeadAttention<B>,
    /// Feed-forward after the attention.
    pub ff: FeedForward<B>,
}

/// A FIT block. With `z` the latents, `p` the patch tokens and `c` the conditioning tokens:
///
/// 1. conditioning read: `z ← z + xattn(norm(z), c)`, `z ← ff(z)`;
/// 2. group-wise read: `z_g ← z_g + xattn(norm(z_g), norm(p_g))` per group `g`, `z ← ff(z)`;
/// 3. `n_latent_layers` × (`z ← z + attn(norm(z))`, `z ← ff(z)`) over all latents — the only
///    place where information moves between groups;
/// 4. group-wise write: `p_g ← p_g + xattn(norm(p_g), norm(z_g))`, `p ← ff(p)`.
///
/// Snap Video replaces FIT's local patch self-attention by the feed-forwards after each read and
/// write (Sec. 3.4).
#[derive(Module, Debug)]
pub struct FitBlock<B: Backend> {
    /// LayerNorm of the latents before the conditioning read.
    pub cond_norm: LayerNorm<B>,
    /// Cross-attention latents ← conditioning tokens.
    pub cond_read: MultiHeadAttention<B>,
    /// Feed-forward after the conditioning read.
    pub cond_ff: FeedForward<B>,
    /// LayerNorm of the latents (queries) of the group-wise read.
    pub read_norm_latents: LayerNorm<B>,
    /// LayerNorm of the patch tokens (keys/values) of the group-wise read.
    pub read_norm_patches: LayerNorm<B>,
    /// Cross-attention latents ← patches of the same group (`d_context = d_patch`).
    pub read: MultiHeadAttention<B>,
    /// Feed-forward on the latents after the read.
    pub read_ff: FeedForward<B>,
    /// Latent self-attention layers.
    pub latent_layers: Vec<LatentLayer<B>>,
    /// LayerNorm of the patch tokens (queries) of the group-wise write.
    pub write_norm_patches: LayerNorm<B>,
    /// LayerNorm of the latents (keys/values) of the group-wise write.
    pub write_norm_latents: LayerNorm<B>,
    /// Cross-attention patches ← latents of the same group (`d_context = d_latent`).
    pub write: MultiHeadAttention<B>,
    /// Feed-forward on the patch tokens after the write.
    pub write_ff: FeedForward<B>,
}

/// Attention arguments with an optional key-padding mask.
fn args<'a, B: Backend>(padding: Option<Tensor<B, 2, Bool>>) -> AttentionArgs<'a, B> {
    match padding {
        Some(m) => AttentionArgs::default().with_key_padding(m),
        None => AttentionArgs::default(),
    }
}

/// Cross-attention through [`attention_reference`] with a full `[Lq, Lk]` mask (`true` = masked),
/// broadcast over batch and heads.
fn cross_reference<B: Backend>(
    attn: &MultiHeadAttention<B>,
    x: Tensor<B, 3>,
    context: Tensor<B, 3>,
    mask: Tensor<B, 2, Bool>,
) -> Tensor<B, 3> {
    let (q, k, v) = attn.project(x, Some(context), None);
    let [b, h, lq, _] = q.dims();
    let lk = k.dims()[2];
    let mask = mask.reshape([1, 1, lq, lk]).expand([b, h, lq, lk]);
    let y = attention_reference(q, k, v, Some(mask), false, None);
    let [_, _, l, dh] = y.dims();
    attn.proj.forward(y.swap_dims(1, 2).reshape([b, l, h * dh]))
}

impl<B: Backend> WithKernel for FitBlock<B> {
    /// This block's attentions computing with `kernel` (the group-wise read and write are the
    /// model's choice of layout: see [`SnapFit::with_kernel`](super::SnapFit::with_kernel)).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.cond_read = self.cond_read.with_kernel(kernel);
        self.read = self.read.with_kernel(kernel);
        self.write = self.write.with_kernel(kernel);
        self.latent_layers = self
            .latent_layers
            .into_iter()
            .map(|mut layer| {
                layer.attn = layer.attn.with_kernel(kernel);
                layer
            })
            .collect();
        self
    }
}

impl<B: Backend> FitBlock<B> {
    /// Step 1, the conditioning read.
    fn read_conditioning(
        &self,
        latents: Tensor<B, 3>,
        cond: Tensor<B, 3>,
        padding: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let q = self.cond_norm.forward(latents.clone());
        let y = self.cond_read.forward_with(q, Some(cond), args(padding));
        self.cond_ff.forward(latents + y)
    }

    /// Step 3, the latent self-attention layers.
    fn compute(&self, mut latents: Tensor<B, 3>) -> Tensor<B, 3> {
        for layer in &self.latent_layers {
            let x = layer.norm.forward(latents.clone());
            let y = layer.attn.forward(x);
            latents = layer.ff.forward(latents + y);
        }
        latents
    }

    /// The block on grouped patch tokens, group-wise attention batched over `B·G`.
    ///
    /// # Shapes
    /// `patches`: `[B·G, P, d_patch]` (see [`group_patches`](super::group_patches)),
    /// `latents`: `[B, G·n, d_latent]` (group-major), `cond`: `[B, Lc, d_latent]`,
    /// `cond_padding`: `[B, Lc]` (`true` = padded) → (`patches`, `latents`) of the same shapes
    ///
    /// # Panics
    /// If `B·G` is not a multiple of `B` or `G·n` of `G`.
    pub fn forward(
        &self,
        patches: Tensor<B, 3>,
        latents: Tensor<B, 3>,
        cond: Tensor<B, 3>,
        cond_padding: Option<Tensor<B, 2, Bool>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [b, gn, dl] = latents.dims();
        let bg = patches.dims()[0];
        assert!(
            bg.is_multiple_of(b) && gn.is_multiple_of(bg / b),
            "FitBlock: {bg} patch groups and {gn} latents for batch {b}"
        );
        let n = gn / (bg / b);
        let latents = self.read_conditioning(latents, cond, cond_padding);
        // Group-wise read: [B, G·n, D] → [B·G, n, D] is a free reshape (group-major latents).
        let z = latents.reshape([bg, n, dl]);
        let ctx = self.read_norm_patches.forward(patches.clone());
        let y = self
            .read
            .forward_cross(self.read_norm_latents.forward(z.clone()), ctx);
        let latents = self.read_ff.forward(z + y).reshape([b, gn, dl]);
        let latents = self.compute(latents);
        // Group-wise write.
        let ctx = self
            .write_norm_latents
            .forward(latents.clone().reshape([bg, n, dl]));
        let y = self
            .write
            .forward_cross(self.write_norm_patches.forward(patches.clone()), ctx);
        (self.write_ff.forward(patches + y), latents)
    }

    /// Reference twin of [`forward`](Self::forward), what a model built with
    /// [`Kernel::Reference`] runs: patch tokens stay in raster order and the group-wise
    /// read/write are full cross-attentions through [`attention_reference`] with a
    /// block-diagonal mask that hides every patch of another group; the conditioning read and
    /// the latent self-attention by the block's kernel.
    ///
    /// # Shapes
    /// `patches`: `[B, L, d_patch]` (raster order), `latents`: `[B, G·n, d_latent]`,
    /// `read_mask`: `[G·n, L]` (`true` where the latent's group differs from the patch's; the
    /// write uses its transpose); others as [`forward`](Self::forward)
    pub(crate) fn forward_masked(
        &self,
        patches: Tensor<B, 3>,
        latents: Tensor<B, 3>,
        cond: Tensor<B, 3>,
        cond_padding: Option<Tensor<B, 2, Bool>>,
        read_mask: Tensor<B, 2, Bool>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let latents = self.read_conditioning(latents, cond, cond_padding);
        let ctx = self.read_norm_patches.forward(patches.clone());
        let q = self.read_norm_latents.forward(latents.clone());
        let y = cross_reference(&self.read, q, ctx, read_mask.clone());
        let latents = self.compute(self.read_ff.forward(latents + y));
        let ctx = self.write_norm_latents.forward(latents.clone());
        let q = self.write_norm_patches.forward(patches.clone());
        let y = cross_reference(&self.write, q, ctx, read_mask.transpose());
        (self.write_ff.forward(patches + y), latents)
    }
}
