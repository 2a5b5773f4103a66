//! The 2D KL-VAE against diffusers' `AutoencoderKL` (`golden/gen_vae_kl.py`): weights loaded from
//! the diffusers-format state dict with `vidgen_vae::load`, then the posterior, a reparameterised
//! sample with the fixture's noise, the KL, the scaled latent, the decode and the full forward are
//! compared element by element. Plus the fast/reference twins and config validation.

use burn::tensor::{Distribution, Tensor, backend::Backend};
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, fixture_path, golden};
use vidgen_vae::ConfigError;
use vidgen_vae::VaeError;
use vidgen_vae::kl::*;
use vidgen_vae::load::load_autoencoder_kl;

/// Posterior moments after ~10 convs, 2 GroupNorms per resnet and one attention, all in f32 with
/// a different summation order than torch's: measured on flex, max abs error 4.8e-7 on values of
/// O(1) (5.7e-7 on an earlier build); the relative part covers the few larger values.
const ENCODER_F32: Tolerance = Tolerance::new("ENCODER_F32", 2e-6, 1e-6);
/// Decoder output after ~15 more convs and norms (the decoder has one more resnet per level):
/// measured on flex, max abs error 2.1e-6 on values of O(1) (4.4e-6 on an earlier build).
const DECODER_F32: Tolerance = Tolerance::new("DECODER_F32", 1e-5, 1e-6);
/// Per-sample KL sums of `C·h·w` terms of O(1), each carrying the encoder's error: the rounding
/// grows with the sum and depends on the reduction order; measured max abs error 4.8e-7 on flex
/// (9.5e-7 on an earlier build) and 7.2e-6 on wgpu (lavapipe's parallel reduction) on sums of
/// ~7.4, i.e. 1e-6 relative.
const KL_SUM_F32: Tolerance = Tolerance::new("KL_SUM_F32", 1e-5, 1e-6);

fn list<T: std::str::FromStr>(raw: &str) -> Vec<T> {
    raw.split(',')
        .map(|s| s.trim().parse().ok().expect("list entry"))
        .collect()
}

/// The diffusers config the generator used, from the fixture's metadata.
fn config_from_meta(g: &Golden) -> AutoencoderKlConfig {
    let meta = |k: &str| g.meta(k).unwrap_or_else(|| panic!("no metadata {k}"));
    let usize_of = |k: &str| meta(k).parse::<usize>().expect("integer metadata");
    let bool_of = |k: &str| meta(k) == "True";
    let shift = match meta("shift_factor") {
        "None" => None,
        v => Some(v.parse().expect("shift_factor")),
    };
    AutoencoderKlConfig::new()
        .with_in_channels(usize_of("in_channels"))
        .with_out_channels(usize_of("out_channels"))
        .with_down_block_types(list(meta("down_block_types")))
        .with_up_block_types(list(meta("up_block_types")))
        .with_block_out_channels(list(meta("block_out_channels")))
        .with_layers_per_block(usize_of("layers_per_block"))
        .with_latent_channels(usize_of("latent_channels"))
        .with_norm_num_groups(usize_of("norm_num_groups"))
        .with_sample_size(usize_of("sample_size"))
        .with_scaling_factor(g.meta_f64("scaling_factor"))
        .with_shift_factor(shift)
        .with_use_quant_conv(bool_of("use_quant_conv"))
        .with_use_post_quant_conv(bool_of("use_post_quant_conv"))
        .with_mid_block_add_attention(bool_of("mid_block_add_attention"))
}

fn matches_diffusers<B: Backend>(case: &str, device: &B::Device) {
    let g = golden(&format!("vae_kl_{case}_io.safetensors"));
    let mut vae = config_from_meta(&g).init::<B>(device).unwrap();
    let weights = fixture_path(&format!("vae_kl_{case}_weights.safetensors"));
    let loaded = load_autoencoder_kl(&mut vae, &weights).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded > 0);

    let posterior = vae.encode(g.tensor("input", device));
    assert_close(
        posterior.mean.clone(),
        g.tensor("mean", device),
        ENCODER_F32,
    );
    assert_close(
        posterior.logvar.clone(),
        g.tensor("logvar", device),
        ENCODER_F32,
    );
    assert_close(posterior.std.clone(), g.tensor("std", device), ENCODER_F32);
    let sample = posterior.sample(g.tensor("noise", device));
    assert_close(sample.clone(), g.tensor("sample", device), ENCODER_F32);
    assert_close(posterior.kl(), g.tensor("kl", device), KL_SUM_F32);

    let scaled = vae.scale_latents(sample.clone());
    assert_close(scaled.clone(), g.tensor("scaled", device), ENCODER_F32);
    assert_close(
        vae.unscale_latents(scaled),
        sample.clone(),
        Tolerance::SINGLE_OP,
    );

    assert_close(vae.decode(sample), g.tensor("decoded", device), DECODER_F32);
    assert_close(
        vae.forward(g.tensor("input", device)),
        g.tensor("forward", device),
        DECODER_F32,
    );
}

