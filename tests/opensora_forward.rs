//! The `opensora_forward` example's library function on the golden files: Open-Sora 1.2's STDiT3
//! config and checkpoint (single file, shards, f16) and upstream's forward arguments in, `out`
//! out, matching upstream's `STDiT3.forward` (`golden/gen_opensora_stdit3.py`); malformed files
//! give errors that name the file and key.

use burn::tensor::{DType, TensorData};
use std::path::{Path, PathBuf};
use vidgen::models::ModelError;
use vidgen::models::opensora::{forward_files, write_safetensors};
use vidgen::nn::ConfigError;
use vidgen_testing::{Flex, Golden, Tolerance, assert_close, fixture_path};

/// As `crates/vidgen-models/tests/opensora_stdit3.rs`: f32 round-off against upstream's float64
/// run (measured at most 2.6e-5 abs).
const UPSTREAM: Tolerance = Tolerance::new("UPSTREAM", 1e-4, 1e-3);
/// f16 weights against upstream's run of the f32 ones (measured at most 2.3e-3 abs).
const F16_WEIGHTS: Tolerance = Tolerance::new("F16_WEIGHTS", 5e-3, 5e-3);

const CASES: &str = "opensora_stdit3_cases.safetensors";

/// A scratch directory per test (removed at the end of the test).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vidgen_opensora_forward_{}_{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The case's forward arguments (all but `out`), under their plain names and file dtypes (int64
/// masks), with `x_mask` as bool.
fn inputs(g: &Golden, case: &str) -> Vec<(String, TensorData)> {
    let prefix = format!("{case}.");
    g.names()
        .into_iter()
        .filter_map(|name| name.strip_prefix(&prefix).map(|k| (name, k)))
        .filter(|(_, key)| *key != "out")
        .map(|(name, key)| {
            let data = g.data(name).unwrap().clone();
            let data = if key == "x_mask" {
                let flags: Vec<bool> = g.values(name).iter().map(|&v| v != 0.0).collect();
                TensorData::new(flags, data.shape.clone())
            } else {
                data
            };
            (key.to_owned(), data)
        })
        .collect()
}

fn write_inputs(path: &Path, tensors: &[(String, TensorData)]) {
    let named: Vec<(&str, TensorData)> = tensors
        .iter()
        .map(|(k, d)| (k.as_str(), d.clone()))
        .collect();
    write_safetensors(path, &named).unwrap();
}

