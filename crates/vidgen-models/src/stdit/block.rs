//! The parts of [`Stdit`](super::Stdit): the spatial and temporal STDiT3 blocks, the caption
//! embedder and the final layer, with the per-frame timestep-0 selection of Open-Sora's
//! `t_mask_select`.

use super::{NORM_EPS, StditConfig};
use crate::error::ConfigError;
use crate::error::ModelError;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};
use vidgen_attention::{
    AttentionArgs, AttentionError, MultiHeadAttention, MultiHeadAttentionConfig, SpatialAttention,
    TemporalAttention,
};
use vidgen_nn::{
    Kernel, LoraConfig, Mlp, MlpConfig, ScaleShiftTable, ScaleShiftTableConfig, WithKernel,
    WithLora, gate, modulate,
};

pub(crate) use crate::error::component;

/// LayerNorm over the last axis without affine parameters (upstream
/// `LayerNorm(D, elementwise_affine=False, eps=1e-6)`): `(x − μ)/√(σ² + ε)`, biased variance.
pub(crate) fn layer_norm<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean) / (var + NORM_EPS).sqrt()
}

/// Everything a block needs besides its input tokens.
#[derive(Debug, Clone)]
pub(crate) struct BlockInputs<B: Backend> {
    /// Packed adaLN-single vector `t_block(c)`, `[B, 6D]`.
    pub t_mlp: Tensor<B, 2>,
    /// The same at timestep 0, when there are conditioning frames.
    pub t0_mlp: Option<Tensor<B, 2>>,
    /// `[B, N, D]`, `true` on tokens of conditioning frames.
    pub token_mask: Option<Tensor<B, 3, Bool>>,
    /// Projected text `[B, L, D]`.
    pub text: Tensor<B, 3>,
    /// `[B, L]` key-padding mask, `true` = padding.
    pub text_pad: Option<Tensor<B, 2, Bool>>,
    /// Token frames `T`.
    pub frames: usize,
    /// Tokens per frame `S`.
    pub spatial: usize,
}

/// The six modulation vectors at `t` and, for conditioning frames, at timestep 0.
struct Modulation<B: Backend> {
    at_t: Vec<Tensor<B, 2>>,
    at_zero: Option<Vec<Tensor<B, 2>>>,
    mask: Option<Tensor<B, 3, Bool>>,
}

impl<B: Backend> Modulation<B> {
    fn new(table: &ScaleShiftTable<B>, inputs: &BlockInputs<B>) -> Self {
        Self {
            at_t: table.forward(inputs.t_mlp.clone()),
            at_zero: inputs.t0_mlp.clone().map(|t0| table.forward(t0)),
            mask: inputs.token_mask.clone(),
        }
    }

    /// `f(vectors)` per token: at timestep 0 on conditioning frames, at `t` elsewhere.
    fn select(&self, f: impl Fn(&[Tensor<B, 2>]) -> Tensor<B, 3>) -> Tensor<B, 3> {
        let y = f(&self.at_t);
        match (&self.at_zero, &self.mask) {
            (Some(zero), Some(mask)) => y.mask_where(mask.clone(), f(zero)),
            _ => y,
        }
    }

    /// `t2i_modulate(norm, shift_k, scale_k)`.
    fn modulate(&self, norm: &Tensor<B, 3>, shift: usize) -> Tensor<B, 3> {
        self.select(|v| modulate(norm.clone(), v[shift].clone(), v[shift + 1].clone()))
    }

    /// `gate_k · y`.
    fn gate(&self, y: &Tensor<B, 3>, index: usize) -> Tensor<B, 3> {
        self.select(|v| gate(y.clone(), v[index].clone()))
    }
}

