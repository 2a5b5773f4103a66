//! Open-Sora 1.2 STDiT3 against upstream: a tiny checkpoint written by upstream's own code
//! (`golden/gen_opensora_stdit3.py`, float64 forward of the float32 weights) loaded by its
//! upstream key names — single file, shards, f16 and bf16 — and run on every case (caption
//! masks, conditioning frames, padding to the patch grid, the CFG batch).

use burn::tensor::{Tensor, backend::Backend};
use vidgen_models::ConfigError;
use vidgen_models::opensora::{
    STDIT3_KEY_MAP, load_stdit3_dir, load_stdit3_weights, read_forward_inputs,
};
use vidgen_models::stdit::{Stdit, StditConfig};
use vidgen_models::{Kernel, ModelError, WithKernel};
use vidgen_nn::checkpoint::CheckpointError;
use vidgen_testing::{Golden, Tolerance, assert_close, backend_tests, fixture_path};

/// f32 model vs upstream's float64 run of the same weights: two block pairs of f32 rounding;
/// upstream's own f32 steps (timestep/fps sinusoids, QK RMSNorm, softmax) are in the expected
/// values too. Measured on flex: max abs 2.6e-5 (13 % of this allowance), outputs of size ~1.
const UPSTREAM: Tolerance = Tolerance::new("UPSTREAM", 1e-4, 1e-3);
/// f16 weights (rounded to 2⁻¹¹ relative) vs the f32 ones, through the whole model. Measured on
/// flex: max abs 2.3e-3.
const F16_WEIGHTS: Tolerance = Tolerance::new("F16_WEIGHTS", 5e-3, 5e-3);
/// bf16 weights (rounded to 2⁻⁸ relative) vs the f32 ones, through the whole model. Measured on
/// flex: max abs 2.2e-2.
const BF16_WEIGHTS: Tolerance = Tolerance::new("BF16_WEIGHTS", 5e-2, 5e-2);

const CASES_FILE: &str = "opensora_stdit3_cases.safetensors";

fn cases() -> Vec<String> {
    let golden = Golden::open(CASES_FILE).unwrap();
    let cases = golden.meta("cases").expect("metadata `cases`").to_owned();
    cases.split(',').map(str::to_owned).collect()
}

