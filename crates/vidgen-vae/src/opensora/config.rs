//! [`OpenSoraVaeConfig`]: Open-Sora's `VideoAutoencoderPipelineConfig` JSON, read key by key with
//! errors that name the key.

use super::OpenSoraVae;
use crate::causal3d::{Activation, TemporalAutoencoderConfig, VideoAutoencoderConfig};
use crate::error::ConfigError;
use crate::error::VaeError;
use crate::kl::AutoencoderKlConfig;
use burn::config::Config;
use burn::tensor::backend::Backend;
use serde_json::{Map, Value};
use std::fmt::Display;
use std::path::Path;

/// `VideoAutoencoderKL` multiplies the 2D latents by this constant (whatever the 2D VAE's own
/// `scaling_factor`; SDXL's is 0.13025).
pub const OPEN_SORA_SPATIAL_SCALING: f64 = 0.18215;

/// `from_pretrained` values of `vae_2d` that name the SDXL VAE ([`sdxl_vae_config`]).
pub const SDXL_VAE_REPOS: &[&str] = &[
    "PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers",
    "stabilityai/sdxl-vae",
];

/// The diffusers `AutoencoderKL` keys read from `vae_2d` (an inline 2D VAE config).
const DIFFUSERS_KEYS: &[&str] = &[
    "in_channels",
    "out_channels",
    "down_block_types",
    "up_block_types",
    "block_out_channels",
    "layers_per_block",
    "act_fn",
    "latent_channels",
    "norm_num_groups",
    "sample_size",
    "scaling_factor",
    "shift_factor",
    "use_quant_conv",
    "use_post_quant_conv",
    "mid_block_add_attention",
    "force_upcast",
];

/// `VAE_Temporal` keyword arguments (besides `from_pretrained`, which is ignored: the weights come
/// from the pipeline's file).
const TEMPORAL_KEYS: &[&str] = &[
    "in_out_channels",
    "latent_embed_dim",
    "embed_dim",
    "filters",
    "num_res_blocks",
    "channel_multipliers",
    "temporal_downsample",
    "num_groups",
    "activation_fn",
];

/// The SDXL VAE's diffusers config (`PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers`, subfolder
/// `vae`, which Open-Sora 1.2 uses): 4 levels of widths 128, 256, 512, 512, 2 resnets per level,
/// 4 latent channels, 32 groups, `scaling_factor` 0.13025 (unused by Open-Sora, see
/// [`OPEN_SORA_SPATIAL_SCALING`]).
pub fn sdxl_vae_config() -> AutoencoderKlConfig {
    AutoencoderKlConfig::new()
        .with_down_block_types(vec!["DownEncoderBlock2D".into(); 4])
        .with_up_block_types(vec!["UpDecoderBlock2D".into(); 4])
        .with_block_out_channels(vec![128, 256, 512, 512])
        .with_layers_per_block(2)
        .with_latent_channels(4)
        .with_norm_num_groups(32)
        .with_sample_size(1024)
        .with_scaling_factor(0.13025)
}

/// `VAE_Temporal_SD`: `VAE_Temporal` with filters 128, 4 res blocks, multipliers (1, 2, 2, 4),
/// temporal downsample (False, True, True), 4 channels throughout.
pub fn vae_temporal_sd_config() -> TemporalAutoencoderConfig {
    TemporalAutoencoderConfig::new()
}

/// `VAE_Temporal`'s own defaults: as [`vae_temporal_sd_config`] but with temporal downsample
/// (True, True, False).
pub fn vae_temporal_config() -> TemporalAutoencoderConfig {
    TemporalAutoencoderConfig::new().with_temporal_downsample(vec![true, true, false])
}

/// Configuration of [`OpenSoraVae`]: Open-Sora 1.2's `VideoAutoencoderPipelineConfig`. Defaults
/// are `OpenSoraVAE_V1_2` (the published `hpcai-tech/OpenSora-VAE-v1.2`).
#[derive(Config, Debug)]
pub struct OpenSoraVaeConfig {
    /// The per-frame 2D VAE (diffusers `AutoencoderKL`; SDXL VAE).
    #[config(default = "sdxl_vae_config()")]
    pub vae_2d: AutoencoderKlConfig,
    /// The temporal VAE (`VAE_Temporal_SD`).
    #[config(default = "vae_temporal_sd_config()")]
    pub vae_temporal: TemporalAutoencoderConfig,
    /// Pixel frames per temporal-VAE call (`None`: the whole clip).
    #[config(default = "Some(17)")]
    pub micro_frame_size: Option<usize>,
    /// Frames per 2D VAE call (`vae_2d.micro_batch_size`; exact, the 2D VAE is per frame).
    #[config(default = "Some(4)")]
    pub micro_batch_size: Option<usize>,
    /// Per-channel latent shift, one per `vae_temporal.embed_dim` channel.
    #[config(default = "vec![-0.10, 0.34, 0.27, 0.98]")]
    pub shift: Vec<f64>,
    /// Per-channel latent scale, all `> 0`.
    #[config(default = "vec![3.85, 2.32, 2.33, 3.06]")]
    pub scale: Vec<f64>,
}