/// The residual skeleton shared by both block kinds; `attn` is the self-attention.
fn block_forward<B: Backend>(
    x: Tensor<B, 3>,
    parts: (&ScaleShiftTable<B>, &MultiHeadAttention<B>, &Mlp<B>),
    inputs: &BlockInputs<B>,
    attn: impl FnOnce(Tensor<B, 3>) -> Result<Tensor<B, 3>, ModelError>,
) -> Result<Tensor<B, 3>, ModelError> {
    let (table, cross_attn, mlp) = parts;
    let m = Modulation::new(table, inputs);
    // 1. self-attention on modulated tokens, gated residual
    let y = attn(m.modulate(&layer_norm(x.clone()), 0))?;
    let x = x + m.gate(&y, 2);
    // 2. cross-attention to the text (no modulation, as upstream)
    let mut args = AttentionArgs::default();
    if let Some(pad) = &inputs.text_pad {
        args = args.with_key_padding(pad.clone());
    }
    let context = Some(inputs.text.clone());
    let x = x.clone() + cross_attn.forward_with(x, context, args);
    // 3. MLP on modulated tokens, gated residual
    let y = mlp.forward(m.modulate(&layer_norm(x.clone()), 3));
    Ok(x + m.gate(&y, 5))
}

/// Cross-attention, MLP and scale-shift table of one block.
type BlockParts<B> = (MultiHeadAttention<B>, Mlp<B>, ScaleShiftTable<B>);

/// Cross-attention, MLP and table of one block (upstream `STDiT3Block` minus `attn`).
fn block_parts<B: Backend>(
    config: &StditConfig,
    zero_out: bool,
    device: &B::Device,
) -> Result<BlockParts<B>, ModelError> {
    let d = config.d_model;
    let mut cross_attn = MultiHeadAttentionConfig::new(d, config.n_heads)
        .with_d_context(Some(d))
        .with_qk_norm(config.cross_qk_norm)
        .with_qk_norm_eps(config.qk_norm_eps)
        .init(device)
        .map_err(component("cross_attn"))?;
    let mut mlp = MlpConfig::new(d, config.mlp_hidden())
        .init(device)
        .map_err(component("mlp"))?;
    let table = ScaleShiftTableConfig::new(d)
        .init(device)
        .map_err(component("scale_shift_table"))?;
    if zero_out {
        zero_weight(&mut cross_attn.proj, device);
        zero_weight(&mut mlp.fc2, device);
    }
    Ok((cross_attn, mlp, table))
}

/// Sets a linear layer's weight to zero (upstream `nn.init.constant_(weight, 0)`).
fn zero_weight<B: Backend>(linear: &mut Linear<B>, device: &B::Device) {
    let dims = linear.weight.dims();
    linear.weight = Param::from_tensor(Tensor::zeros(dims, device));
}

/// The self-attention an [`StditBlock`] mixes its tokens with: within each frame
/// ([`SpatialAttention`]) or across the frames at each position, with temporal RoPE
/// ([`TemporalAttention`]).
pub trait FrameAttention<B: Backend>: WithKernel + WithLora {
    /// The part named in errors.
    const PART: &'static str;

    /// Builds the attention of `config`.
    ///
    /// # Errors
    /// [`ModelError::Component`] naming [`Self::PART`] for an invalid attention config.
    fn build(config: &StditConfig, device: &B::Device) -> Result<Self, ModelError>;

    /// Whether the block's output projections start at zero (upstream: the temporal blocks).
    fn zero_init(config: &StditConfig) -> bool;

    /// Self-attention over `[B, T·S, D]` tokens, `T = frames` frames of `S = spatial` tokens.
    ///
    /// # Errors
    /// The attention's shape errors.
    fn attend(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError>;
}

impl<B: Backend> FrameAttention<B> for SpatialAttention<B> {
    const PART: &'static str = "spatial attn";

    fn build(config: &StditConfig, device: &B::Device) -> Result<Self, ModelError> {
        config
            .attention()
            .init_spatial(device)
            .map_err(component(Self::PART))
    }

    fn zero_init(_: &StditConfig) -> bool {
        false
    }