fn run<B: Backend>(model: &Stdit<B>, case: &str, device: &B::Device) -> Tensor<B, 5> {
    let input = read_forward_inputs::<B>(fixture_path(CASES_FILE), &format!("{case}."), device)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    model
        .forward_input(input)
        .unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn expected<B: Backend>(case: &str, device: &B::Device) -> Tensor<B, 5> {
    Golden::open(CASES_FILE)
        .unwrap()
        .tensor::<B, 5>(&format!("{case}.out"), device)
}

fn matches_upstream_on_every_case<B: Backend>(device: &B::Device) {
    let (model, report) =
        load_stdit3_dir::<B>(fixture_path("opensora_stdit3_tiny"), device).unwrap();
    assert!(report.unknown_keys.is_empty(), "{report:?}");
    assert_eq!(model.out_channels(), 8);
    let names = cases();
    for case in ["text_mask", "x_mask", "padding", "cfg"] {
        assert!(names.iter().any(|c| c == case), "case {case} missing");
    }
    for case in &names {
        let out = run(&model, case, device);
        assert_close(out, expected::<B>(case, device), UPSTREAM);
    }
    // The reference twin (naive attention) agrees as well.
    let input = read_forward_inputs::<B>(fixture_path(CASES_FILE), "x_mask.", device).unwrap();
    let slow = model.with_kernel(Kernel::Reference);
    let slow = slow.forward_input(input).unwrap();
    assert_close(slow, expected::<B>("x_mask", device), UPSTREAM);
}

fn shards_give_identical_output<B: Backend>(device: &B::Device) {
    let (single, _) = load_stdit3_dir::<B>(fixture_path("opensora_stdit3_tiny"), device).unwrap();
    let (sharded, _) =
        load_stdit3_dir::<B>(fixture_path("opensora_stdit3_tiny_sharded"), device).unwrap();
    for case in cases() {
        let a = run(&single, &case, device);
        let b = run(&sharded, &case, device);
        assert_close(a, b, Tolerance::EXACT);
    }
}

fn half_precision_files_load<B: Backend>(device: &B::Device) {
    let dir = fixture_path("opensora_stdit3_tiny");
    let (config, _) = StditConfig::from_upstream_config_file(dir.join("config.json")).unwrap();
    let (full, _) = load_stdit3_dir::<B>(&dir, device).unwrap();
    for (file, tol) in [
        ("model.f16.safetensors", F16_WEIGHTS),
        ("model.bf16.safetensors", BF16_WEIGHTS),
    ] {
        let mut half = config.init::<B>(device).unwrap();
        load_stdit3_weights(&mut half, &[dir.join(file)]).unwrap_or_else(|e| panic!("{e}"));
        for case in cases() {
            assert_close(run(&half, &case, device), run(&full, &case, device), tol);
        }
    }
}

backend_tests!(
    matches_upstream_on_every_case,
    shards_give_identical_output,
    half_precision_files_load,
);

type Cpu = vidgen_testing::Flex;

#[test]
fn config_conversion_and_report() {
    let text = std::fs::read_to_string(fixture_path("opensora_stdit3_tiny/config.json")).unwrap();
    let (config, report) = StditConfig::from_upstream_config(&text).unwrap();
    assert_eq!(
        (config.d_model, config.n_heads, config.depth, config.d_text),
        (24, 2, 2, 16)
    );
    assert_eq!((config.in_channels, config.out_channels()), (4, 8));
    assert_eq!((config.text_max_len, config.input_sq_size), (8, 32.0));
    assert!(config.qk_norm && config.pred_sigma && config.final_t0_norm_modulated);
    assert!(report.unknown_keys.is_empty());
    let ignored: Vec<&str> = report.ignored.iter().map(|(k, _)| k.as_str()).collect();
    assert!(ignored.contains(&"class_dropout_prob") && ignored.contains(&"enable_flash_attn"));

    // Unknown keys are reported, not fatal.
    let extra = text.replacen('{', "{\"my_extension\": 3, ", 1);
    let (_, report) = StditConfig::from_upstream_config(&extra).unwrap();
    assert_eq!(report.unknown_keys, ["my_extension"]);

    // Wrong types and values name the key and the value.
    for (from, to, key, value) in [
        (
            "\"hidden_size\": 24",
            "\"hidden_size\": \"24\"",
            "hidden_size",
            "\"24\"",
        ),
        ("\"depth\": 2", "\"depth\": -2", "depth", "-2"),
        ("\"qk_norm\": true", "\"qk_norm\": 1", "qk_norm", "1"),
        (
            "\"model_type\": \"STDiT3\"",
            "\"model_type\": \"DiT\"",
            "model_type",
            "\"DiT\"",
        ),
    ] {
        let bad = text.replace(from, to);
        assert_ne!(bad, text, "{from}");
        match StditConfig::from_upstream_config(&bad).unwrap_err() {
            ModelError::Config(ConfigError::Unsupported {
                field, value: v, ..
            }) => {
                assert_eq!((field, v.as_str()), (key, value));
            }
            other => panic!("{key}: unexpected {other}"),
        }
    }
    let bad = text.replace("\"patch_size\": [\n    1,", "\"patch_size\": [\n    0,");
    let err = StditConfig::from_upstream_config(&bad).unwrap_err();
    assert!(err.to_string().contains("patch_size"), "{err}");
    assert!(matches!(
        StditConfig::from_upstream_config("[1, 2]"),
        Err(ModelError::Parse { .. })
    ));

    // Absent keys take STDiT3Config's defaults: the published XL/2 sizes.
    let (xl, _) = StditConfig::from_upstream_config("{}").unwrap();
    assert_eq!(
        (xl.d_model, xl.n_heads, xl.depth, xl.d_text, xl.text_max_len),
        (1152, 16, 28, 4096, 300)
    );
    assert_eq!(
        (xl.mlp_hidden(), xl.out_channels(), xl.d_model / xl.n_heads),
        (4608, 8, 72)
    );
    assert_eq!(xl.patch_size, [1, 2, 2]);
    xl.validate().unwrap();
}

/// Every parameter of our model, renamed by the key map, is one upstream key with upstream's
/// shape (checked at the tiny size against the fixture's header, which upstream wrote).
#[test]
fn key_map_covers_upstream_state_dict() {
    let dir = fixture_path("opensora_stdit3_tiny");
    let (config, _) = StditConfig::from_upstream_config_file(dir.join("config.json")).unwrap();
    let mut model = config.init::<Cpu>(&Default::default()).unwrap();
    let before = model.y_embedder.y_embedding.val().into_data();
    // A checkpoint of another size fails, naming the key, and leaves the model untouched.
    let mut wrong = config.clone();
    wrong.depth = 1;
    let mut small = wrong.init::<Cpu>(&Default::default()).unwrap();
    let err = load_stdit3_weights(&mut small, &[dir.join("model.safetensors")]).unwrap_err();
    match &err {
        ModelError::Checkpoint(CheckpointError::UnexpectedKeys { keys, .. }) => {
            assert!(keys.iter().all(|k| k.contains("blocks.1.")), "{keys:?}");
            assert!(keys.contains(&"spatial_blocks.1.attn.qkv.weight".to_owned()));
        }
        other => panic!("unexpected {other}"),
    }
    let mut narrow = config
        .clone()
        .with_mlp_ratio(2.0)
        .init::<Cpu>(&Default::default())
        .unwrap();
    let err = load_stdit3_weights(&mut narrow, &[dir.join("model.safetensors")]).unwrap_err();
    assert!(
        matches!(&err, ModelError::Checkpoint(CheckpointError::TensorShapeMismatch { key, .. }) if key.contains("mlp.fc")),
        "{err}"
    );
    assert_eq!(
        model.y_embedder.y_embedding.val().into_data(),
        before,
        "unchanged so far"
    );
    let n = load_stdit3_weights(&mut model, &[dir.join("model.safetensors")]).unwrap();
    // 12 of x_embedder, t_embedder, fps_embedder and t_block, 5 of y_embedder (y_embedding
    // included), 17 per block, 3 of the final layer, rope.freqs: the whole file.
    assert_eq!(n, 12 + 5 + 4 * 17 + 3 + 1);
    assert!(STDIT3_KEY_MAP.iter().any(|(up, _)| *up == ".attn.qkv."));
}

/// RoPE frequencies other than θ^(−2k/d) (a learnt `rope.freqs`) are refused, naming the key,
/// and the model is left as it was.
#[test]
fn other_rope_frequencies_are_refused() {
    let dir = fixture_path("opensora_stdit3_tiny");
    let file = Golden::from_path(dir.join("model.safetensors")).unwrap();
    let tensors: Vec<(&str, burn::tensor::TensorData)> = file
        .names()
        .into_iter()
        .map(|name| {
            let data = file.data(name).unwrap().clone();
            if name == "rope.freqs" {
                let doubled: Vec<f32> = file.values(name).iter().map(|v| 2.0 * *v as f32).collect();
                (
                    name,
                    burn::tensor::TensorData::new(doubled, data.shape.clone()),
                )
            } else {
                (name, data)
            }
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "vidgen_stdit3_rope_{}.safetensors",
        std::process::id()
    ));
    vidgen_models::opensora::write_safetensors(&path, &tensors).unwrap();
    let (config, _) = StditConfig::from_upstream_config_file(dir.join("config.json")).unwrap();
    let mut model = config.init::<Cpu>(&Default::default()).unwrap();
    let before = model.final_layer.linear.weight.val().into_data();
    let err = load_stdit3_weights(&mut model, &[&path]).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(
            err,
            ModelError::Config(ConfigError::Unsupported {
                field: "rope.freqs",
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(model.final_layer.linear.weight.val().into_data(), before);
}