#[test]
fn forward_files_matches_open_sora() {
    let g = Golden::open(CASES).unwrap();
    let device = Default::default();
    let dir = scratch_dir("run");
    let tiny = fixture_path("opensora_stdit3_tiny");
    let config = tiny.join("config.json");
    let cases: Vec<String> = g
        .meta("cases")
        .unwrap()
        .split(',')
        .map(Into::into)
        .collect();
    for case in &cases {
        let (input, out) = (
            dir.join(format!("{case}_in.safetensors")),
            dir.join(format!("{case}_out.safetensors")),
        );
        write_inputs(&input, &inputs(&g, case));
        let expected = g.tensor::<Flex, 5>(&format!("{case}.out"), &device);
        for (checkpoint, tol) in [
            (tiny.join("model.safetensors"), UPSTREAM),
            (
                fixture_path("opensora_stdit3_tiny_sharded/model.safetensors.index.json"),
                UPSTREAM,
            ),
            (fixture_path("opensora_stdit3_tiny_sharded"), UPSTREAM),
            (tiny.join("model.f16.safetensors"), F16_WEIGHTS),
        ] {
            let summary = forward_files::<Flex>(&config, &checkpoint, &input, &out, &device)
                .unwrap_or_else(|e| panic!("{case}, {}: {e}", checkpoint.display()));
            assert!(summary.config_report.unknown_keys.is_empty());
            assert_eq!(summary.out_shape, expected.dims());
            let written = Golden::from_path(&out).unwrap();
            assert_eq!(written.data("out").unwrap().dtype, DType::F32);
            assert_close(
                written.tensor::<Flex, 5>("out", &device),
                expected.clone(),
                tol,
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn malformed_files_name_the_file_and_key() {
    let g = Golden::open(CASES).unwrap();
    let device = Default::default();
    let dir = scratch_dir("malformed");
    let tiny = fixture_path("opensora_stdit3_tiny");
    let (config, checkpoint) = (tiny.join("config.json"), tiny.join("model.safetensors"));
    let out = dir.join("out.safetensors");
    let good = inputs(&g, "text_mask");
    let run = |tensors: Vec<(String, TensorData)>| {
        let input = dir.join("in.safetensors");
        write_inputs(&input, &tensors);
        forward_files::<Flex>(&config, &checkpoint, &input, &out, &device).unwrap_err()
    };
    let without = |key: &str| -> Vec<(String, TensorData)> {
        good.iter().filter(|(k, _)| k != key).cloned().collect()
    };
    let replaced = |key: &str, data: TensorData| -> Vec<(String, TensorData)> {
        let mut t = without(key);
        t.push((key.to_owned(), data));
        t
    };
    let input_path = dir.join("in.safetensors").display().to_string();

    let e = run(without("timestep"));
    assert!(
        matches!(&e, ModelError::MissingTensor { path, name } if *path == input_path && name == "timestep"),
        "{e}"
    );
    let e = run(replaced("x", TensorData::new(vec![0f32; 8], [2, 4])));
    assert!(
        matches!(&e, ModelError::Parse { path, message } if *path == input_path && message.contains("`x`")),
        "{e}"
    );
    let e = run(replaced("fps", TensorData::new(vec![8f32; 3], [3])));
    assert!(
        e.to_string().contains("`fps`") && e.to_string().contains("batch 3"),
        "{e}"
    );
    let e = run(replaced(
        "y",
        TensorData::new(vec![0f32; 2 * 8 * 16], [2, 8, 1, 16]),
    ));
    assert!(e.to_string().contains("`y`"), "{e}");
    let e = run(replaced(
        "timestep",
        TensorData::new(vec![f32::NAN, 1.0], [2]),
    ));
    assert!(
        e.to_string().contains("`timestep`") && e.to_string().contains("NaN"),
        "{e}"
    );
    let e = run(without("width"));
    assert!(
        e.to_string().contains("`height`") && e.to_string().contains("width"),
        "{e}"
    );
    // The right rank but the wrong caption width reaches the model, which names the input.
    let e = run(replaced(
        "y",
        TensorData::new(vec![0f32; 2 * 8 * 3], [2, 1, 8, 3]),
    ));
    assert!(
        matches!(
            e,
            ModelError::Config(ConfigError::ShapeMismatch {
                what: "text width (d_text)",
                ..
            })
        ),
        "{e}"
    );

    // Not a safetensors file at all.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not safetensors").unwrap();
    let e = forward_files::<Flex>(&config, &checkpoint, &junk, &out, &device).unwrap_err();
    assert!(
        matches!(&e, ModelError::Parse { path, .. } if path.contains("junk")),
        "{e}"
    );
    // A missing checkpoint and a config of the wrong type name their file / key.
    let input = dir.join("good.safetensors");
    write_inputs(&input, &good);
    let missing = dir.join("nope.safetensors");
    let e = forward_files::<Flex>(&config, &missing, &input, &out, &device).unwrap_err();
    assert!(e.to_string().contains("nope.safetensors"), "{e}");
    let bad_config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&bad_config, text.replace("\"depth\": 2", "\"depth\": 2.5")).unwrap();
    let e = forward_files::<Flex>(&bad_config, &checkpoint, &input, &out, &device).unwrap_err();
    assert!(
        matches!(&e, ModelError::Config(ConfigError::Unsupported { field: "depth", value, .. }) if value == "2.5"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
