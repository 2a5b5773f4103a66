//! 2D KL autoencoder with diffusers' `AutoencoderKL` architecture and state-dict key names
//! (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", sec. 3.1
//! and appendix G: the KL-regularised first-stage model).
//!
//! `encode` maps an image to the diagonal Gaussian posterior `q(z|x)` ([`DiagonalGaussian`]);
//! `decode` maps a latent back. The module tree mirrors diffusers' keys (`encoder.down_blocks.{i}.
//! resnets.{j}.norm1`, `decoder.up_blocks.{i}.upsamplers.0.conv`, `quant_conv`, …) so
//! [`crate::load`] needs only one small remapping table (`to_out.0` → `to_out`).
//! Divergences from diffusers: no tiling/slicing here (see [`crate::streaming`]), the sampling
//! noise is an argument, `latents_mean`/`latents_std` are not modelled.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Distribution, Tensor};
//! use vidgen_vae::kl::AutoencoderKlConfig;
//!
//! let device = Default::default();
//! let vae = AutoencoderKlConfig::new()
//!     .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
//!     .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2])
//!     .with_block_out_channels(vec![8, 16])
//!     .with_norm_num_groups(4)
//!     .init::<Flex>(&device)
//!     .unwrap();
//! let x = Tensor::<Flex, 4>::random([1, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
//! let posterior = vae.encode(x);
//! let noise = Tensor::random([1, 4, 8, 8], Distribution::Normal(0.0, 1.0), &device);
//! let z = posterior.sample(noise);
//! assert_eq!(z.dims(), [1, 4, 8, 8]);
//! let latent = vae.scale_latents(z); // what the diffusion model sees
//! let image = vae.decode(vae.unscale_latents(latent));
//! assert_eq!(image.dims(), [1, 3, 16, 16]);
//! ```

mod attention;
mod blocks;
mod posterior;
mod resnet;

pub use attention::MidBlockAttention;
pub use blocks::{Decoder, DownEncoderBlock2d, Encoder, UNetMidBlock2d, UpDecoderBlock2d};
pub use posterior::{DiagonalGaussian, LOGVAR_MAX, LOGVAR_MIN};
pub use resnet::{
    Downsample2d, ResnetBlock2d, Upsample2d, VAE_NORM_EPS, upsample_nearest2x,
    upsample_nearest2x_reference,
};

use crate::error::ConfigError;
use crate::error::{VaeError, divisible, positive, positive_f64, same_size};
use blocks::StackSizes;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, backend::Backend};
use resnet::conv_same;

/// The only down-block kind of diffusers' VAE encoder that is supported.
pub const DOWN_ENCODER_BLOCK: &str = "DownEncoderBlock2D";
/// The only up-block kind of diffusers' VAE decoder that is supported.
pub const UP_DECODER_BLOCK: &str = "UpDecoderBlock2D";

/// Configuration of [`AutoencoderKl`]. Field names and defaults are diffusers' `AutoencoderKL`
/// `config.json` keys, so a diffusers config deserialises directly.
#[derive(Config, Debug)]
pub struct AutoencoderKlConfig {
    /// Image channels in.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out.
    #[config(default = 3)]
    pub out_channels: usize,
    /// One entry per level; only `"DownEncoderBlock2D"`.
    #[config(default = "vec![\"DownEncoderBlock2D\".to_string()]")]
    pub down_block_types: Vec<String>,
    /// One entry per level; only `"UpDecoderBlock2D"`.
    #[config(default = "vec![\"UpDecoderBlock2D\".to_string()]")]
    pub up_block_types: Vec<String>,
    /// Width per level (SD: `[128, 256, 512, 512]`); the down-sampling factor is
    /// `2^(len − 1)`.
    #[config(default = "vec![64]")]
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level (the decoder uses one more).
    #[config(default = 1)]
    pub layers_per_block: usize,
    /// Activation; only `"silu"` (or its alias `"swish"`).
    #[config(default = "\"silu\".to_string()")]
    pub act_fn: String,
    /// Latent channels `C` (SD: 4, SD3/FLUX: 16).
    #[config(default = 4)]
    pub latent_channels: usize,
    /// GroupNorm groups; must divide every `block_out_channels` entry.
    #[config(default = 32)]
    pub norm_num_groups: usize,
    /// Training image size (diffusers uses it only for tiling).
    #[config(default = 32)]
    pub sample_size: usize,
    /// Latent scale `s` in `(z − shift)·s` (SD 1.x: 0.18215).
    #[config(default = 0.18215)]
    pub scaling_factor: f64,
    /// Latent shift in `(z − shift)·s` (SD3: 0.0609, FLUX: 0.1159); `None` means 0.
    #[config(default = "None")]
    pub shift_factor: Option<f64>,
    /// 1×1 conv on the moments after the encoder.
    #[config(default = true)]
    pub use_quant_conv: bool,
    /// 1×1 conv on the latent before the decoder.
    #[config(default = true)]
    pub use_post_quant_conv: bool,
    /// Attention in both mid blocks.
    #[config(default = true)]
    pub mid_block_add_attention: bool,
    /// diffusers' fp16 upcast hint; ignored (the backend's float type is used throughout).
    #[config(default = true)]
    pub force_upcast: bool,
}

