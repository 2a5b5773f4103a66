//! `train_tiny` end to end at test size: a short burn-train run of the rectified-flow loss on the
//! moving-shapes data lowers the loss, and a checkpoint round trip reproduces the model exactly;
//! a stopped run resumes to the same weights bit for bit; a NaN loss stops training with the step.

use burn::tensor::Tensor;
use vidgen_models::data::MovingShapesConfig;
use vidgen_models::stdit::StditConfig;
use vidgen_models::tiny::TinyTrainConfig;
use vidgen_models::train::{Interrupter, TrainOptions, first_last_means, train, train_with};
use vidgen_models::{ModelError, load_checkpoint, save_checkpoint};
use vidgen_testing::{AutodiffFlex, Flex, Tolerance, assert_close};

/// Burn's random generator is global to the process: the tests here run one at a time so that a
/// seeded initialisation is not interleaved with another test's random draws.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test-sized setup: 4 frames of 8×8, d_model 32, one block pair.
fn small(steps: usize) -> TinyTrainConfig {
    let model = StditConfig::new(32, 2, 1, 16)
        .with_in_channels(3)
        .with_max_frames(4)
        .with_text_max_len(4)
        .with_frequency_dim(32);
    let data = MovingShapesConfig::new(1)
        .with_frames(4)
        .with_size(8)
        .with_shape_size(3.0);
    TinyTrainConfig::new(model, data)
        .with_steps(steps)
        .with_batch_size(4)
        .with_learning_rate(3e-3)
}

#[test]
fn short_run_lowers_the_loss_and_checkpoint_round_trips() {
    let _serial = serial();
    let device = Default::default();
    let config = small(40);
    let dir = std::env::temp_dir().join("vidgen_train_tiny_test");
    let (model, losses) = train::<AutodiffFlex>(&config, &[device], &dir).unwrap();
    assert_eq!(losses.len(), 40, "one loss per step");
    let (first, last) = first_last_means(&losses, 0.1);
    assert!(
        last < first,
        "loss did not fall: first 10 % {first}, last 10 % {last}"
    );

    let path = dir.join("model.safetensors");
    save_checkpoint(&model, &path).unwrap();
    let mut loaded = config.init::<Flex>(&device).unwrap();
    load_checkpoint(&mut loaded, &path).unwrap();
    let x = Tensor::<Flex, 5>::random(
        [1, 3, 4, 8, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run = |m: &vidgen_models::TextVideoModel<Flex>| {
        let ids = Tensor::<Flex, 2, burn::tensor::Int>::from_ints([[2, 5, 7, 9]], &device);
        let text = vidgen_models::TextConditioning::new(m.text_embedder.forward(ids));
        m.model
            .forward(
                x.clone(),
                Tensor::from_floats([300.0], &device),
                &text,
                Tensor::from_floats([8.0], &device),
                None,
            )
            .unwrap()
    };
    // Same parameters, same ops: the outputs must be bit-identical.
    assert_close(run(&loaded), run(&model), Tolerance::EXACT);
}

/// The parameters of a trained model, flattened, for bit-exact comparison.
fn weights(model: &vidgen_models::TextVideoModel<Flex>) -> Vec<(String, Vec<u32>)> {
    use burn_store::ModuleSnapshot;
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let data = t.to_data().unwrap().to_vec::<f32>().unwrap();
            (t.full_path(), data.iter().map(|v| v.to_bits()).collect())
        })
        .collect()
}

