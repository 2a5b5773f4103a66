//! vidgen-models' loaders on thousands of malformed files (`vidgen_testing::fuzz`): our own
//! checkpoints (the shipped tiny STDiT's), the training/model JSON config, Open-Sora's STDiT3
//! checkpoint and `config.json`, and caption-embedding files. Nothing may panic or abort; after
//! every failed checkpoint load the model is bit-identical.
//!
//! 2,000 cases per loader by default; `VIDGEN_FUZZ_CASES=100000` for the long run.

use std::path::PathBuf;
use vidgen_models::train::load_text_to_video;
use vidgen_models::{TinyTrainConfig, load_checkpoint, load_text_embeddings};
use vidgen_testing::{Flex, fuzz};

fn asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vidgen-fuzz-{}-{name}", std::process::id()))
}

#[test]
fn our_checkpoint_loader() {
    use burn::config::Config;
    let device = Default::default();
    let config = TinyTrainConfig::load(asset("tiny_stdit.json")).unwrap();
    let model = config.init::<Flex>(&device).unwrap();
    let valid = std::fs::read(asset("tiny_stdit.safetensors")).unwrap();
    let report = fuzz::run_module_loader(
        "load_checkpoint",
        fuzz::cases(2000),
        0xc4e,
        "safetensors",
        &model,
        |i, s| fuzz::mutate_safetensors(&valid, i, s),
        |model, path| load_checkpoint(model, path),
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

/// The JSON config of a shipped model: a config that parses is built and loaded with the shipped
/// checkpoint.
#[test]
fn training_config() {
    let valid = std::fs::read(asset("tiny_stdit.json")).unwrap();
    let path = temp("config.json");
    let device = Default::default();
    let report = fuzz::run(
        "TinyTrainConfig + load_text_to_video",
        fuzz::cases(2000),
        0x7c0,
        |i, s| fuzz::mutate_json(&valid, i, s),
        |bytes| {
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            load_text_to_video::<Flex>(&path, asset("tiny_stdit.safetensors"), &device)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    let _ = std::fs::remove_file(&path);
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0 && report.accepted > 0, "{report}");
}

#[test]
fn caption_embedding_files() {
    let values: Vec<u8> = (0..2 * 3 * 4)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3, 4], &values)
            .unwrap();
    let valid = safetensors::serialize(vec![("y", view)], None).unwrap();
    let path = temp("captions.safetensors");
    let device = Default::default();
    let report = fuzz::run(
        "load_text_embeddings",
        fuzz::cases(2000),
        0xe3b,
        |i, s| fuzz::mutate_safetensors(&valid, i, s),
        |bytes| {
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            load_text_embeddings::<Flex>(&path, "y", &device)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    let _ = std::fs::remove_file(&path);
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

fn stdit3_fixture(name: &str) -> PathBuf {
    vidgen_testing::fixture_path(&format!("opensora_stdit3_tiny/{name}"))
}

/// Open-Sora's published STDiT3 layout (upstream key names, `rope.freqs`, fused projections).
#[test]
fn stdit3_checkpoint_loader() {
    use vidgen_models::opensora::load_stdit3_weights;
    use vidgen_models::stdit::StditConfig;
    let text = std::fs::read_to_string(stdit3_fixture("config.json")).unwrap();
    let (config, _) = StditConfig::from_upstream_config(&text).unwrap();
    let model = config.init::<Flex>(&Default::default()).unwrap();
    let valid = std::fs::read(stdit3_fixture("model.safetensors")).unwrap();
    let report = fuzz::run_module_loader(
        "load_stdit3_weights",
        fuzz::cases(2000),
        0x5d3,
        "safetensors",
        &model,
        |i, s| fuzz::mutate_safetensors(&valid, i, s),
        |model, path| load_stdit3_weights(model, &[path]).map(|_| ()),
    );
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

/// The hub's `config.json` (`STDiT3Config` keys); a config that parses is also built.
#[test]
fn stdit3_config() {
    use vidgen_models::stdit::StditConfig;
    let valid = std::fs::read(stdit3_fixture("config.json")).unwrap();
    let device = Default::default();
    let report = fuzz::run_json(
        "StditConfig::from_upstream_config",
        fuzz::cases(2000),
        0x5c3,
        &valid,
        |text| {
            let (config, _) = StditConfig::from_upstream_config(text).map_err(|e| e.to_string())?;
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