impl OpenSoraVaeConfig {
    /// `OpenSoraVAE_V1_2()` (same as [`OpenSoraVaeConfig::new`]).
    pub fn open_sora_v1_2() -> Self {
        Self::new()
    }

    /// The [`VideoAutoencoderConfig`] this config builds.
    pub fn video_config(&self) -> VideoAutoencoderConfig {
        VideoAutoencoderConfig::new()
            .with_temporal(self.vae_temporal.clone())
            .with_shift(self.shift.clone())
            .with_scale(self.scale.clone())
            .with_spatial_scaling_factor(OPEN_SORA_SPATIAL_SCALING)
            .with_micro_batch_size(self.micro_batch_size)
            .with_micro_frame_size(self.micro_frame_size)
    }

    /// Builds the pipeline with Burn's initialisation (load weights with
    /// [`super::load_open_sora_vae`]).
    ///
    /// # Errors
    /// Those of [`AutoencoderKlConfig::init`] and [`VideoAutoencoderConfig::init`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<OpenSoraVae<B>, VaeError> {
        let spatial = self.vae_2d.init(device)?;
        self.video_config().init(spatial, device)
    }

    /// Reads a `VideoAutoencoderPipelineConfig` JSON file (see [`Self::from_json_str`]).
    ///
    /// # Errors
    /// [`VaeError::Io`] if the file cannot be read; those of [`Self::from_json_str`].
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, VaeError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| VaeError::Io {
            path: shown.clone(),
            kind: e.kind(),
            message: e.to_string(),
        })?;
        Self::from_json_str(&text, &shown)
    }

    /// Parses a `VideoAutoencoderPipelineConfig` JSON (`source` names it in errors).
    ///
    /// Keys, with upstream's defaults where upstream has one: `micro_frame_size` (null: whole
    /// clip), `shift` (0.0) and `scale` (1.0), each a number or a list of 1 or `embed_dim`
    /// numbers; `vae_2d` (required): `VideoAutoencoderKL` arguments (`type`, `micro_batch_size`,
    /// `from_pretrained`) plus, optionally, diffusers `AutoencoderKL` config keys
    /// (`block_out_channels`, …), which are used when present; otherwise `from_pretrained` must
    /// name the SDXL VAE ([`SDXL_VAE_REPOS`]); `vae_temporal` (required): `type`
    /// `"VAE_Temporal"` (its defaults, overridden by any `VAE_Temporal` argument given) or
    /// `"VAE_Temporal_SD"` (its preset; only `num_groups` and `activation_fn` may be given, as
    /// upstream). Other top-level and `vae_2d` keys (`model_type`, `cal_loss`, …) are ignored;
    /// unknown `vae_temporal` keys are rejected, as upstream's constructor does.
    ///
    /// # Errors
    /// [`VaeError::Parse`] (with `path` = `source`) if the text is not a JSON object;
    /// [`VaeError::Config`] (`ConfigError::Unsupported`) naming the key (e.g. `vae_temporal.filters`) for a missing
    /// required key, a value of the wrong type, an unknown `type` or `from_pretrained`, or a
    /// `shift`/`scale` of the wrong length.
    pub fn from_json_str(text: &str, source: &str) -> Result<Self, VaeError> {
        let value: Value = serde_json::from_str(text).map_err(|e| VaeError::Parse {
            path: source.into(),
            key: None,
            message: e.to_string(),
        })?;
        let root = value.as_object().ok_or_else(|| VaeError::Parse {
            path: source.into(),
            key: None,
            message: "expected a JSON object".into(),
        })?;
        let top = Keys::new(root, source);
        let vae_2d = top.object("vae_2d")?;
        let (vae_2d, micro_batch_size) = parse_vae_2d(&Keys::new(vae_2d, source))?;
        let vae_temporal = top.object("vae_temporal")?;
        let vae_temporal = parse_vae_temporal(&Keys::new(vae_temporal, source))?;
        let e = vae_temporal.embed_dim;
        Ok(Self {
            vae_2d,
            micro_frame_size: top.usize_opt("micro_frame_size")?,
            micro_batch_size,
            shift: top.per_channel("shift", 0.0, e)?,
            scale: top.per_channel("scale", 1.0, e)?,
            vae_temporal,
        })
    }
}