/// Two levels, mid-block attention, quant convs (the brief's tiny config).
fn case_a_matches_diffusers<B: Backend>(device: &B::Device) {
    matches_diffusers::<B>("a", device);
}

/// Three levels, two resnets per level, no attention, no quant convs, shift factor, 16×8 input.
fn case_b_matches_diffusers<B: Backend>(device: &B::Device) {
    matches_diffusers::<B>("b", device);
}

/// The broadcast nearest 2× equals Burn's `interpolate` (nearest) exactly, odd sizes included.
fn nearest_upsample_matches_interpolate<B: Backend>(device: &B::Device) {
    for [h, w] in [[1, 1], [3, 5], [4, 4], [7, 2]] {
        let x = Tensor::<B, 4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), device);
        let fast = upsample_nearest2x(x.clone());
        assert_eq!(fast.dims(), [2, 3, 2 * h, 2 * w]);
        assert_close(fast, upsample_nearest2x_reference(x), Tolerance::EXACT);
    }
}

/// Fused attention equals the written-out softmax, on square and odd token counts.
fn mid_attention_fused_matches_reference<B: Backend>(device: &B::Device) {
    let vae = AutoencoderKlConfig::new()
        .with_block_out_channels(vec![8])
        .with_norm_num_groups(4)
        .init::<B>(device)
        .unwrap();
    let attn = &vae.encoder.mid_block.attentions[0];
    for [h, w] in [[4, 4], [3, 5], [1, 7]] {
        let x = Tensor::<B, 4>::random([2, 8, h, w], Distribution::Normal(0.0, 1.0), device);
        assert_close(
            attn.forward(x.clone()),
            attn.forward_reference(x),
            Tolerance::SINGLE_OP,
        );
    }
}

/// Shapes through odd spatial sizes follow diffusers' asymmetric padding: `⌊H/2⌋` per level.
fn odd_sizes_follow_floor<B: Backend>(device: &B::Device) {
    let vae = AutoencoderKlConfig::new()
        .with_down_block_types(vec!["DownEncoderBlock2D".into(); 3])
        .with_up_block_types(vec!["UpDecoderBlock2D".into(); 3])
        .with_block_out_channels(vec![4, 4, 8])
        .with_norm_num_groups(2)
        .with_mid_block_add_attention(false)
        .init::<B>(device)
        .unwrap();
    let x = Tensor::<B, 4>::random([1, 3, 15, 9], Distribution::Normal(0.0, 1.0), device);
    let posterior = vae.encode(x);
    assert_eq!(posterior.mean.dims(), [1, 4, 3, 2]); // 15 → 7 → 3, 9 → 4 → 2
    assert_eq!(vae.decode(posterior.mode()).dims(), [1, 3, 12, 8]);
}

/// `log σ²` is clamped to [−30, 20]; the KL of `N(0, I)` against itself is 0.
fn posterior_clamps_and_kl<B: Backend>(device: &B::Device) {
    let mean = Tensor::<B, 4>::zeros([2, 1, 1, 3], device);
    let logvar = Tensor::<B, 4>::from_floats([[[[-40.0, 0.0, 25.0]]], [[[0.0, 0.0, 0.0]]]], device);
    let q = DiagonalGaussian::from_moments(Tensor::cat(vec![mean, logvar], 1));
    let expected =
        Tensor::<B, 4>::from_floats([[[[-30.0, 0.0, 20.0]]], [[[0.0, 0.0, 0.0]]]], device);
    assert_close(q.logvar.clone(), expected, Tolerance::EXACT);
    let kl = q.kl().into_data().to_vec::<f32>().unwrap();
    assert_eq!(kl[1], 0.0);
    // ½ (e^-30 − 1 + 30) + 0 + ½ (e^20 − 1 − 20)
    let want = 0.5 * ((-30f64).exp() - 1.0 + 30.0) + 0.5 * (20f64.exp() - 21.0);
    assert!(
        ((kl[0] as f64) - want).abs() / want < 1e-6,
        "kl {} vs {want}",
        kl[0]
    );
}

