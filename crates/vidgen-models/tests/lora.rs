//! LoRA on the STDiT: adapters start as the base model (to f32 round-off), change it once trained, merge into the
//! base weights with the same output, train alone (base frozen), and round-trip through their
//! own peft-layout safetensors file with typed errors that leave the model untouched.

use burn::module::{Module, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Tensor};
use vidgen_models::stdit::{Stdit, StditConfig};
use vidgen_models::{LoraConfig, TextConditioning, WithLora, load_lora, save_lora};
use vidgen_nn::checkpoint::CheckpointError;
use vidgen_nn::materialize;
use vidgen_schedulers::NoiseGenerator;
use vidgen_testing::fuzz::param_bytes;
use vidgen_testing::{Tolerance, assert_close, autodiff_backend_tests, backend_tests};

/// Merged weights vs base + adapter: the same products summed in another order.
const MERGED: Tolerance = Tolerance::new("LORA_MERGED", 1e-5, 1e-4);

/// A zero adapter added to the base output: exact on CPU, one rounding on fused GPU kernels.
const ZERO_ADAPTER: Tolerance = Tolerance::new("LORA_ZERO_ADAPTER", 1e-6, 1e-6);

const D_TEXT: usize = 8;

fn config() -> StditConfig {
    StditConfig::new(16, 2, 1, D_TEXT)
        .with_frequency_dim(16)
        .with_max_frames(4)
        .with_text_max_len(4)
        .with_zero_init_temporal(false)
}

fn lora() -> LoraConfig {
    LoraConfig::new(
        4,
        8.0,
        ["qkv", "q_linear", "kv_linear", "proj", "fc1", "fc2"]
            .map(String::from)
            .to_vec(),
    )
}

fn run<B: Backend>(model: &Stdit<B>, device: &B::Device) -> Tensor<B, 5> {
    let mut rng = NoiseGenerator::seed_from_u64(7);
    let x = rng.normal::<B, 5>([1, 4, 2, 4, 4], device);
    let text = rng.normal::<B, 3>([1, 3, D_TEXT], device);
    let text = TextConditioning::from_lens(text, &[3]).unwrap();
    model
        .forward(
            x,
            Tensor::full([1], 400.0, device),
            &text,
            Tensor::full([1], 8.0, device),
            None,
        )
        .unwrap()
}

/// Every adapter's `B` set to random values (a "trained" adapter).
fn randomise_adapters<B: Backend>(model: Stdit<B>) -> Stdit<B> {
    let randomise = |a: Option<vidgen_nn::LoraAdapter<B>>| {
        a.map(|mut a| {
            let w = a.lora_b.weight.val();
            let random = Tensor::random(w.dims(), Distribution::Normal(0.0, 0.1), &w.device());
            a.lora_b.weight = Param::from_tensor(random);
            a
        })
    };
    let mut model = model;
    for block in model.spatial_blocks.iter_mut() {
        let attn = &mut block.attn.attn;
        attn.qkv_lora = randomise(attn.qkv_lora.take());
        attn.proj_lora = randomise(attn.proj_lora.take());
        let cross = &mut block.cross_attn;
        cross.q_linear_lora = randomise(cross.q_linear_lora.take());
        cross.kv_linear_lora = randomise(cross.kv_linear_lora.take());
        block.mlp.fc1_lora = randomise(block.mlp.fc1_lora.take());
        block.mlp.fc2_lora = randomise(block.mlp.fc2_lora.take());
    }
    model
}