impl AutoencoderKlConfig {
    /// Builds the autoencoder with Burn's default initialisation (load weights with
    /// [`crate::load::load_autoencoder_kl`]).
    ///
    /// # Errors
    /// - [`VaeError::Config`] (`ConfigError::Zero`) naming `in_channels`, `out_channels`, `latent_channels`,
    ///   `layers_per_block`, `norm_num_groups`, `sample_size` or `block_out_channels` (empty or a 0
    ///   entry);
    /// - [`VaeError::Config`] (`ConfigError::NotDivisible`) naming `block_out_channels` if `norm_num_groups` does not divide
    ///   an entry;
    /// - [`VaeError::Config`] (`ConfigError::ShapeMismatch`) if `down_block_types`/`up_block_types` do not have one entry
    ///   per level;
    /// - [`VaeError::Config`] (`ConfigError::Unsupported`) naming `down_block_types`, `up_block_types` or `act_fn` for other
    ///   kinds;
    /// - [`VaeError::Config`] (`ConfigError::OutOfDomain`) naming `scaling_factor` (must be > 0) or `shift_factor` (must be
    ///   finite).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<AutoencoderKl<B>, VaeError> {
        self.validate()?;
        let sizes = StackSizes {
            block_out_channels: &self.block_out_channels,
            layers_per_block: self.layers_per_block,
            groups: self.norm_num_groups,
            attention: self.mid_block_add_attention,
        };
        let c2 = 2 * self.latent_channels;
        let c = self.latent_channels;
        Ok(AutoencoderKl {
            encoder: Encoder::new(&sizes, self.in_channels, c2, device),
            decoder: Decoder::new(&sizes, c, self.out_channels, device),
            quant_conv: self.use_quant_conv.then(|| conv_same(c2, c2, 1, device)),
            post_quant_conv: self.use_post_quant_conv.then(|| conv_same(c, c, 1, device)),
            in_channels: self.in_channels,
            latent_channels: c,
            scaling_factor: self.scaling_factor,
            shift_factor: self.shift_factor.unwrap_or(0.0),
        })
    }

    fn validate(&self) -> Result<(), VaeError> {
        vidgen_nn::error::width("in_channels", self.in_channels)?;
        vidgen_nn::error::width("out_channels", self.out_channels)?;
        vidgen_nn::error::width("latent_channels", self.latent_channels)?;
        vidgen_nn::error::layer_count("layers_per_block", self.layers_per_block)?;
        positive("norm_num_groups", self.norm_num_groups)?;
        positive("sample_size", self.sample_size)?;
        positive("block_out_channels", self.block_out_channels.len())?;
        for &ch in &self.block_out_channels {
            vidgen_nn::error::width("block_out_channels", ch)?;
            divisible(
                "block_out_channels",
                ch,
                self.norm_num_groups,
                Some("norm_num_groups"),
            )?;
        }
        let levels = self.block_out_channels.len();
        same_size(
            "down_block_types entries",
            levels,
            self.down_block_types.len(),
        )?;
        same_size("up_block_types entries", levels, self.up_block_types.len())?;
        block_kinds(
            "down_block_types",
            &self.down_block_types,
            DOWN_ENCODER_BLOCK,
        )?;
        block_kinds("up_block_types", &self.up_block_types, UP_DECODER_BLOCK)?;
        if !matches!(self.act_fn.as_str(), "silu" | "swish") {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "act_fn",
                value: self.act_fn.clone(),
                reason: "only \"silu\" (alias \"swish\") is implemented",
            }));
        }
        positive_f64("scaling_factor", self.scaling_factor)?;
        match self.shift_factor {
            Some(shift) if !shift.is_finite() => Err(VaeError::Config(ConfigError::OutOfDomain {
                field: "shift_factor",
                value: shift,
                requirement: "finite",
            })),
            _ => Ok(()),
        }
    }
}

