//! Open-Sora 1.2's video VAE pipeline against upstream's own `VideoAutoencoderPipeline`
//! (`golden/gen_opensora_vae.py`: v1.2.0 snapshot, diffusers `AutoencoderKL` with a tiny config,
//! tiny `VAE_Temporal`, float64): the published key layout loads, `encode` (posterior means),
//! `encode_with_noise` (stored noise) and `decode` match for T = 20 (17 + 3 frames, B = 2) and
//! T = 35 (17 + 17 + 1); config JSON parsing, presets and typed errors.

use burn::tensor::{ElementConversion, Tensor, backend::Backend};
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, fixture_path};
use vidgen_vae::ConfigError;
use vidgen_vae::VaeError;
use vidgen_vae::opensora::*;

/// The whole pipeline (a 2D VAE with mid-block attention and a dozen causal 3D convs and
/// GroupNorms per piece, both directions) in f32 against a float64 reference: f32 round-off only.
/// Measured on flex: at most 8.0e-7 abs on `z`, 6.6e-7 on the sampled `z`, 2.8e-6 on `x_rec`
/// (outputs of order 1), a tenth of this allowance or less.
const PIPELINE: Tolerance = Tolerance::new("PIPELINE", 2e-5, 1e-4);

const CASES: [&str; 2] = ["t20", "t35"];

fn max_abs<B: Backend>(x: Tensor<B, 5>) -> f64 {
    x.abs().max().into_scalar().elem()
}

fn config() -> OpenSoraVaeConfig {
    OpenSoraVaeConfig::from_json_file(fixture_path("opensora_vae_tiny.json")).unwrap()
}

fn loaded<B: Backend>(device: &B::Device) -> OpenSoraVae<B> {
    let mut vae = config().init::<B>(device).unwrap();
    let n = load_open_sora_vae(&mut vae, fixture_path("opensora_vae_tiny.safetensors")).unwrap();
    assert_eq!(n, 211);
    vae
}

