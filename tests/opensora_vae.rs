//! The `opensora_vae` example's library function on the golden files: Open-Sora 1.2's VAE
//! pipeline config, checkpoint and an input video in, `z` and `x_rec` out, matching upstream's
//! `VideoAutoencoderPipeline` (`golden/gen_opensora_vae.py`); malformed files give errors that
//! name the file and key.

use burn::tensor::{ElementConversion, TensorData};
use std::path::PathBuf;
use vidgen::vae::opensora::{run_files, write_f32_safetensors};
use vidgen_testing::{Flex, Golden, Tolerance, assert_close, fixture_path};

/// As `crates/vidgen-vae/tests/opensora_vae.rs`: f32 round-off against float64 (measured at most
/// 8.0e-7 abs on `z`, 2.8e-6 on `x_rec`).
const PIPELINE: Tolerance = Tolerance::new("PIPELINE", 2e-5, 1e-4);

/// A scratch directory per test (removed at the end of the test).
fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("vidgen_opensora_vae_{}_{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `x` (the golden case's input) as the example's input file.
fn write_input(g: &Golden, case: &str, path: &PathBuf) {
    let x = g.data(&format!("{case}.x")).unwrap().clone();
    write_f32_safetensors(path, &[("x", x)]).unwrap();
}

#[test]
fn run_files_matches_open_sora() {
    let g = Golden::open("opensora_vae_cases.safetensors").unwrap();
    let device = Default::default();
    let dir = scratch_dir("run");
    let scratch = |name: &str| dir.join(name);
    for case in ["t20", "t35"] {
        let (input, out) = (
            scratch(&format!("{case}_in.safetensors")),
            scratch(&format!("{case}_out.safetensors")),
        );
        write_input(&g, case, &input);
        let got = run_files::<Flex>(
            fixture_path("opensora_vae_tiny.json"),
            fixture_path("opensora_vae_tiny.safetensors"),
            &input,
            &out,
            None,
            &device,
        )
        .unwrap();
        assert_close(
            got.z.clone(),
            g.tensor(&format!("{case}.z"), &device),
            PIPELINE,
        );
        // The written file holds the same tensors, as f32.
        let written = Golden::from_path(&out).unwrap();
        for (key, t) in [("z", got.z.clone()), ("x_rec", got.x_rec.clone())] {
            let data: &TensorData = written.data(key).unwrap();
            assert_eq!(data.dtype, burn::tensor::DType::F32, "{key}");
            assert_close(written.tensor::<Flex, 5>(key, &device), t, Tolerance::EXACT);
        }
        // x_rec decodes our own z: compare with upstream's decode of its z.
        assert_close(
            got.x_rec.clone(),
            g.tensor(&format!("{case}.x_rec"), &device),
            PIPELINE,
        );
        // Sampling: seeded, so repeatable; different from the mean.
        let sampled = run_files::<Flex>(
            fixture_path("opensora_vae_tiny.json"),
            fixture_path("opensora_vae_tiny.safetensors"),
            &input,
            &out,
            Some(1),
            &device,
        )
        .unwrap();
        assert_eq!(sampled.z.dims(), got.z.dims());
        let d: f64 = (sampled.z - got.z).abs().max().into_scalar().elem();
        assert!(d > 1e-3, "{d}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn malformed_files_name_file_and_key() {
    let device = Default::default();
    let g = Golden::open("opensora_vae_cases.safetensors").unwrap();
    let dir = scratch_dir("malformed");
    let scratch = |name: &str| dir.join(name);
    let input = scratch("bad_in.safetensors");
    write_input(&g, "t20", &input);
    let out = scratch("bad_out.safetensors");
    let run = |config: PathBuf, checkpoint: PathBuf, inputs: &PathBuf| {
        run_files::<Flex>(config, checkpoint, inputs, &out, None, &device)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let (cfg, ckpt) = (
        fixture_path("opensora_vae_tiny.json"),
        fixture_path("opensora_vae_tiny.safetensors"),
    );
    // A config with a wrong width: the checkpoint's shapes disagree, named by key.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"filters\": 4", "\"filters\": 8");
    let wide = scratch("wide.json");
    std::fs::write(&wide, text).unwrap();
    let e = run(wide, ckpt.clone(), &input);
    assert!(e.contains("temporal_vae."), "{e}");
    // Not JSON.
    let junk = scratch("junk.json");
    std::fs::write(&junk, "{ not json").unwrap();
    let e = run(junk.clone(), ckpt.clone(), &input);
    assert!(e.contains("junk.json"), "{e}");
    // A wrong type under a key.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"micro_frame_size\": 17", "\"micro_frame_size\": \"17\"");
    let typed = scratch("typed.json");
    std::fs::write(&typed, text).unwrap();
    let e = run(typed, ckpt.clone(), &input);
    assert!(
        e.contains("micro_frame_size") && e.contains("typed.json"),
        "{e}"
    );
    // Checkpoint that is not safetensors.
    let e = run(cfg.clone(), junk, &input);
    assert!(e.contains("junk.json"), "{e}");
    // Inputs without `x`: the checkpoint file itself.
    let e = run(cfg.clone(), ckpt.clone(), &ckpt);
    assert!(
        e.contains("opensora_vae_tiny.safetensors") && e.contains('x'),
        "{e}"
    );
    // Missing files.
    let e = run(scratch("nope.json"), ckpt, &input);
    assert!(e.contains("nope.json"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
