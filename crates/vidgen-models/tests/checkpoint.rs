//! Checkpoints: save → load round trips exactly, and a checkpoint of another configuration fails
//! with a typed error naming a key while leaving the module unchanged.

use burn::module::Module;
use burn::tensor::{ElementConversion, Tensor, backend::Backend};
use std::path::PathBuf;
use vidgen_models::checkpoint::{load_checkpoint, save_checkpoint};
use vidgen_models::stdit::{Stdit, StditConfig};
use vidgen_models::text::TextEmbedderConfig;
use vidgen_models::{ModelError, TextConditioning};
use vidgen_nn::checkpoint::CheckpointError;
use vidgen_schedulers::NoiseGenerator;
use vidgen_testing::{Tolerance, assert_close, backend_tests};

fn config(d_model: usize, depth: usize) -> StditConfig {
    StditConfig::new(d_model, 2, depth, 8)
        .with_frequency_dim(16)
        .with_max_frames(4)
        .with_text_max_len(4)
        .with_zero_init_temporal(false)
}

/// A fresh path per test and backend (tests run in parallel).
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "vidgen_ckpt_{}_{name}.safetensors",
        std::process::id()
    ))
}

/// The model's output on fixed inputs.
fn probe<B: Backend>(model: &Stdit<B>, device: &B::Device) -> Tensor<B, 5> {
    let mut rng = NoiseGenerator::seed_from_u64(3);
    let x = rng.normal::<B, 5>([1, 4, 2, 2, 2], device);
    let text = rng.normal::<B, 3>([1, 3, 8], device);
    let t = Tensor::full([1], 300.0, device);
    let fps = Tensor::full([1], 8.0, device);
    model
        .forward(
            x,
            t,
            &TextConditioning::from_lens(text, &[2]).unwrap(),
            fps,
            None,
        )
        .unwrap()
}

fn save_then_load_gives_identical_outputs<B: Backend>(device: &B::Device) {
    let path = temp(&format!("roundtrip_{:?}", B::name(device)).replace(['/', ' ', '"'], "_"));
    let saved = config(16, 2).init::<B>(device).unwrap();
    save_checkpoint(&saved, &path).unwrap();
    let mut loaded = config(16, 2).init::<B>(device).unwrap(); // other random weights
    let before = probe(&loaded, device);
    load_checkpoint(&mut loaded, &path).unwrap();
    let expected = probe(&saved, device);
    // Sanity: the two random inits differ, so the equality below is the checkpoint's doing.
    let diff: f32 = (before - expected.clone()).abs().max().into_scalar().elem();
    assert!(diff > 1e-4, "random inits agree (max diff {diff})");
    assert_close(probe(&loaded, device), expected, Tolerance::EXACT);
    // Every parameter came back, not only those the probe exercises.
    assert_eq!(loaded.num_params(), saved.num_params());
    let _ = std::fs::remove_file(path);
}

fn other_config_fails_typed_and_leaves_module_unchanged<B: Backend>(device: &B::Device) {
    let tag = format!("{:?}", B::name(device)).replace(['/', ' ', '"'], "_");
    let (wide, deep) = (temp(&format!("wide_{tag}")), temp(&format!("deep_{tag}")));
    save_checkpoint(&config(24, 1).init::<B>(device).unwrap(), &wide).unwrap();
    save_checkpoint(&config(16, 2).init::<B>(device).unwrap(), &deep).unwrap();

    let mut model = config(16, 1).init::<B>(device).unwrap();
    let before = probe(&model, device);
    // Another d_model: the first differing key, with both shapes.
    match load_checkpoint(&mut model, &wide).unwrap_err() {
        ModelError::Checkpoint(CheckpointError::TensorShapeMismatch {
            key,
            expected,
            found,
            ..
        }) => {
            assert!(!key.is_empty());
            assert_ne!(expected, found, "{key}");
            assert!(
                found.contains(&24) && expected.contains(&16),
                "{key}: {found:?} vs {expected:?}"
            );
        }
        other => panic!("expected TensorShapeMismatch, got {other}"),
    }
    assert_close(probe(&model, device), before.clone(), Tolerance::EXACT);
    // Another depth: block 1's keys have no place in a depth-1 model...
    match load_checkpoint(&mut model, &deep).unwrap_err() {
        ModelError::Checkpoint(CheckpointError::UnexpectedKeys { keys, .. }) => {
            assert!(
                keys.iter().any(|k| k.starts_with("spatial_blocks.1.")),
                "{keys:?}"
            );
            assert!(
                keys.iter().any(|k| k.starts_with("temporal_blocks.1.")),
                "{keys:?}"
            );
        }
        other => panic!("expected UnexpectedKeys, got {other}"),
    }
    assert_close(probe(&model, device), before, Tolerance::EXACT);
    // ... and a depth-2 model misses them in a depth-1 file.
    let shallow = temp(&format!("shallow_{tag}"));
    save_checkpoint(&model, &shallow).unwrap();
    let mut deeper = config(16, 2).init::<B>(device).unwrap();
    match load_checkpoint(&mut deeper, &shallow).unwrap_err() {
        ModelError::Checkpoint(CheckpointError::MissingKeys { keys, .. }) => {
            assert!(
                keys.contains(&"spatial_blocks.1.scale_shift_table.scale_shift_table".to_string()),
                "{keys:?}"
            );
        }
        other => panic!("expected MissingKeys, got {other}"),
    }
    for p in [wide, deep, shallow] {
        let _ = std::fs::remove_file(p);
    }
}

fn other_modules_round_trip<B: Backend>(device: &B::Device) {
    let path = temp(&format!("text_{:?}", B::name(device)).replace(['/', ' ', '"'], "_"));
    let saved = TextEmbedderConfig::new(5, 4).init::<B>(device).unwrap();
    save_checkpoint(&saved, &path).unwrap();
    let mut loaded = TextEmbedderConfig::new(5, 4).init::<B>(device).unwrap();
    load_checkpoint(&mut loaded, &path).unwrap();
    assert_close(
        loaded.embedding.weight.val(),
        saved.embedding.weight.val(),
        Tolerance::EXACT,
    );
    let _ = std::fs::remove_file(path);
}

backend_tests!(
    save_then_load_gives_identical_outputs,
    other_config_fails_typed_and_leaves_module_unchanged,
    other_modules_round_trip,
);

#[test]
fn unreadable_files_are_io_and_parse_errors() {
    type B = vidgen_testing::Flex;
    let device = Default::default();
    let mut model = config(16, 1).init::<B>(&device).unwrap();
    let missing = temp("does_not_exist");
    let e = load_checkpoint(&mut model, &missing).unwrap_err();
    assert!(
        matches!(&e, ModelError::Checkpoint(CheckpointError::Io { path, .. }) if path.contains("does_not_exist")),
        "{e}"
    );
    let garbage = temp("garbage");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let e = load_checkpoint(&mut model, &garbage).unwrap_err();
    assert!(
        matches!(&e, ModelError::Checkpoint(CheckpointError::Parse { path, .. }) if path.contains("garbage")),
        "{e}"
    );
    let _ = std::fs::remove_file(garbage);
}