/// `vae_2d` → (2D VAE config, `micro_batch_size`).
fn parse_vae_2d(k: &Keys) -> Result<(AutoencoderKlConfig, Option<usize>), VaeError> {
    if let Some(kind) = k.str_opt("vae_2d.type")?
        && kind != "VideoAutoencoderKL"
    {
        return Err(k.bad(
            "vae_2d.type",
            &kind,
            "only \"VideoAutoencoderKL\" (a diffusers AutoencoderKL per frame)",
        ));
    }
    let micro_batch_size = k.usize_opt("vae_2d.micro_batch_size")?;
    if !DIFFUSERS_KEYS.iter().any(|key| k.get(key).is_some()) {
        return match k.str_opt("vae_2d.from_pretrained")? {
            Some(repo) if SDXL_VAE_REPOS.contains(&repo.as_str()) => {
                Ok((sdxl_vae_config(), micro_batch_size))
            }
            Some(repo) => Err(k.bad(
                "vae_2d.from_pretrained",
                &repo,
                "not a known 2D VAE: write its diffusers AutoencoderKL config keys into `vae_2d`",
            )),
            None => Err(k.missing("vae_2d.from_pretrained")),
        };
    }
    let mut c = AutoencoderKlConfig::new();
    let set = |v: &mut usize, key| k.usize_opt(key).map(|o| *v = o.unwrap_or(*v));
    set(&mut c.in_channels, "vae_2d.in_channels")?;
    set(&mut c.out_channels, "vae_2d.out_channels")?;
    set(&mut c.layers_per_block, "vae_2d.layers_per_block")?;
    set(&mut c.latent_channels, "vae_2d.latent_channels")?;
    set(&mut c.norm_num_groups, "vae_2d.norm_num_groups")?;
    set(&mut c.sample_size, "vae_2d.sample_size")?;
    if let Some(v) = k.list("vae_2d.down_block_types", Keys::as_string, STRINGS)? {
        c.down_block_types = v;
    }
    if let Some(v) = k.list("vae_2d.up_block_types", Keys::as_string, STRINGS)? {
        c.up_block_types = v;
    }
    if let Some(v) = k.list("vae_2d.block_out_channels", Keys::as_usize, INTEGERS)? {
        c.block_out_channels = v;
    }
    if let Some(v) = k.str_opt("vae_2d.act_fn")? {
        c.act_fn = v;
    }
    if let Some(v) = k.f64_opt("vae_2d.scaling_factor")? {
        c.scaling_factor = v;
    }
    c.shift_factor = k.f64_opt("vae_2d.shift_factor")?;
    for (flag, key) in [
        (&mut c.use_quant_conv, "vae_2d.use_quant_conv"),
        (&mut c.use_post_quant_conv, "vae_2d.use_post_quant_conv"),
        (
            &mut c.mid_block_add_attention,
            "vae_2d.mid_block_add_attention",
        ),
        (&mut c.force_upcast, "vae_2d.force_upcast"),
    ] {
        if let Some(v) = k.bool_opt(key)? {
            *flag = v;
        }
    }
    Ok((c, micro_batch_size))
}

/// `vae_temporal` → temporal VAE config.
fn parse_vae_temporal(k: &Keys) -> Result<TemporalAutoencoderConfig, VaeError> {
    let kind = k
        .str_opt("vae_temporal.type")?
        .ok_or_else(|| k.missing("vae_temporal.type"))?;
    let (mut c, settable): (_, &[&str]) = match kind.as_str() {
        "VAE_Temporal" => (vae_temporal_config(), TEMPORAL_KEYS),
        "VAE_Temporal_SD" => (vae_temporal_sd_config(), &["num_groups", "activation_fn"]),
        _ => {
            return Err(k.bad(
                "vae_temporal.type",
                &kind,
                "only \"VAE_Temporal\" or \"VAE_Temporal_SD\"",
            ));
        }
    };
    for key in k.map.keys() {
        if key == "type" || key == "from_pretrained" || settable.contains(&key.as_str()) {
            continue;
        }
        let reason = if TEMPORAL_KEYS.contains(&key.as_str()) {
            "fixed by VAE_Temporal_SD (upstream raises a TypeError)"
        } else {
            "not a VAE_Temporal argument"
        };
        return Err(VaeError::Config(ConfigError::Unsupported {
            field: "vae_temporal",
            value: format!("key `{key}` (in {})", k.source),
            reason,
        }));
    }
    let set = |v: &mut usize, key| k.usize_opt(key).map(|o| *v = o.unwrap_or(*v));
    set(&mut c.in_out_channels, "vae_temporal.in_out_channels")?;
    set(&mut c.latent_embed_dim, "vae_temporal.latent_embed_dim")?;
    set(&mut c.embed_dim, "vae_temporal.embed_dim")?;
    set(&mut c.filters, "vae_temporal.filters")?;
    set(&mut c.num_res_blocks, "vae_temporal.num_res_blocks")?;
    set(&mut c.num_groups, "vae_temporal.num_groups")?;
    if let Some(v) = k.list("vae_temporal.channel_multipliers", Keys::as_usize, INTEGERS)? {
        c.channel_multipliers = v;
    }
    if let Some(v) = k.list("vae_temporal.temporal_downsample", Value::as_bool, BOOLS)? {
        c.temporal_downsample = v;
    }
    match k.str_opt("vae_temporal.activation_fn")?.as_deref() {
        None => {}
        Some("swish") => c.activation_fn = Activation::Swish,
        Some("relu") => c.activation_fn = Activation::Relu,
        Some(other) => {
            return Err(k.bad(
                "vae_temporal.activation_fn",
                &other,
                "\"swish\" or \"relu\"",
            ));
        }
    }
    Ok(c)
}

