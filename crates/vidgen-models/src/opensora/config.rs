//! Open-Sora's `STDiT3Config` (hub `config.json`) → [`StditConfig`].

use super::json::{JsonObject, JsonValue, parse_object, read_object};
use crate::error::ConfigError;
use crate::error::ModelError;
use crate::stdit::StditConfig;
use std::path::Path;

/// What [`StditConfig::from_upstream_config`] did not turn into model settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamConfigReport {
    /// Keys neither `STDiT3Config` nor transformers' `PretrainedConfig` define (sorted).
    pub unknown_keys: Vec<String>,
    /// Known `STDiT3Config` keys that do not change inference outputs and are not kept (training
    /// and kernel switches such as `class_dropout_prob`, `drop_path`, `enable_flash_attn`),
    /// with their values.
    pub ignored: Vec<(String, String)>,
}

/// Frames (`T / pt`) the temporal RoPE tables of a converted config cover (upstream has no
/// limit; Open-Sora 1.2's longest videos have 120 latent frames).
pub const UPSTREAM_MAX_FRAMES: usize = 256;

/// `STDiT3Config` keys that only affect training or kernels.
const IGNORED_KEYS: &[&str] = &[
    "class_dropout_prob",
    "drop_path",
    "enable_flash_attn",
    "enable_layernorm_kernel",
    "enable_sequence_parallelism",
    "only_train_temporal",
    "freeze_y_embedder",
    "input_size",
];

/// transformers `PretrainedConfig` keys (accepted and not reported).
const TRANSFORMERS_KEYS: &[&str] = &[
    "architectures",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "_name_or_path",
    "_commit_hash",
    "_attn_implementation_autoset",
    "auto_map",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    "use_bfloat16",
    "tf_legacy_loss",
    "pruned_heads",
    "tie_word_embeddings",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "is_decoder",
    "cross_attention_hidden_size",
    "add_cross_attention",
    "tie_encoder_decoder",
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "finetuning_task",
    "id2label",
    "label2id",
    "tokenizer_class",
    "prefix",
    "bos_token_id",
    "pad_token_id",
    "eos_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "task_specific_params",
    "problem_type",
];

/// Typed access to one key of the object.
struct Keys<'a> {
    object: &'a JsonObject,
}

fn bad(key: &'static str, value: &JsonValue, reason: &'static str) -> ModelError {
    ModelError::Config(ConfigError::Unsupported {
        field: key,
        value: value.to_string(),
        reason,
    })
}

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&JsonValue> {
        self.object.0.get(key)
    }

    fn usize(&self, key: &'static str, default: usize) -> Result<usize, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(JsonValue::Int(i)) if *i > 0 => usize::try_from(*i)
                .map_err(|_| bad(key, &JsonValue::Int(*i), "expected a positive integer")),
            Some(v) => Err(bad(key, v, "expected a positive integer")),
        }
    }

    fn f64(&self, key: &'static str, default: f64) -> Result<f64, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(JsonValue::Int(i)) if *i > 0 => Ok(*i as f64),
            Some(JsonValue::Float(x)) if x.is_finite() && *x > 0.0 => Ok(*x),
            Some(v) => Err(bad(key, v, "expected a positive number")),
        }
    }

    fn bool(&self, key: &'static str, default: bool) -> Result<bool, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(JsonValue::Bool(b)) => Ok(*b),
            Some(v) => Err(bad(key, v, "expected true or false")),
        }
    }

    fn patch_size(&self, key: &'static str) -> Result<[usize; 3], ModelError> {
        let Some(value) = self.get(key) else {
            return Ok([1, 2, 2]);
        };
        let reason = "expected three positive integers [pt, ph, pw]";
        match value {
            JsonValue::List(items) if items.len() == 3 => {
                let mut out = [0; 3];
                for (o, item) in out.iter_mut().zip(items) {
                    *o = match item {
                        JsonValue::Int(i) if *i > 0 => {
                            usize::try_from(*i).map_err(|_| bad(key, value, reason))?
                        }
                        _ => return Err(bad(key, value, reason)),
                    };
                }
                Ok(out)
            }
            _ => Err(bad(key, value, reason)),
        }
    }

    /// Checks a key that is accepted but not used: its type, and that it is not a setting we
    /// cannot honour.
    fn check_ignored(&self, key: &'static str) -> Result<Option<String>, ModelError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match key {
            "class_dropout_prob" => match value {
                JsonValue::Int(i) if (0..=1).contains(i) => {}
                JsonValue::Float(x) if (0.0..=1.0).contains(x) => {}
                _ => return Err(bad(key, value, "expected a probability in [0, 1]")),
            },
            "drop_path" => match value {
                JsonValue::Int(i) if *i >= 0 => {}
                JsonValue::Float(x) if *x >= 0.0 => {}
                _ => return Err(bad(key, value, "expected a number >= 0")),
            },
            "input_size" => {
                if !matches!(value, JsonValue::List(_) | JsonValue::Null) {
                    return Err(bad(key, value, "expected a list (or null)"));
                }
            }
            _ => {
                if !matches!(value, JsonValue::Bool(_)) {
                    return Err(bad(key, value, "expected true or false"));
                }
            }
        }
        Ok(Some(value.to_string()))
    }
}

