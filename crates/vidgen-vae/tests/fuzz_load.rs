//! The KL-VAE and Open-Sora VAE checkpoint loaders, and the Open-Sora VAE config, on thousands of malformed diffusers files
//! (`vidgen_testing::fuzz`): bit flips, truncation, header length / offset / dtype / shape edits,
//! duplicated, missing and renamed keys, huge dimensions, NaN/∞ payloads. Nothing may panic or
//! abort, and after every failed load the module is bit-identical.
//!
//! 2,000 cases by default; `VIDGEN_FUZZ_CASES=100000` for the long run.

use vidgen_testing::{Flex, fixture_path, fuzz};
use vidgen_vae::kl::AutoencoderKlConfig;
use vidgen_vae::load::load_autoencoder_kl;
use vidgen_vae::opensora::{OpenSoraVaeConfig, load_open_sora_vae};

#[test]
fn autoencoder_kl_loader() {
    let device = Default::default();
    let vae = AutoencoderKlConfig::new()
        .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
        .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2])
        .with_block_out_channels(vec![8, 16])
        .with_norm_num_groups(4)
        .init::<Flex>(&device)
        .unwrap();
    let valid = std::fs::read(fixture_path("vae_kl_a_weights.safetensors")).unwrap();
    let report = fuzz::run_module_loader(
        "load_autoencoder_kl",
        fuzz::cases(2000),
        0x0a0e,
        "safetensors",
        &vae,
        |i, s| fuzz::mutate_safetensors(&valid, i, s),
        |vae, path| load_autoencoder_kl(vae, path).map(|_| ()),
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

/// Open-Sora's VAE pipeline file (`spatial_vae.module.*`, `temporal_vae.*`, `scale`, `shift`).
#[test]
fn open_sora_vae_loader() {
    let device = Default::default();
    let config = OpenSoraVaeConfig::from_json_file(fixture_path("opensora_vae_tiny.json")).unwrap();
    let vae = config.init::<Flex>(&device).unwrap();
    let valid = std::fs::read(fixture_path("opensora_vae_tiny.safetensors")).unwrap();
    let report = fuzz::run_module_loader(
        "load_open_sora_vae",
        fuzz::cases(2000),
        0x05a,
        "safetensors",
        &vae,
        |i, s| fuzz::mutate_safetensors(&valid, i, s),
        |vae, path| load_open_sora_vae(vae, path).map(|_| ()),
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

/// Open-Sora's `VideoAutoencoderPipelineConfig` JSON; a config that parses is also built.
#[test]
fn open_sora_vae_config() {
    let valid = std::fs::read(fixture_path("opensora_vae_tiny.json")).unwrap();
    let device = Default::default();
    let report = fuzz::run_json(
        "OpenSoraVaeConfig",
        fuzz::cases(2000),
        0xc0f,
        &valid,
        |text| {
            let config =
                OpenSoraVaeConfig::from_json_str(text, "fuzz.json").map_err(|e| e.to_string())?;
            config
                .init::<Flex>(&device)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0 && report.accepted > 0, "{report}");
}