const STRINGS: &str = "must be a list of strings";
const INTEGERS: &str = "must be a list of non-negative integers";
const BOOLS: &str = "must be a list of true/false";

/// One JSON object of the config, with typed getters whose errors name `prefix.key`.
struct Keys<'a> {
    map: &'a Map<String, Value>,
    source: &'a str,
}

impl<'a> Keys<'a> {
    fn new(map: &'a Map<String, Value>, source: &'a str) -> Self {
        Self { map, source }
    }

    fn bad(&self, field: &'static str, value: &dyn Display, reason: &'static str) -> VaeError {
        VaeError::Config(ConfigError::Unsupported {
            field,
            value: format!("{value} (in {})", self.source),
            reason,
        })
    }

    fn missing(&self, field: &'static str) -> VaeError {
        self.bad(field, &"<missing>", "required key")
    }

    /// The value of `field` (a full name such as `vae_temporal.filters`; the part after the
    /// last `.` is looked up), `None` if absent or `null`.
    fn get(&self, field: &str) -> Option<&'a Value> {
        let key = field.rsplit_once('.').map_or(field, |(_, k)| k);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn object(&self, key: &'static str) -> Result<&'a Map<String, Value>, VaeError> {
        let v = self.get(key).ok_or_else(|| self.missing(key))?;
        v.as_object()
            .ok_or_else(|| self.bad(key, v, "must be a JSON object"))
    }

    fn as_usize(v: &Value) -> Option<usize> {
        v.as_u64().and_then(|u| usize::try_from(u).ok())
    }

    fn as_string(v: &Value) -> Option<String> {
        v.as_str().map(str::to_string)
    }

    fn typed<T>(
        &self,
        key: &'static str,
        read: impl Fn(&Value) -> Option<T>,
        what: &'static str,
    ) -> Result<Option<T>, VaeError> {
        self.get(key)
            .map(|v| read(v).ok_or_else(|| self.bad(key, v, what)))
            .transpose()
    }

    fn usize_opt(&self, key: &'static str) -> Result<Option<usize>, VaeError> {
        self.typed(
            key,
            Self::as_usize,
            "must be a non-negative integer or null",
        )
    }

    fn f64_opt(&self, key: &'static str) -> Result<Option<f64>, VaeError> {
        self.typed(key, Value::as_f64, "must be a number or null")
    }

    fn bool_opt(&self, key: &'static str) -> Result<Option<bool>, VaeError> {
        self.typed(key, Value::as_bool, "must be true or false")
    }

    fn str_opt(&self, key: &'static str) -> Result<Option<String>, VaeError> {
        self.typed(key, Self::as_string, "must be a string or null")
    }

    fn list<T>(
        &self,
        key: &'static str,
        item: impl Fn(&Value) -> Option<T>,
        what: &'static str,
    ) -> Result<Option<Vec<T>>, VaeError> {
        let read = |v: &Value| v.as_array()?.iter().map(&item).collect::<Option<Vec<T>>>();
        self.typed(key, read, what)
    }

    /// A number or a list of numbers (1 or `channels` of them), expanded to `channels` entries.
    fn per_channel(
        &self,
        key: &'static str,
        default: f64,
        channels: usize,
    ) -> Result<Vec<f64>, VaeError> {
        let Some(v) = self.get(key) else {
            return Ok(vec![default; channels]);
        };
        if let Some(x) = v.as_f64() {
            return Ok(vec![x; channels]);
        }
        let values = v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| self.bad(key, v, "must be a number or a list of numbers"))?;
        match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values),
            _ => Err(self.bad(key, v, "must have 1 or vae_temporal.embed_dim entries")),
        }
    }
}