#[test]
fn a_stopped_run_resumes_to_the_same_weights_bit_for_bit() {
    let _serial = serial();
    let device = Default::default();
    let config = small(8).with_checkpoint_every(2);
    let root = std::env::temp_dir().join(format!("vidgen_resume_test_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    let (full, full_losses) = train::<AutodiffFlex>(&config, &[device], root.join("full")).unwrap();
    assert_eq!(full_losses.len(), 8);

    // Stop the second run from outside once its second checkpoint is on disk: it ends somewhere
    // in the third or fourth stretch (or just after the last step), whatever the timing.
    let dir = root.join("stopped");
    let interrupter = Interrupter::new();
    let watcher = {
        let (interrupter, marker) = (
            interrupter.clone(),
            dir.join("checkpoint").join("model-2.mpk"),
        );
        std::thread::spawn(move || {
            while !marker.exists() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            interrupter.stop(Some("test"));
        })
    };
    let options = TrainOptions {
        interrupter: Some(interrupter),
        ..Default::default()
    };
    let (_, first_losses) = train_with::<AutodiffFlex>(&config, &[device], &dir, &options).unwrap();
    watcher.join().unwrap();
    // A crash mid-write of a later checkpoint leaves only a partial file, which resuming ignores.
    std::fs::write(dir.join("checkpoint").join("model-9.mpk.partial"), b"torn").unwrap();

    let resume = TrainOptions {
        resume: true,
        ..Default::default()
    };
    let (resumed, resumed_losses) =
        train_with::<AutodiffFlex>(&config, &[device], &dir, &resume).unwrap();
    // The resumed steps are the uninterrupted run's last steps, loss for loss.
    assert!(resumed_losses.len() <= 4, "resumed from stretch 2 or later");
    assert!(first_losses.len() + resumed_losses.len() >= 8);
    assert_eq!(
        resumed_losses.as_slice(),
        &full_losses[8 - resumed_losses.len()..]
    );
    assert_eq!(
        weights(&resumed),
        weights(&full),
        "weights differ after resuming"
    );

    // Resuming with another configuration is refused, naming the field.
    let other = config.clone().with_learning_rate(1e-4);
    let err = train_with::<AutodiffFlex>(&other, &[device], &dir, &resume).unwrap_err();
    assert!(
        matches!(&err, ModelError::ResumeMismatch { fields, .. } if fields == &["learning_rate"]),
        "{err}"
    );
    // Resuming where nothing was trained is an error naming the directory.
    let err =
        train_with::<AutodiffFlex>(&config, &[device], root.join("nothing"), &resume).unwrap_err();
    assert!(err.to_string().contains("nothing"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_non_finite_loss_stops_training_with_the_step() {
    let _serial = serial();
    let device = Default::default();
    // A NaN frame rate reaches the model's conditioning: the first loss is NaN.
    let config = small(4).with_checkpoint_every(2).with_fps(f64::NAN);
    let dir = std::env::temp_dir().join(format!("vidgen_nan_loss_test_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let err = train::<AutodiffFlex>(&config, &[device], &dir).unwrap_err();
    match err {
        ModelError::NonFiniteLoss { step, loss } => {
            assert_eq!(step, 1);
            assert!(loss.is_nan());
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    assert!(
        !dir.join("checkpoint").join("model-1.mpk").exists(),
        "no checkpoint of the bad stretch"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every float parameter's path and values.
fn params(model: &vidgen_models::tiny::TextVideoModel<Flex>) -> Vec<(String, Vec<f32>)> {
    use burn_store::ModuleSnapshot;
    model
        .collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

/// Largest absolute difference between two models' parameters (same paths in the same order).
fn max_param_diff(
    a: &vidgen_models::tiny::TextVideoModel<Flex>,
    b: &vidgen_models::tiny::TextVideoModel<Flex>,
) -> f32 {
    let (a, b) = (params(a), params(b));
    assert_eq!(a.len(), b.len());
    let mut max = 0.0f32;
    for ((pa, va), (pb, vb)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        for (x, y) in va.iter().zip(vb) {
            max = max.max((x - y).abs());
        }
    }
    max
}

/// Two devices (burn-train's multi-device strategy; on CPU two workers on the same device) with
/// the global batch split between them give the weights of one device with the whole batch:
/// each device's loss is scaled by 1/2, so burn-train's sum of the two gradients is the average,
/// and the learning-rate schedule advances once per optimiser step. Three steps (the cosine
/// schedule changes the rate at each) with one step per stretch, so both runs group the same
/// items into each step; the data, noise and times of every item come from its own seed. The
/// loss of each step is the mean of the devices' losses.
#[test]
fn two_devices_train_like_one() {
    let _serial = serial();
    let device = Default::default();
    let config = small(3).with_checkpoint_every(1);
    let root = std::env::temp_dir().join("vidgen_train_tiny_devices");
    let (one, one_losses) = train::<AutodiffFlex>(&config, &[device], root.join("one")).unwrap();
    let (two, two_losses) =
        train::<AutodiffFlex>(&config, &[device, device], root.join("two")).unwrap();
    assert_eq!(two_losses.len(), 3, "one loss per optimiser step");
    for (a, b) in one_losses.iter().zip(&two_losses) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "losses {one_losses:?} vs {two_losses:?}"
        );
    }
    let same = max_param_diff(&one, &two);
    eprintln!("max |Δw| one vs two devices after 3 steps: {same:e}");
    assert!(
        same < 1e-5,
        "two devices moved the weights {same} away from one device"
    );
    // A schedule advancing once per device and step would give steps 2 and 3 the rates of
    // positions 2 and 4 of the 3-step cosine (3e-3 → 1e-4): AdamW moves every weight by about
    // the rate, so the weights would differ by ~1e-3, far above the tolerance.
    let odd = small(3).with_batch_size(3);
    let err = train::<AutodiffFlex>(&odd, &[device, device], root.join("odd")).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}

/// The gradient burn-train applies on two devices — its sum (`GradientsAccumulator`) of the
/// devices' gradients, each of the device's loss scaled by 1/2 — equals the gradient of the
/// whole batch on one device, for every parameter.
#[test]
fn device_gradients_sum_to_the_batch_gradient() {
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{GradientsAccumulator, GradientsParams};
    use burn_train::TrainStep;
    use vidgen_models::data::MovingShapesBatcher;
    use vidgen_models::tiny::TextVideoModel;

    /// Compares the two gradients of every float parameter.
    struct Compare {
        sum: GradientsParams,
        whole: GradientsParams,
        checked: usize,
    }
    impl ModuleVisitor<AutodiffFlex> for Compare {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AutodiffFlex, D>>) {
            let sum = self.sum.get::<Flex, D>(param.id);
            let whole = self.whole.get::<Flex, D>(param.id);
            match (sum, whole) {
                (Some(a), Some(b)) => {
                    assert_close(a, b, Tolerance::new("DEVICE_GRADIENT_SUM", 1e-6, 1e-4));
                    self.checked += 1;
                }
                (None, None) => {}
                (a, b) => panic!(
                    "gradient present in one run only: sum {}, whole {}",
                    a.is_some(),
                    b.is_some()
                ),
            }
        }
    }

    let _serial = serial();
    let device = Default::default();
    let config = small(1);
    let mut model = config.init::<AutodiffFlex>(&device).unwrap();
    let data = MovingShapesConfig {
        len: 4,
        ..config.data.clone()
    }
    .init()
    .unwrap();
    let items: Vec<_> = (0..4).map(|i| data.get(i).unwrap()).collect();
    let batcher = MovingShapesBatcher::default();
    let whole = TrainStep::step(&model, batcher.batch(items.clone(), &device)).grads;
    model.loss_scale = 0.5;
    let mut sum = GradientsAccumulator::<TextVideoModel<AutodiffFlex>>::new();
    for half in items.chunks(2) {
        let grads = TrainStep::step(&model, batcher.batch(half.to_vec(), &device)).grads;
        sum.accumulate(&model, grads);
    }
    let mut compare = Compare {
        sum: sum.grads(),
        whole,
        checked: 0,
    };
    model.visit(&mut compare);
    assert!(
        compare.checked > 10,
        "only {} gradients compared",
        compare.checked
    );
}

/// LoRA fine-tuning from a trained checkpoint on data with a new colour word: the base weights
/// stay bit-identical, the adapters' `B` (zero at start) and the new word's embedding row
/// change; the adapter file holds exactly those, and base + adapter file reload to the trained
/// model. LoRA without a base checkpoint is refused naming the field.
#[test]
fn lora_fine_tuning_trains_adapters_and_the_new_word_only() {
    use vidgen_models::data::Colour;
    use vidgen_models::tiny::load_lora_text_to_video;
    use vidgen_models::{LoraConfig, save_lora};
    let _serial = serial();
    let device = Default::default();
    let root = std::env::temp_dir().join(format!("vidgen_lora_finetune_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (base, _) = train::<AutodiffFlex>(&small(2), &[device], root.join("base")).unwrap();
    let base_path = root.join("base.safetensors");
    save_checkpoint(&base, &base_path).unwrap();

    let lora = LoraConfig::new(
        2,
        4.0,
        vec!["q_linear".into(), "kv_linear".into(), "fc2".into()],
    );
    let mut config = small(3).with_lora(Some(lora.clone()));
    config.data.colours = Some(vec![Colour::Red, Colour::Yellow]);
    let err = train::<AutodiffFlex>(&config, &[device], root.join("no_base")).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Config(vidgen_models::ConfigError::Unsupported { field: "lora", .. })
        ),
        "{err:?}"
    );
    let config = config.with_base_checkpoint(Some(base_path.display().to_string()));
    let start = config.init_from_base::<Flex>(&device).unwrap();
    let (tuned, losses) = train::<AutodiffFlex>(&config, &[device], root.join("tuned")).unwrap();
    assert_eq!(losses.len(), 3);

    let (before, after, base_weights) = (weights(&start), weights(&tuned), weights(&base));
    assert_eq!(before.len(), after.len());
    let (mut frozen, mut trained) = (0, Vec::new());
    for ((path, a), (path_b, b)) in before.iter().zip(&after) {
        assert_eq!(path, path_b);
        if let Some((_, w)) = base_weights.iter().find(|(p, _)| p == path) {
            assert_eq!(a, w, "{path}: not the base checkpoint's");
            assert_eq!(a, b, "{path}: a base weight moved");
            frozen += 1;
        } else {
            assert_ne!(a, b, "{path}: an adapter parameter did not train");
            trained.push(path.clone());
        }
    }
    // q_linear, kv_linear (cross-attention) and fc2 in each of the two blocks (spatial and
    // temporal): 3 × 2 adapters of A and B each, plus the new word's row.
    assert_eq!(trained.len(), 3 * 2 * 2 + 1, "{trained:?}");
    assert!(
        trained.iter().any(|p| p == "text_embedder.new_tokens"),
        "{trained:?}"
    );
    assert_eq!(frozen, base_weights.len());

    let adapter = root.join("adapter.safetensors");
    assert_eq!(save_lora(&tuned, &adapter).unwrap(), trained.len());
    let config_path = root.join("tuned.json");
    burn::config::Config::save(&config, &config_path).unwrap();
    let (pipeline, _) =
        load_lora_text_to_video::<Flex>(&config_path, &base_path, &adapter, &device).unwrap();
    let merged = config.pipeline(tuned).unwrap();
    let options = vidgen_models::GenerateOptions {
        latent_size: [3, 4, 8, 8],
        num_steps: 2,
        ..config.generate_options(3)
    };
    let prompts = ["yellow square moving up", "red circle moving left"];
    let a = pipeline.generate(&prompts, &options, &device).unwrap();
    let b = merged.generate(&prompts, &options, &device).unwrap();
    assert_close(a, b, Tolerance::EXACT);
    let _ = std::fs::remove_dir_all(root);
}