/// `Err(Unsupported)` naming `field` unless every entry is `kind`.
fn block_kinds(field: &'static str, kinds: &[String], kind: &'static str) -> Result<(), VaeError> {
    match kinds.iter().find(|k| k.as_str() != kind) {
        Some(other) => Err(VaeError::Config(ConfigError::Unsupported {
            field,
            value: other.clone(),
            reason: if kind == DOWN_ENCODER_BLOCK {
                "only \"DownEncoderBlock2D\" is implemented"
            } else {
                "only \"UpDecoderBlock2D\" is implemented"
            },
        })),
        None => Ok(()),
    }
}

/// diffusers' `AutoencoderKL`: `encode(x) = q(z|x)` from `quant_conv(encoder(x))`,
/// `decode(z) = decoder(post_quant_conv(z))`.
///
/// Keys: `encoder.*`, `decoder.*`, `quant_conv`, `post_quant_conv`.
#[derive(Module, Debug)]
pub struct AutoencoderKl<B: Backend> {
    /// Image → moments.
    pub encoder: Encoder<B>,
    /// Latent → image.
    pub decoder: Decoder<B>,
    /// 1×1 conv `2C → 2C` on the moments (`use_quant_conv`).
    pub quant_conv: Option<Conv2d<B>>,
    /// 1×1 conv `C → C` on the latent (`use_post_quant_conv`).
    pub post_quant_conv: Option<Conv2d<B>>,
    /// Image channels in.
    pub in_channels: usize,
    /// Latent channels `C`.
    pub latent_channels: usize,
    /// Latent scale `s`.
    pub scaling_factor: f64,
    /// Latent shift (0 when the config has none).
    pub shift_factor: f64,
}

impl<B: Backend> AutoencoderKl<B> {
    /// The posterior `q(z|x)`: moments `quant_conv(encoder(x))` split into `μ` and `log σ²`.
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, H, W]` → posterior over `[B, C, H/f, W/f]`, `f = 2^(levels−1)`
    /// (`⌊·⌋` per level for odd sizes).
    ///
    /// # Panics
    /// If `x` does not have `in_channels` channels.
    pub fn encode(&self, x: Tensor<B, 4>) -> DiagonalGaussian<B> {
        let [_, c, _, _] = x.dims();
        assert_eq!(
            c, self.in_channels,
            "encode: input has {c} channels, the VAE takes {}",
            self.in_channels
        );
        let moments = self.encoder.forward(x);
        let moments = match &self.quant_conv {
            Some(conv) => conv.forward(moments),
            None => moments,
        };
        DiagonalGaussian::from_moments(moments)
    }

    /// `decoder(post_quant_conv(z))` on an *unscaled* latent (see [`Self::unscale_latents`]).
    ///
    /// # Shapes
    /// `z`: `[B, C, h, w]` → `[B, out_channels, h·f, w·f]`
    ///
    /// # Panics
    /// If `z` does not have `latent_channels` channels.
    pub fn decode(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, c, _, _] = z.dims();
        assert_eq!(
            c, self.latent_channels,
            "decode: latent has {c} channels, the VAE has {}",
            self.latent_channels
        );
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(z),
            None => z,
        };
        self.decoder.forward(z)
    }

    /// Reconstruction through the posterior mode, `decode(encode(x).mode())` (diffusers'
    /// `forward(sample_posterior=False)`).
    ///
    /// # Shapes
    /// `x`: `[B, in_channels, H, W]` → `[B, out_channels, H, W]` (for `H, W` multiples of `f`)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.decode(self.encode(x).mode())
    }

    /// Latent as the diffusion model sees it: `(z − shift)·s`.
    ///
    /// # Shapes
    /// `[B, C, h, w]` → same
    pub fn scale_latents(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        (z - self.shift_factor) * self.scaling_factor
    }

    /// Inverse of [`Self::scale_latents`]: `z/s + shift`.
    ///
    /// # Shapes
    /// `[B, C, h, w]` → same
    pub fn unscale_latents(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        z / self.scaling_factor + self.shift_factor
    }
}