fn pipeline_matches_open_sora<B: Backend>(device: &B::Device) {
    let g = Golden::open("opensora_vae_cases.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let vae = loaded::<B>(device);
    for case in CASES {
        let x: Tensor<B, 5> = g.tensor(&format!("{case}.x"), device);
        let t = x.dims()[2];
        let z = vae.encode(x.clone());
        assert_eq!(z.dims()[2], vae.latent_frames(t), "{case}");
        assert_close(z.clone(), g.tensor(&format!("{case}.z"), device), PIPELINE);
        let sampled = vae.encode_with_noise(
            x,
            g.tensor(&format!("{case}.spatial_noise"), device),
            g.tensor(&format!("{case}.temporal_noise"), device),
        );
        assert_close(
            sampled,
            g.tensor(&format!("{case}.z_sample"), device),
            PIPELINE,
        );
        // Decode the reference latent, so that decode is checked on its own.
        let x_rec = vae.decode(g.tensor(&format!("{case}.z"), device), t);
        assert_close(x_rec, g.tensor(&format!("{case}.x_rec"), device), PIPELINE);
    }
}

/// Micro-frame splitting is not the whole-clip pipeline: the second piece is padded and encoded
/// on its own (a check that the golden case really exercises the splitting).
fn micro_frames_differ_from_whole_clip<B: Backend>(device: &B::Device) {
    let g = Golden::open("opensora_vae_cases.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let mut vae = loaded::<B>(device);
    let x: Tensor<B, 5> = g.tensor("t20.x", device);
    let split = vae.encode(x.clone());
    vae.micro_frame_size = None;
    let whole = vae.encode(x);
    assert_eq!((split.dims()[2], whole.dims()[2]), (6, 5));
    // The first 17 frames are one piece either way, but the whole clip pads 20 → 20 (no padding)
    // while the piece pads 17 → 20: the latents differ already in the first frame.
    let d = max_abs(split.narrow(2, 0, 1) - whole.narrow(2, 0, 1));
    assert!(d > 1e-4, "{d}");
}

fn seeded_sampling<B: Backend>(device: &B::Device) {
    let g = Golden::open("opensora_vae_cases.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let vae = loaded::<B>(device);
    let x: Tensor<B, 5> = g.tensor("t20.x", device);
    let a = vae.encode_seeded(x.clone(), 5).unwrap();
    assert_close(
        a.clone(),
        vae.encode_seeded(x.clone(), 5).unwrap(),
        Tolerance::EXACT,
    );
    let b = vae.encode_seeded(x.clone(), 6).unwrap();
    let mean = vae.encode(x.clone());
    assert_eq!(a.dims(), mean.dims());
    let d = max_abs(a - b);
    assert!(d > 1e-3, "{d}");
    let odd = Tensor::<B, 5>::zeros([1, 3, 2, 5, 4], device);
    assert!(matches!(
        vae.encode_seeded(odd, 0).unwrap_err(),
        VaeError::Config(ConfigError::NotDivisible {
            field: "input height",
            ..
        })
    ));
}

fn latent_frames_and_pieces<B: Backend>(device: &B::Device) {
    let vae = loaded::<B>(device);
    for (t, tl) in [
        (1, 1),
        (17, 5),
        (18, 6),
        (20, 6),
        (34, 10),
        (35, 11),
        (51, 15),
    ] {
        assert_eq!(vae.latent_frames(t), tl, "T = {t}");
    }
    assert_eq!(vae.frame_pieces(35), vec![(0, 17), (17, 17), (34, 1)]);
    assert!(vae.check_decode(6, 20).is_ok());
    assert_eq!(
        vae.check_decode(5, 20).unwrap_err(),
        VaeError::Config(ConfigError::ShapeMismatch {
            what: "latent frames for num_frames",
            expected: 6,
            got: 5
        })
    );
}

backend_tests!(
    pipeline_matches_open_sora,
    micro_frames_differ_from_whole_clip,
    seeded_sampling,
    latent_frames_and_pieces
);

type Cpu = vidgen_testing::Flex;

#[test]
fn golden_config_parses() {
    let c = config();
    assert_eq!(c.micro_frame_size, Some(17));
    assert_eq!(c.micro_batch_size, Some(3));
    assert_eq!(c.shift, vec![-0.10, 0.34, 0.27, 0.98]);
    assert_eq!(c.vae_2d.block_out_channels, vec![4, 8]);
    assert_eq!(c.vae_2d.norm_num_groups, 2);
    assert_eq!(c.vae_temporal.filters, 4);
    assert_eq!(c.vae_temporal.channel_multipliers, vec![1, 1, 2, 2]);
    assert_eq!(c.vae_temporal.temporal_downsample, vec![false, true, true]);
}

#[test]
fn published_config_is_the_preset() {
    let json = r#"{
        "architectures": ["VideoAutoencoderPipeline"], "cal_loss": false, "freeze_vae_2d": false,
        "micro_frame_size": 17, "model_type": "VideoAutoencoderPipeline",
        "scale": [3.85, 2.32, 2.33, 3.06], "shift": [-0.1, 0.34, 0.27, 0.98],
        "vae_2d": {"type": "VideoAutoencoderKL", "micro_batch_size": 4, "subfolder": "vae",
                   "from_pretrained": "PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers",
                   "local_files_only": false},
        "vae_temporal": {"type": "VAE_Temporal_SD", "from_pretrained": null}
    }"#;
    let c = OpenSoraVaeConfig::from_json_str(json, "config.json").unwrap();
    assert_eq!(
        c.to_string(),
        OpenSoraVaeConfig::open_sora_v1_2().to_string()
    );
    assert_eq!(c.vae_2d.block_out_channels, vec![128, 256, 512, 512]);
    assert_eq!(c.vae_2d.layers_per_block, 2);
    assert_eq!(c.vae_temporal.temporal_factor(), 4);
    // Upstream's defaults: scalar shift 0 / scale 1, no micro frames.
    let plain = r#"{"vae_2d": {"from_pretrained": "stabilityai/sdxl-vae"},
                    "vae_temporal": {"type": "VAE_Temporal", "filters": 8}}"#;
    let c = OpenSoraVaeConfig::from_json_str(plain, "p.json").unwrap();
    assert_eq!((c.micro_frame_size, c.micro_batch_size), (None, None));
    assert_eq!((c.shift, c.scale), (vec![0.0; 4], vec![1.0; 4]));
    assert_eq!(c.vae_temporal.temporal_downsample, vec![true, true, false]);
    assert_eq!(c.vae_temporal.filters, 8);
}

fn unsupported(json: &str) -> (&'static str, String) {
    match OpenSoraVaeConfig::from_json_str(json, "c.json").unwrap_err() {
        VaeError::Config(ConfigError::Unsupported { field, value, .. }) => (field, value),
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors_name_the_key() {
    let t = r#""vae_temporal": {"type": "VAE_Temporal_SD"}"#;
    let v = r#""vae_2d": {"from_pretrained": "stabilityai/sdxl-vae"}"#;
    let cases = [
        (format!("{{{t}}}"), "vae_2d"),
        (format!("{{{v}}}"), "vae_temporal"),
        (
            format!("{{{v}, \"vae_temporal\": {{}}}}"),
            "vae_temporal.type",
        ),
        (
            format!(r#"{{{v}, "vae_temporal": {{"type": "VAE_Temporal", "filters": -3}}}}"#),
            "vae_temporal.filters",
        ),
        (
            format!(r#"{{{v}, "vae_temporal": {{"type": "VAE_Temporal_SD", "filters": 8}}}}"#),
            "vae_temporal",
        ),
        (
            format!(r#"{{{v}, "vae_temporal": {{"type": "VAE_Temporal", "bogus": 1}}}}"#),
            "vae_temporal",
        ),
        (
            format!(
                r#"{{{v}, "vae_temporal": {{"type": "VAE_Temporal", "activation_fn": "gelu"}}}}"#
            ),
            "vae_temporal.activation_fn",
        ),
        (
            format!(r#"{{"vae_2d": {{"from_pretrained": "someone/vae"}}, {t}}}"#),
            "vae_2d.from_pretrained",
        ),
        (
            format!(r#"{{"vae_2d": {{"type": "VideoAutoencoderKLTemporalDecoder"}}, {t}}}"#),
            "vae_2d.type",
        ),
        (
            format!(r#"{{"vae_2d": {{"block_out_channels": [4, "8"]}}, {t}}}"#),
            "vae_2d.block_out_channels",
        ),
        (format!(r#"{{{v}, {t}, "shift": [1, 2]}}"#), "shift"),
        (format!(r#"{{{v}, {t}, "scale": "big"}}"#), "scale"),
        (
            format!(r#"{{{v}, {t}, "micro_frame_size": 1.5}}"#),
            "micro_frame_size",
        ),
    ];
    for (json, key) in cases {
        let (field, value) = unsupported(&json);
        assert_eq!(field, key, "{json}");
        assert!(value.contains("c.json"), "{value}");
    }
    assert!(matches!(
        OpenSoraVaeConfig::from_json_str("{nope", "c.json").unwrap_err(),
        VaeError::Parse { path, key: None, .. } if path == "c.json"
    ));
    let zero = format!(r#"{{{v}, {t}, "micro_frame_size": 0}}"#);
    let c = OpenSoraVaeConfig::from_json_str(&zero, "c.json").unwrap();
    assert_eq!(
        c.video_config()
            .init(
                vidgen_vae::PixelShuffleAutoencoderConfig::new()
                    .init::<Cpu>(&Default::default())
                    .unwrap(),
                &Default::default()
            )
            .unwrap_err(),
        VaeError::Config(ConfigError::Zero {
            field: "micro_frame_size"
        })
    );
}

#[test]
fn failed_load_leaves_the_module_untouched() {
    let device = Default::default();
    // A whole-clip config cannot take the tiny file: widths differ.
    let mut vae = config()
        .with_vae_temporal(config().vae_temporal.with_filters(8))
        .init::<Cpu>(&device)
        .unwrap();
    let before = vae.scale.val().into_data();
    let err = load_open_sora_vae(&mut vae, fixture_path("opensora_vae_tiny.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("temporal_vae.encoder.") || err.contains("temporal_vae.decoder."),
        "{err}"
    );
    assert!(
        err.contains("[8, 8, 3, 3, 3]") && err.contains("[4, 4, 3, 3, 3]"),
        "{err}"
    );
    assert_eq!(vae.scale.val().into_data(), before);
    // Keys the module has no place for are named in the file's spelling.
    let mut vae = config()
        .with_vae_2d(config().vae_2d.with_mid_block_add_attention(false))
        .init::<Cpu>(&device)
        .unwrap();
    let err = load_open_sora_vae(&mut vae, fixture_path("opensora_vae_tiny.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spatial_vae.module.decoder.mid_block.attentions.0.to_out.0.weight"),
        "{err}"
    );
}
