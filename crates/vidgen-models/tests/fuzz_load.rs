//! vidgen-models' loaders on thousands of malformed files (`vidgen_testing::fuzz`): our own
//! checkpoints (the shipped tiny STDiT's), the training/model JSON config, Open-Sora's STDiT3
//! checkpoint and `config.json`, and caption-embedding files. Nothing may panic or abort; after
//! every failed checkpoint load the model is bit-identical.
//!
//! 2,000 cases per loader by default; `VIDGEN_FUZZ_CASES=100000` for the long run.

use std::path::PathBuf;
use vidgen_models::tiny::load_text_to_video;
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

/// The files a resumed training run reads (`check_resume`, what `train_with` runs before
/// resuming): the stored `train_config.json` and the model, optimiser and scheduler records of
/// the newest checkpoint, each mutated in turn.
#[cfg(feature = "train")]
#[test]
fn training_checkpoint_dir() {
    use vidgen_models::data::MovingShapesConfig;
    use vidgen_models::stdit::StditConfig;
    use vidgen_models::train::{check_resume, train};
    use vidgen_testing::AutodiffFlex;
    let device = Default::default();
    let model = StditConfig::new(16, 2, 1, 8)
        .with_in_channels(3)
        .with_max_frames(2)
        .with_text_max_len(4)
        .with_frequency_dim(16);
    let data = MovingShapesConfig::new(1).with_frames(2).with_size(8);
    let config = TinyTrainConfig::new(model, data)
        .with_steps(2)
        .with_batch_size(1)
        .with_checkpoint_every(1);
    let dir = temp("run");
    let _ = std::fs::remove_dir_all(&dir);
    train::<AutodiffFlex>(&config, &[device], &dir).unwrap();
    assert_eq!(check_resume::<AutodiffFlex>(&config, &dir, &device), Ok(2));
    let files = [
        dir.join("train_config.json"),
        dir.join("checkpoint/model-2.mpk"),
        dir.join("checkpoint/optim-2.mpk"),
        dir.join("checkpoint/scheduler-2.mpk"),
    ];
    let valid: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let which = std::cell::Cell::new(0);
    let report = fuzz::run(
        "check_resume (train_config.json, model/optim/scheduler .mpk)",
        fuzz::cases(2000),
        0x2e5,
        |i, s| {
            which.set((i % 4) as usize);
            if i % 4 == 0 {
                fuzz::mutate_json(&valid[0], i, s)
            } else {
                fuzz::mutate_bytes(&valid[(i % 4) as usize], i, s)
            }
        },
        |bytes| {
            let k = which.get();
            // Put the valid file back even if the load panics.
            let _restore = Restore(&files[k], &valid[k]);
            std::fs::write(&files[k], bytes).map_err(|e| e.to_string())?;
            check_resume::<AutodiffFlex>(&config, &dir, &device)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{report}");
    assert!(report.panics.is_empty(), "{report}");
    assert!(report.rejected > 0, "{report}");
}

/// Writes `bytes` to the path when dropped.
#[cfg(feature = "train")]
struct Restore<'a>(&'a std::path::Path, &'a [u8]);

#[cfg(feature = "train")]
impl Drop for Restore<'_> {
    fn drop(&mut self) {
        std::fs::write(self.0, self.1).expect("restore the valid file");
    }
}