/// Attached adapters change nothing (B = 0); trained ones change the output; merged into the
/// base weights they give the adapted output and leave no adapter behind.
fn adapters_start_neutral_and_merge<B: Backend>(device: &B::Device) {
    let base = materialize(config().init::<B>(device).unwrap());
    let expected = run(&base, device);
    let adapted = base.clone().with_lora(&lora()).unwrap();
    assert!(adapted.spatial_blocks[0].attn.attn.qkv_lora.is_some());
    assert!(
        adapted.spatial_blocks[0]
            .cross_attn
            .kv_linear_lora
            .is_some()
    );
    assert!(adapted.temporal_blocks[0].mlp.fc2_lora.is_some());
    // Adding the zero adapter output is exact, but GPU backends may fuse the additions in
    // another order (1 ulp apart on wgpu): f32 round-off only.
    assert_close(run(&adapted, device), expected.clone(), ZERO_ADAPTER);
    let trained = randomise_adapters(adapted);
    let with_adapters = run(&trained, device);
    let change: f64 = (with_adapters.clone() - expected)
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert!(
        change > 1e-3,
        "trained adapters changed the output by {change}"
    );
    let merged = trained.merge_lora();
    assert!(merged.spatial_blocks[0].attn.attn.qkv_lora.is_none());
    assert_close(run(&merged, device), with_adapters, MERGED);
    let targeted = base
        .with_lora(&LoraConfig::new(2, 2.0, vec!["fc1".into()]))
        .unwrap();
    assert!(targeted.spatial_blocks[0].mlp.fc1_lora.is_some());
    assert!(targeted.spatial_blocks[0].mlp.fc2_lora.is_none());
    assert!(targeted.spatial_blocks[0].attn.attn.qkv_lora.is_none());
    let model = config().init::<B>(device).unwrap();
    for (bad, field) in [
        (LoraConfig::new(0, 8.0, vec!["fc1".into()]), "rank"),
        (LoraConfig::new(4, f64::NAN, vec!["fc1".into()]), "alpha"),
        (LoraConfig::new(4, 8.0, vec![]), "target_modules"),
    ] {
        let err = model.clone().with_lora(&bad).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

/// `no_grad()` then `with_lora`: the backward produces gradients for the adapters only.
fn only_adapters_get_gradients<B: AutodiffBackend>(device: &B::Device) {
    let model = config()
        .init::<B>(device)
        .unwrap()
        .no_grad()
        .with_lora(&lora())
        .unwrap();
    let model = randomise_adapters(model);
    let grads = run(&model, device).powi_scalar(2).mean().backward();
    let block = &model.spatial_blocks[0];
    assert!(
        block
            .attn
            .attn
            .qkv
            .as_ref()
            .unwrap()
            .weight
            .grad(&grads)
            .is_none()
    );
    assert!(block.mlp.fc1.weight.grad(&grads).is_none());
    let a = &block.attn.attn.qkv_lora.as_ref().unwrap();
    assert!(a.lora_a.weight.grad(&grads).is_some());
    assert!(a.lora_b.weight.grad(&grads).is_some());
    assert!(
        block
            .mlp
            .fc2_lora
            .as_ref()
            .unwrap()
            .lora_b
            .weight
            .grad(&grads)
            .is_some()
    );
}

backend_tests!(adapters_start_neutral_and_merge);
autodiff_backend_tests!(only_adapters_get_gradients);

/// The adapter file: peft keys and layouts, much smaller than the model, loads back into a base
/// model with fresh adapters to the same output; a file lacking a tensor, or a model without
/// adapters, is a typed error naming the key, and the model is unchanged.
#[test]
fn adapter_file_round_trips_in_peft_layout() {
    type B = vidgen_testing::Flex;
    let device = Default::default();
    let dir = std::env::temp_dir().join("vidgen_lora_test");
    std::fs::create_dir_all(&dir).unwrap();
    let base = materialize(config().init::<B>(&device).unwrap());
    let trained = randomise_adapters(base.clone().with_lora(&lora()).unwrap());
    let path = dir.join("adapter.safetensors");
    let n = save_lora(&trained, &path).unwrap();
    // A and B of 7 linears (self qkv, proj; cross q_linear, kv_linear, proj; fc1, fc2) in each
    // of the spatial and the temporal block.
    assert_eq!(n, 2 * 7 * 2);
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let a = file
        .tensor("spatial_blocks.0.attn.attn.qkv.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), [4, 16], "lora_A: [r, in]");
    let b = file
        .tensor("spatial_blocks.0.attn.attn.qkv.lora_B.weight")
        .unwrap();
    assert_eq!(b.shape(), [48, 4], "lora_B: [out, r]");
    let full = dir.join("full.safetensors");
    vidgen_models::save_checkpoint(&trained, &full).unwrap();
    let (adapter_size, full_size) = (
        std::fs::metadata(&path).unwrap().len(),
        std::fs::metadata(&full).unwrap().len(),
    );
    eprintln!("adapter file {adapter_size} B, full checkpoint {full_size} B");
    assert!(adapter_size * 2 < full_size);

    let mut fresh = base.clone().with_lora(&lora()).unwrap();
    let loaded = load_lora(&mut fresh, &path).unwrap();
    assert_eq!(loaded, n);
    assert_eq!(
        run(&fresh, &device).into_data(),
        run(&trained, &device).into_data()
    );

    // Errors: no adapters in the model; an adapter the file lacks. The model is unchanged.
    let mut plain = base.clone();
    let before = param_bytes::<B, _>(&plain);
    let err = load_lora(&mut plain, &path).unwrap_err();
    assert!(
        matches!(err, CheckpointError::UnexpectedKeys { .. }),
        "{err}"
    );
    assert_eq!(param_bytes::<B, _>(&plain), before);
    let mut wider = base.with_lora(&lora()).unwrap();
    let mut partial = safetensors::tensor::serialize(
        file.tensors()
            .into_iter()
            .filter(|(k, _)| !k.contains("fc2.lora_B")),
        None,
    )
    .unwrap();
    let partial_path = dir.join("partial.safetensors");
    std::fs::write(&partial_path, std::mem::take(&mut partial)).unwrap();
    let before = param_bytes::<B, _>(&wider);
    let err = load_lora(&mut wider, &partial_path).unwrap_err();
    match &err {
        CheckpointError::MissingKeys { keys, .. } => {
            assert!(
                keys.iter().all(|k| k.ends_with("mlp.fc2.lora_B.weight")),
                "{keys:?}"
            );
        }
        other => panic!("expected MissingKeys, got {other}"),
    }
    assert_eq!(param_bytes::<B, _>(&wider), before);
    let _ = std::fs::remove_dir_all(dir);
}