    fn attend(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        self.forward(x, frames, spatial)
    }
}

impl<B: Backend> FrameAttention<B> for TemporalAttention<B> {
    const PART: &'static str = "temporal attn";

    fn build(config: &StditConfig, device: &B::Device) -> Result<Self, ModelError> {
        config
            .attention()
            .init_temporal(device)
            .map_err(component(Self::PART))
    }

    fn zero_init(config: &StditConfig) -> bool {
        config.zero_init_temporal
    }

    fn attend(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        self.forward(x, frames, spatial)
    }
}

/// An STDiT3 block: self-attention `A` ([`FrameAttention`]: within frames or across them),
/// cross-attention to text, MLP, all with adaLN-single modulation. Upstream's spatial and
/// temporal blocks are [`SpatialStditBlock`] and [`TemporalStditBlock`]; both have the same
/// parameter names.
#[derive(Module, Debug)]
pub struct StditBlock<B: Backend, A> {
    /// Self-attention within or across frames.
    pub attn: A,
    /// Cross-attention from tokens to the projected text (`q_linear`, `kv_linear`, `proj`).
    pub cross_attn: MultiHeadAttention<B>,
    /// GELU(tanh) MLP.
    pub mlp: Mlp<B>,
    /// This block's `[6, D]` learnt offsets.
    pub scale_shift_table: ScaleShiftTable<B>,
}

/// A spatial STDiT3 block: self-attention within each frame.
pub type SpatialStditBlock<B> = StditBlock<B, SpatialAttention<B>>;

/// A temporal STDiT3 block: self-attention across frames (temporal RoPE).
pub type TemporalStditBlock<B> = StditBlock<B, TemporalAttention<B>>;

impl<B: Backend, A: FrameAttention<B>> WithKernel for StditBlock<B, A> {
    /// This block's self- and cross-attention computing with `kernel`.
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.attn = self.attn.with_kernel(kernel);
        self.cross_attn = self.cross_attn.with_kernel(kernel);
        self
    }
}

impl<B: Backend, A: FrameAttention<B>> WithLora for StditBlock<B, A> {
    /// Adapters on the targeted linears of its self-attention, cross-attention and MLP.
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.attn = self.attn.attach_lora(config);
        self.cross_attn = self.cross_attn.attach_lora(config);
        self.mlp = self.mlp.attach_lora(config);
        self
    }

    fn merge_lora(mut self) -> Self {
        self.attn = self.attn.merge_lora();
        self.cross_attn = self.cross_attn.merge_lora();
        self.mlp = self.mlp.merge_lora();
        self
    }
}

impl<B: Backend, A: FrameAttention<B>> StditBlock<B, A> {
    pub(crate) fn new(config: &StditConfig, device: &B::Device) -> Result<Self, ModelError> {
        let (cross_attn, mlp, scale_shift_table) =
            block_parts(config, A::zero_init(config), device)?;
        Ok(Self {
            attn: A::build(config, device)?,
            cross_attn,
            mlp,
            scale_shift_table,
        })
    }

    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        inputs: &BlockInputs<B>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let parts = (&self.scale_shift_table, &self.cross_attn, &self.mlp);
        let (frames, spatial) = (inputs.frames, inputs.spatial);
        block_forward(x, parts, inputs, |y| {
            self.attn
                .attend(y, frames, spatial)
                .map_err(component(A::PART))
        })
    }
}

/// Text projection (upstream `CaptionEmbedder`): `y_proj` MLP `d_text → D → D` and the learnt
/// null caption `y_embedding` used as the unconditional text of classifier-free guidance.
#[derive(Module, Debug)]
pub struct CaptionEmbedder<B: Backend> {
    /// GELU(tanh) MLP `d_text → D → D`.
    pub y_proj: Mlp<B>,
    /// `[text_max_len, d_text]`, initialised `randn / √d_text`.
    pub y_embedding: Param<Tensor<B, 2>>,
}