impl StditConfig {
    /// Converts Open-Sora's `STDiT3Config` (the hub `config.json` of
    /// `hpcai-tech/OpenSora-STDiT-v3`) into a config with upstream semantics: `hidden_size` →
    /// `d_model`, `num_heads` → `n_heads`, `caption_channels` → `d_text`, `model_max_length` →
    /// `text_max_len`; `depth`, `mlp_ratio`, `in_channels`, `patch_size`, `qk_norm`,
    /// `pred_sigma` and `input_sq_size` keep their names. Absent keys take `STDiT3Config`'s
    /// defaults (the XL/2 sizes). `max_frames` is [`UPSTREAM_MAX_FRAMES`].
    ///
    /// Keys that only affect training or kernels are listed in
    /// [`UpstreamConfigReport::ignored`]; keys neither Open-Sora nor transformers define, in
    /// [`UpstreamConfigReport::unknown_keys`].
    ///
    /// # Errors
    /// [`ModelError::Parse`] if `json` is not a JSON object; [`ModelError::Config`] (`ConfigError::Unsupported`) naming
    /// the key and its value for a wrong type or value, `model_type` other than `"STDiT3"`, or
    /// `skip_y_embedder = true`; any error of [`validate`](Self::validate).
    pub fn from_upstream_config(json: &str) -> Result<(Self, UpstreamConfigReport), ModelError> {
        Self::from_upstream_object(&parse_object(json, "config.json")?)
    }

    /// [`from_upstream_config`](Self::from_upstream_config) on a file.
    ///
    /// # Errors
    /// [`ModelError::Io`] naming the path if it cannot be read; [`ModelError::Parse`] naming it
    /// if it is not a JSON object; as [`from_upstream_config`](Self::from_upstream_config).
    pub fn from_upstream_config_file(
        path: impl AsRef<Path>,
    ) -> Result<(Self, UpstreamConfigReport), ModelError> {
        Self::from_upstream_object(&read_object(path.as_ref())?)
    }

    fn from_upstream_object(
        object: &JsonObject,
    ) -> Result<(Self, UpstreamConfigReport), ModelError> {
        let keys = Keys { object };
        if let Some(value) = keys.get("model_type")
            && *value != JsonValue::Str("STDiT3".into())
        {
            return Err(bad("model_type", value, "expected \"STDiT3\""));
        }
        if keys.bool("skip_y_embedder", false)? {
            return Err(bad(
                "skip_y_embedder",
                &JsonValue::Bool(true),
                "captions are always projected by y_embedder",
            ));
        }
        let config = StditConfig::new(
            keys.usize("hidden_size", 1152)?,
            keys.usize("num_heads", 16)?,
            keys.usize("depth", 28)?,
            keys.usize("caption_channels", 4096)?,
        )
        .with_in_channels(keys.usize("in_channels", 4)?)
        .with_patch_size(keys.patch_size("patch_size")?)
        .with_mlp_ratio(keys.f64("mlp_ratio", 4.0)?)
        .with_text_max_len(keys.usize("model_max_length", 300)?)
        .with_qk_norm(keys.bool("qk_norm", true)?)
        .with_pred_sigma(keys.bool("pred_sigma", true)?)
        .with_input_sq_size(keys.f64("input_sq_size", 512.0)?)
        .with_max_frames(UPSTREAM_MAX_FRAMES)
        .with_qk_norm_eps(1e-6)
        .with_rope_theta(10000.0)
        .with_frequency_dim(256)
        .with_pos_interpolation_scale(1.0)
        .with_zero_init_temporal(true)
        .with_temporal_pos_embed(false)
        .with_pooled_text(false)
        .with_cross_qk_norm(false)
        .with_final_t0_norm_modulated(true);
        config.validate()?;

        let mut report = UpstreamConfigReport::default();
        for key in IGNORED_KEYS {
            if let Some(value) = keys.check_ignored(key)? {
                report.ignored.push(((*key).to_owned(), value));
            }
        }
        const USED: &[&str] = &[
            "hidden_size",
            "num_heads",
            "depth",
            "caption_channels",
            "in_channels",
            "patch_size",
            "mlp_ratio",
            "model_max_length",
            "qk_norm",
            "pred_sigma",
            "input_sq_size",
            "skip_y_embedder",
        ];
        report.unknown_keys = object
            .0
            .keys()
            .filter(|k| {
                let k = k.as_str();
                !USED.contains(&k) && !IGNORED_KEYS.contains(&k) && !TRANSFORMERS_KEYS.contains(&k)
            })
            .cloned()
            .collect();
        Ok((config, report))
    }
}
