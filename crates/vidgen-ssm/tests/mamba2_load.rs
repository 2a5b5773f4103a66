//! `Mamba2::load_mamba_ssm`: the g1 golden layer stored as mamba_ssm's state dict inside a full
//! model (`backbone.layers.3.mixer.` plus unrelated tensors; `golden/gen_ssm_mamba2.py
//! state_dict`), from `.safetensors` and from a `torch.save` pickle, loads into a freshly
//! initialised layer and reproduces the golden forward output; a bf16 copy loads within bf16
//! rounding; a wrong prefix names the missing keys with the prefix and leaves the layer unchanged.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::ModuleSnapshot;
use std::path::PathBuf;
use vidgen_nn::checkpoint::CheckpointError;
use vidgen_ssm::SsmError;
use vidgen_ssm::mamba2::{Mamba2, Mamba2Config};
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, fixture_path};

/// As `MAMBA2_GOLDEN` in `tests/mamba2.rs`: the same layer and input, weights loaded from another
/// file holding the same f32 values.
const MAMBA2_GOLDEN: Tolerance = Tolerance::new("MAMBA2_GOLDEN", 1e-4, 1e-3);
/// The layer with bf16-rounded weights against the f32 golden output. bf16 keeps 8 significant
/// bits: each weight moves by at most a relative `u = 2^-8 ≈ 3.9e-3`. in_proj, the conv, the scan
/// (through `A = −exp(A_log)` and `dt`), the norm and out_proj each add about `u` relative to the
/// layer's output scale (~4, weights of std 0.3), so an element's error follows that scale, not
/// its own value: measured on flex, max abs 3.4e-2 ≈ 8.6 u. Bound: `16 u` absolute plus `8 u`
/// relative.
const MAMBA2_BF16: Tolerance = Tolerance::new("MAMBA2_BF16", 16.0 / 256.0, 8.0 / 256.0);

const PREFIX: &str = "backbone.layers.3.mixer.";
const STATE_DICT: &str = "ssm_mamba2_state_dict";

fn meta_usize(g: &Golden, key: &str) -> usize {
    g.meta(key).unwrap().parse().unwrap()
}

/// A freshly initialised layer of the g1 fixture's config.
fn fresh<B: Backend>(g: &Golden, device: &B::Device) -> Mamba2<B> {
    Mamba2Config::new(meta_usize(g, "d_model"))
        .with_d_state(meta_usize(g, "d_state"))
        .with_d_conv(meta_usize(g, "d_conv"))
        .with_expand(meta_usize(g, "expand"))
        .with_head_dim(meta_usize(g, "head_dim"))
        .with_n_groups(meta_usize(g, "n_groups"))
        .with_chunk_size(meta_usize(g, "chunk_size"))
        .with_norm_before_gate(g.meta("norm_before_gate") == Some("True"))
        .with_bias(g.meta("bias") == Some("True"))
        .init::<B>(device)
        .unwrap()
}

/// Every parameter's path and values.
fn params<B: Backend>(m: &Mamba2<B>) -> Vec<(String, Vec<f32>)> {
    m.collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

fn loads_and_matches<B: Backend>(file: &str, device: &B::Device) {
    let g = Golden::open("ssm_mamba2_g1.safetensors").unwrap_or_else(|e| panic!("{e}"));
    let mut m = fresh::<B>(&g, device);
    let n = m
        .load_mamba_ssm(fixture_path(file), PREFIX)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        n, 8,
        "in_proj, conv1d ×2, dt_bias, A_log, D, norm, out_proj"
    );
    let u: Tensor<B, 3> = g.tensor("u", device);
    assert_close(m.forward(u), g.tensor("out", device), MAMBA2_GOLDEN);
}

fn safetensors_state_dict_matches_golden<B: Backend>(device: &B::Device) {
    loads_and_matches::<B>(&format!("{STATE_DICT}.safetensors"), device);
}

fn pickle_state_dict_matches_golden<B: Backend>(device: &B::Device) {
    loads_and_matches::<B>(&format!("{STATE_DICT}.bin"), device);
}

/// Rewrites the f32 state dict with every tensor in bf16.
fn write_bf16_copy() -> PathBuf {
    let bytes = std::fs::read(fixture_path(&format!("{STATE_DICT}.safetensors"))).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut halves = Vec::new();
    for (name, view) in file.tensors() {
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let half = TensorData::new(values, view.shape().to_vec()).convert_dtype(DType::BF16);
        halves.push((name, view.shape().to_vec(), half.as_bytes().to_vec()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = halves
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape.clone(), data)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    let thread = format!("{:?}", std::thread::current().id()).replace(['(', ')'], "");
    let path = std::env::temp_dir().join(format!(
        "vidgen_ssm_mamba2_bf16_{}_{thread}.safetensors",
        std::process::id()
    ));
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

fn bf16_state_dict_matches_within_rounding<B: Backend>(device: &B::Device) {
    let g = Golden::open("ssm_mamba2_g1.safetensors").unwrap();
    let path = write_bf16_copy();
    let mut m = fresh::<B>(&g, device);
    let loaded = m.load_mamba_ssm(&path, PREFIX);
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.unwrap_or_else(|e| panic!("{e}")), 8);
    assert_eq!(
        m.a_log.val().dtype(),
        DType::F32,
        "cast to the layer's dtype"
    );
    let u: Tensor<B, 3> = g.tensor("u", device);
    assert_close(m.forward(u), g.tensor("out", device), MAMBA2_BF16);
}

/// A prefix naming no layer: every parameter is missing, listed with the prefix; the layer is
/// unchanged. A prefix one level up finds the layer's tensors under `mixer.`, which have no place.
fn wrong_prefix_names_missing_keys<B: Backend>(device: &B::Device) {
    let g = Golden::open("ssm_mamba2_g1.safetensors").unwrap();
    let mut m = fresh::<B>(&g, device);
    let before = params(&m);
    for file in [".safetensors", ".bin"].map(|e| fixture_path(&format!("{STATE_DICT}{e}"))) {
        let err = m
            .load_mamba_ssm(&file, "backbone.layers.2.mixer")
            .unwrap_err();
        let SsmError::Checkpoint(CheckpointError::MissingKeys { path, keys }) = &err else {
            panic!("expected MissingKeys, got {err}");
        };
        assert_eq!(path, &file.display().to_string());
        let want: Vec<String> = [
            "A_log",
            "D",
            "conv1d.bias",
            "conv1d.weight",
            "dt_bias",
            "in_proj.weight",
            "norm.weight",
            "out_proj.weight",
        ]
        .iter()
        .map(|k| format!("backbone.layers.2.mixer.{k}"))
        .collect();
        assert_eq!(keys, &want, "{err}");
        assert!(before == params(&m), "the layer changed on error");
        let err = m.load_mamba_ssm(&file, "backbone.layers.3").unwrap_err();
        assert!(
            matches!(
                &err,
                SsmError::Checkpoint(CheckpointError::MissingKeys { .. })
            ),
            "{err}"
        );
        assert!(before == params(&m), "the layer changed on error");
    }
    let err = m.load_mamba_ssm("/nonexistent/pytorch_model.bin", PREFIX);
    assert!(
        matches!(&err, Err(SsmError::Checkpoint(CheckpointError::Io { .. }))),
        "{err:?}"
    );
}

backend_tests!(
    safetensors_state_dict_matches_golden,
    pickle_state_dict_matches_golden,
    bf16_state_dict_matches_within_rounding,
    wrong_prefix_names_missing_keys,
);