backend_tests!(
    case_a_matches_diffusers,
    case_b_matches_diffusers,
    nearest_upsample_matches_interpolate,
    mid_attention_fused_matches_reference,
    odd_sizes_follow_floor,
    posterior_clamps_and_kl,
);

type Cpu = vidgen_testing::Flex;

fn init_err(config: AutoencoderKlConfig) -> VaeError {
    config.init::<Cpu>(&Default::default()).unwrap_err()
}

#[test]
fn invalid_configs_name_the_field() {
    let base = || {
        AutoencoderKlConfig::new()
            .with_block_out_channels(vec![8])
            .with_norm_num_groups(4)
    };
    let err = init_err(
        base()
            .with_block_out_channels(vec![8, 10])
            .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
            .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2]),
    );
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::NotDivisible {
                field: "block_out_channels",
                value: 10,
                by: 4,
                ..
            })
        ),
        "{err}"
    );
    let err = init_err(base().with_down_block_types(vec!["CrossAttnDownBlock2D".into()]));
    assert!(
        matches!(&err, VaeError::Config(ConfigError::Unsupported { field: "down_block_types", value, .. }) if value == "CrossAttnDownBlock2D"),
        "{err}"
    );
    let err = init_err(base().with_up_block_types(vec!["AttnUpDecoderBlock2D".into()]));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::Unsupported {
                field: "up_block_types",
                ..
            })
        ),
        "{err}"
    );
    let err = init_err(base().with_down_block_types(vec![]));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::ShapeMismatch {
                expected: 1,
                got: 0,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("down_block_types"), "{err}");
    let err = init_err(base().with_act_fn("gelu".into()));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::Unsupported {
                field: "act_fn",
                ..
            })
        ),
        "{err}"
    );
    let err = init_err(base().with_latent_channels(0));
    assert_eq!(
        err,
        VaeError::Config(ConfigError::Zero {
            field: "latent_channels"
        })
    );
    let err = init_err(base().with_layers_per_block(0));
    assert_eq!(
        err,
        VaeError::Config(ConfigError::Zero {
            field: "layers_per_block"
        })
    );
    // A huge count is rejected before the blocks are allocated (a 100k-case fuzz run once
    // aborted on `layers_per_block` ≈ 2^50).
    let err = init_err(base().with_layers_per_block(1 << 50));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::OutOfDomain {
                field: "layers_per_block",
                ..
            })
        ),
        "{err}"
    );
    // So is a channel count whose weight shapes would overflow (found by the same fuzz run).
    let err = init_err(base().with_in_channels(usize::MAX));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::OutOfDomain {
                field: "in_channels",
                ..
            })
        ),
        "{err}"
    );
    let err = init_err(base().with_norm_num_groups(0));
    assert_eq!(
        err,
        VaeError::Config(ConfigError::Zero {
            field: "norm_num_groups"
        })
    );
    let err = init_err(base().with_block_out_channels(vec![]));
    assert_eq!(
        err,
        VaeError::Config(ConfigError::Zero {
            field: "block_out_channels"
        })
    );
    let err = init_err(base().with_scaling_factor(0.0));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::OutOfDomain {
                field: "scaling_factor",
                ..
            })
        ),
        "{err}"
    );
    let err = init_err(base().with_shift_factor(Some(f64::NAN)));
    assert!(
        matches!(
            err,
            VaeError::Config(ConfigError::OutOfDomain {
                field: "shift_factor",
                ..
            })
        ),
        "{err}"
    );
    // "swish" is diffusers' alias of SiLU.
    assert!(
        base()
            .with_act_fn("swish".into())
            .init::<Cpu>(&Default::default())
            .is_ok()
    );
}

/// A `config.json` as diffusers 0.42 writes it (every init argument, plus private and unmodelled
/// keys) deserialises directly. Older configs that omit `use_quant_conv` & co. do not: Burn's
/// `Config` derive requires every non-`Option` field.
#[test]
fn diffusers_config_json_deserialises() {
    let json = r#"{
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.42.1",
        "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "force_upcast": true, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
        "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "scaling_factor": 0.18215,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        "shift_factor": null, "latents_mean": null, "latents_std": null, "use_quant_conv": true,
        "use_post_quant_conv": true, "mid_block_add_attention": true
    }"#;
    let config =
        <AutoencoderKlConfig as burn::config::Config>::load_binary(json.as_bytes()).unwrap();
    assert_eq!(config.block_out_channels, vec![128, 256, 512, 512]);
    assert_eq!(config.layers_per_block, 2);
    assert_eq!(config.shift_factor, None);
    assert!(config.use_quant_conv && config.mid_block_add_attention);
}
