//! The `opensora_sample` example's library function on the golden files: Open-Sora 1.2's STDiT3
//! and upstream's `RFLOW.sample` (v1.2.0, `golden/gen_opensora_sample.py`: 5 steps, guidance 7,
//! resolution- and length-aware transform, two captions of 5 and 3 valid tokens) from the same
//! initial noise to the same final latent; malformed inputs give errors naming the file and key.

use burn::tensor::{Tensor, TensorData};
use std::path::PathBuf;
use vidgen::models::opensora::{sample_files, write_safetensors};
use vidgen_testing::{Flex, Golden, Tolerance, assert_close, fixture_path};

/// f32 against upstream's float64 run through 5 guided model calls and Euler steps. One model
/// call is within 2.6e-5 of upstream (`crates/vidgen-models/tests/opensora_stdit3.rs`); guidance 7
/// scales the difference of the two calls by 7 (so up to 15 single-call errors per step), and
/// upstream keeps the model's output in f32. Measured on flex: final latent max abs error 4.6e-5
/// on values of O(1).
const UPSTREAM_SAMPLE: Tolerance = Tolerance::new("UPSTREAM_SAMPLE", 1e-4, 1e-4);
/// Upstream computes `t / 1000` in f32 before the transform, so its times differ from exact ones
/// by a few 1e-5 (measured: 3.1e-5 at most against ours, computed in f64).
const TIMESTEPS: Tolerance = Tolerance::new("TIMESTEPS", 1e-4, 1e-7);

const INPUT_KEYS: [&str; 7] = ["z", "y", "mask", "height", "width", "num_frames", "fps"];

fn tiny(name: &str) -> PathBuf {
    fixture_path(&format!("opensora_stdit3_tiny/{name}"))
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "vidgen_opensora_sample_{}_{name}",
        std::process::id()
    ))
}

fn write_inputs(g: &Golden, path: &PathBuf, skip: &str) {
    let tensors: Vec<(&str, TensorData)> = INPUT_KEYS
        .iter()
        .filter(|k| **k != skip)
        .map(|k| (*k, g.data(k).unwrap().clone()))
        .collect();
    write_safetensors(path, &tensors).unwrap();
}

#[test]
fn sample_files_matches_open_sora() {
    let g = Golden::open("opensora_sample_cases.safetensors").unwrap();
    let steps: usize = g.meta("steps").unwrap().parse().unwrap();
    let guidance: f64 = g.meta("guidance").unwrap().parse().unwrap();
    let (inputs, out) = (scratch("inputs.safetensors"), scratch("out.safetensors"));
    write_inputs(&g, &inputs, "");
    let mut calls = 0;
    let device = Default::default();
    let summary = sample_files::<Flex>(
        tiny("config.json"),
        tiny("model.safetensors"),
        &inputs,
        &out,
        steps,
        guidance,
        |_| calls += 1,
        &device,
    )
    .unwrap();
    assert_eq!(calls, steps);
    let ours: Vec<f32> = summary.timesteps.iter().map(|t| t[0] as f32).collect();
    let ours = Tensor::<Flex, 1>::from_data(TensorData::new(ours, [steps]), &device);
    assert_close(ours, g.tensor::<Flex, 1>("timesteps", &device), TIMESTEPS);
    let written = Golden::from_path(&out).unwrap();
    assert_close(
        written.tensor::<Flex, 5>("z", &device),
        g.tensor::<Flex, 5>("out", &device),
        UPSTREAM_SAMPLE,
    );
    let _ = std::fs::remove_file(&inputs);
    let _ = std::fs::remove_file(&out);
}

#[test]
fn malformed_inputs_name_the_file_and_key() {
    let g = Golden::open("opensora_sample_cases.safetensors").unwrap();
    let device = Default::default();
    let run = |inputs: &PathBuf| {
        sample_files::<Flex>(
            tiny("config.json"),
            tiny("model.safetensors"),
            inputs,
            scratch("unused.safetensors"),
            2,
            7.0,
            |_| {},
            &device,
        )
        .unwrap_err()
        .to_string()
    };
    for key in ["z", "num_frames", "height"] {
        let path = scratch(&format!("without_{key}.safetensors"));
        write_inputs(&g, &path, key);
        let message = run(&path);
        assert!(
            message.contains(key) && message.contains("without_"),
            "{message}"
        );
        let _ = std::fs::remove_file(&path);
    }
    // 16 frames: upstream's frame term is 0, every time would be 0.
    let path = scratch("sixteen.safetensors");
    let mut tensors: Vec<(&str, TensorData)> = INPUT_KEYS
        .iter()
        .map(|k| (*k, g.data(k).unwrap().clone()))
        .collect();
    let b = tensors[0].1.shape[0];
    tensors[5].1 = TensorData::new(vec![16i64; b], [b]);
    write_safetensors(&path, &tensors).unwrap();
    let message = run(&path);
    assert!(message.contains("ratio"), "{message}");
    let _ = std::fs::remove_file(&path);
}