impl<B: Backend> CaptionEmbedder<B> {
    pub(crate) fn new(config: &StditConfig, device: &B::Device) -> Result<Self, ModelError> {
        let y_proj = MlpConfig::new(config.d_text, config.d_model)
            .with_d_out(Some(config.d_model))
            .init(device)
            .map_err(component("y_embedder.y_proj"))?;
        let std = 1.0 / (config.d_text as f64).sqrt();
        let y_embedding = Initializer::Normal { mean: 0.0, std }
            .init([config.text_max_len, config.d_text], device);
        Ok(Self {
            y_proj,
            y_embedding,
        })
    }

    /// Projects text features.
    ///
    /// # Shapes
    /// `text`: `[B, L, d_text]` → `[B, L, D]`
    pub fn forward(&self, text: Tensor<B, 3>) -> Tensor<B, 3> {
        self.y_proj.forward(text)
    }

    /// The null caption's first `len` rows for each of `batch` samples (upstream `null(n)`).
    ///
    /// # Shapes
    /// → `[batch, len, d_text]`
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::OutOfDomain`) naming `len` if it exceeds `text_max_len`.
    pub fn null(&self, batch: usize, len: usize) -> Result<Tensor<B, 3>, ModelError> {
        let [max_len, d_text] = self.y_embedding.dims();
        if len > max_len {
            return Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "len",
                value: len as f64,
                requirement: "<= text_max_len (rows of y_embedding)",
            }));
        }
        let rows = self.y_embedding.val().narrow(0, 0, len);
        Ok(rows.reshape([1, len, d_text]).expand([batch, len, d_text]))
    }
}

/// Final layer (upstream `T2IFinalLayer`): `linear(t2i_modulate(LN(x), shift, scale))` with
/// `(shift, scale) = scale_shift_table + c`.
#[derive(Module, Debug)]
pub struct FinalLayer<B: Backend> {
    /// `D → pt·ph·pw·C_out`.
    pub linear: Linear<B>,
    /// `[2, D]` learnt offsets.
    pub scale_shift_table: ScaleShiftTable<B>,
    /// See [`StditConfig::final_t0_norm_modulated`].
    pub t0_norm_modulated: bool,
}

impl<B: Backend> FinalLayer<B> {
    pub(crate) fn new(
        d: usize,
        out: usize,
        t0_norm_modulated: bool,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            linear: LinearConfig::new(d, out).init(device),
            scale_shift_table: ScaleShiftTableConfig::new(d)
                .with_n_chunks(2)
                .init(device)
                .map_err(component("final_layer.scale_shift_table"))?,
            t0_norm_modulated,
        })
    }

    /// Tokens of conditioning frames (`token_mask`) are modulated with `c0` instead of `c`:
    /// `modulate(LN(y_t), c0)` where `y_t = modulate(LN(x), c)` is the tokens modulated at `t`
    /// (upstream, [`t0_norm_modulated`](Self::t0_norm_modulated)), or `modulate(LN(x), c0)`.
    ///
    /// # Shapes
    /// `x`: `[B, N, D]`, `c`, `c0`: `[B, D]`, `token_mask`: `[B, N, D]` → `[B, N, pt·ph·pw·C_out]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        c: Tensor<B, 2>,
        c0: Option<Tensor<B, 2>>,
        token_mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        let modulated = |norm: Tensor<B, 3>, c: Tensor<B, 2>| {
            let v = self
                .scale_shift_table
                .forward(Tensor::cat(vec![c.clone(), c], 1));
            modulate(norm, v[0].clone(), v[1].clone())
        };
        let norm = layer_norm(x);
        let mut y = modulated(norm.clone(), c);
        if let (Some(c0), Some(mask)) = (c0, token_mask) {
            let base = if self.t0_norm_modulated {
                layer_norm(y.clone())
            } else {
                norm
            };
            y = y.mask_where(mask, modulated(base, c0));
        }
        self.linear.forward(y)
    }
}
