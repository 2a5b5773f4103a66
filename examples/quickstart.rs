//! Quickstart: a small DiT-style stack built from vidgen-nn layers, run forward over a random video
//! latent, printing shapes and time.
//!
//! ```text
//! cargo run --release --example quickstart                   # CPU (flex)
//! cargo run --release --example quickstart --features cuda   # NVIDIA GPU
//! cargo run --release --example quickstart --features wgpu   # any GPU through wgpu
//! ```
//!
//! Data flow: latent `[B, C, T, H, W]` → 3D patch embedding + 3D sin-cos positions → N blocks of
//! (adaLN-Zero → self-attention with QK-norm and 3D RoPE → gated residual; adaLN-Zero → GELU-tanh
//! MLP → gated residual), conditioned on a timestep embedding → adaLN final layer → unpatchify
//! back to `[B, C, T, H, W]`.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor, backend::Backend};
use std::time::Instant;
use vidgen::nn::*;

#[cfg(feature = "cuda")]
type B = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type B = burn::backend::Wgpu;
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
type B = burn::backend::Flex;

/// Sizes of the demo network.
const D_MODEL: usize = 128;
const N_HEADS: usize = 4;
const DEPTH: usize = 4;
const LATENT: [usize; 5] = [1, 4, 4, 16, 16]; // [B, C, T, H, W]
const PATCH: [usize; 3] = [1, 2, 2];

/// One DiT block: adaLN-Zero, self-attention (QK-norm, 3D RoPE), GELU-tanh MLP.
#[derive(Module, Debug)]
struct DitBlock<B: Backend> {
    norm1: LayerNorm<B>,
    qkv: Linear<B>,
    qk_norm: QkNorm<B>,
    proj: Linear<B>,
    norm2: LayerNorm<B>,
    mlp: Mlp<B>,
    adaln: AdaLnModulation<B>,
}

impl<B: Backend> DitBlock<B> {
    fn new(device: &B::Device) -> Result<Self, NnError> {
        let norm = LayerNormConfig::new(D_MODEL).with_epsilon(1e-6);
        Ok(Self {
            norm1: norm.init(device),
            qkv: LinearConfig::new(D_MODEL, 3 * D_MODEL).init(device),
            qk_norm: QkNormConfig::new(D_MODEL, N_HEADS).init(device)?,
            proj: LinearConfig::new(D_MODEL, D_MODEL).init(device),
            norm2: norm.init(device),
            mlp: MlpConfig::new(D_MODEL, 4 * D_MODEL).init(device)?,
            adaln: AdaLnModulationConfig::new(D_MODEL, D_MODEL).init(device)?,
        })
    }

    fn attend(&self, x: Tensor<B, 3>, rope: &RopeTables<B>) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let heads = |t: Tensor<B, 3>| t.reshape([b, l, N_HEADS, d / N_HEADS]).swap_dims(1, 2);
        let qkv = self.qkv.forward(x).chunk(3, 2);
        let (q, k, v) = (
            heads(qkv[0].clone()),
            heads(qkv[1].clone()),
            heads(qkv[2].clone()),
        );
        let (q, k) = self.qk_norm.forward(q, k);
        let (q, k) = (rope.apply(q), rope.apply(k));
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        self.proj.forward(out.swap_dims(1, 2).reshape([b, l, d]))
    }

    fn forward(&self, x: Tensor<B, 3>, cond: Tensor<B, 2>, rope: &RopeTables<B>) -> Tensor<B, 3> {
        let m = self.adaln.forward(cond);
        let h = modulate(self.norm1.forward(x.clone()), m[0].clone(), m[1].clone());
        let x = x + gate(self.attend(h, rope), m[2].clone());
        let h = modulate(self.norm2.forward(x.clone()), m[3].clone(), m[4].clone());
        x + gate(self.mlp.forward(h), m[5].clone())
    }
}

/// Patch embedding, timestep conditioning, blocks and the adaLN final layer.
#[derive(Module, Debug)]
struct TinyDit<B: Backend> {
    patch: PatchEmbed3d<B>,
    t_embed: TimestepEmbedder<B>,
    blocks: Vec<DitBlock<B>>,
    final_norm: LayerNorm<B>,
    final_adaln: AdaLnModulation<B>,
    final_linear: Linear<B>,
}

impl<B: Backend> TinyDit<B> {
    fn new(device: &B::Device) -> Result<Self, NnError> {
        let channels = LATENT[1];
        Ok(Self {
            patch: PatchEmbed3dConfig::new(channels, D_MODEL)
                .with_patch_size(PATCH)
                .init(device)?,
            t_embed: TimestepEmbedderConfig::new(D_MODEL).init(device)?,
            blocks: (0..DEPTH)
                .map(|_| DitBlock::new(device))
                .collect::<Result<_, _>>()?,
            final_norm: LayerNormConfig::new(D_MODEL)
                .with_epsilon(1e-6)
                .init(device),
            final_adaln: AdaLnModulationConfig::new(D_MODEL, D_MODEL)
                .with_n_chunks(2)
                .init(device)?,
            final_linear: LinearConfig::new(D_MODEL, PATCH.iter().product::<usize>() * channels)
                .init(device),
        })
    }

    /// `latent`: `[B, C, T, H, W]`, `t`: `[B]` → prediction `[B, C, T, H, W]`.
    fn forward(&self, latent: Tensor<B, 5>, t: Tensor<B, 1>) -> Result<Tensor<B, 5>, NnError> {
        let [_, _, tt, hh, ww] = latent.dims();
        let device = latent.device();
        let grid = self.patch.grid([tt, hh, ww])?;
        let pos = sincos_3d::<B>(D_MODEL, grid, 1.0, 1.0, &device)?;
        let rope =
            Rope3dConfig::new(D_MODEL / N_HEADS)
                .init()?
                .tables::<B>(grid, [0, 0, 0], &device);
        let mut x = self.patch.try_forward(latent)? + pos.unsqueeze::<3>();
        let cond = self.t_embed.forward(t);
        for block in &self.blocks {
            x = block.forward(x, cond.clone(), &rope);
        }
        let m = self.final_adaln.forward(cond);
        let x = modulate(self.final_norm.forward(x), m[0].clone(), m[1].clone());
        Ok(unpatchify_3d(self.final_linear.forward(x), grid, PATCH))
    }
}

fn main() -> Result<(), NnError> {
    let device = Default::default();
    let model = TinyDit::<B>::new(&device)?;
    println!("backend: {}", std::any::type_name::<B>());
    println!(
        "TinyDit: d_model {D_MODEL}, {N_HEADS} heads, {DEPTH} blocks, {} parameters",
        model.num_params()
    );

    let latent = Tensor::<B, 5>::random(LATENT, Distribution::Normal(0.0, 1.0), &device);
    let t = Tensor::<B, 1>::from_floats([500.0], &device);
    println!("input latent  [B, C, T, H, W] = {:?}", latent.dims());

    // The first pass includes one-off setup (allocations, kernel compilation on GPU backends).
    for run in ["first", "second"] {
        let start = Instant::now();
        let out = model.forward(latent.clone(), t.clone())?;
        let stats = out.clone().abs().mean().into_scalar();
        let elapsed = start.elapsed();
        println!(
            "{run} forward: output {:?}, mean |x| = {stats:.4}, {:.1} ms",
            out.dims(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
