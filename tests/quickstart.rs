//! The shipped checkpoint (`assets/tiny_stdit.safetensors`, trained by `train_tiny`) generates the
//! prompted shape moving the prompted way: one video per label of the dataset (3 colours × 2
//! shapes × 4 directions, 16 Euler steps, guidance 4, fixed noise), and for every direction the
//! centroid of the prompted colour travels at least half the dataset's distance along it, more
//! than twice as far as across it, with the shape visible in every frame; and each square covers
//! more pixels than the circle of the same colour and direction. A prompt with words outside the
//! vocabulary is rejected with an error naming them; a checkpoint with one NaN bias makes
//! generation fail at the first sampling step instead of returning a garbage video.

use burn::config::Config;
use burn::tensor::TensorData;
use std::path::Path;
use vidgen_models::ModelError;
use vidgen_models::data::{Colour, Direction, Shape, VOCAB, label, tokenizer};
use vidgen_models::opensora::write_safetensors;
use vidgen_models::tiny::{MotionCheck, TinyTrainConfig, check_motion, load_text_to_video};
use vidgen_nn::checkpoint::read_safetensors;
use vidgen_testing::Flex;

/// One label's measured motion, for failure messages.
fn describe(c: &MotionCheck) -> String {
    format!(
        "{}: along {:+.2}, across {:+.2}, min pixels {}",
        c.label,
        c.motion.along,
        c.motion.across,
        c.motion.min_pixels()
    )
}

/// Labels per direction (3 colours × 2 shapes) that must move as prompted: all of them.
const REQUIRED_PER_DIRECTION: usize = 6;

#[test]
fn shipped_checkpoint_moves_the_shape_in_the_prompted_direction() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let checkpoint = assets.join("tiny_stdit.safetensors");
    let size = std::fs::metadata(&checkpoint).unwrap().len();
    assert!(size < 10 << 20, "checkpoint is {size} bytes, over 10 MiB");
    let device = Default::default();
    let (pipeline, config) =
        load_text_to_video::<Flex>(assets.join("tiny_stdit.json"), &checkpoint, &device).unwrap();
    assert_eq!(
        config.to_string(),
        TinyTrainConfig::tiny(config.steps).to_string(),
        "the shipped config is not TinyTrainConfig::tiny"
    );
    let checks = check_motion(&pipeline, &config, 7, &device).unwrap();
    assert_eq!(checks.len(), 24);
    for direction in Direction::ALL {
        let of_direction: Vec<_> = checks.iter().filter(|c| c.direction == direction).collect();
        let ok = of_direction.iter().filter(|c| c.follows).count();
        let report: Vec<String> = of_direction.iter().map(|c| describe(c)).collect();
        assert!(
            ok >= REQUIRED_PER_DIRECTION,
            "moving {}: {ok}/{} labels follow the prompt (travel {} px):\n{}",
            direction.name(),
            of_direction.len(),
            config.data.travel(),
            report.join("\n")
        );
    }
    // The prompted shape: for each colour and direction the square covers more pixels than the
    // circle, as in the data (side 5: 25–36 pixels; diameter 5: about 20).
    for square in checks.iter().filter(|c| c.shape == Shape::Square) {
        let circle = checks
            .iter()
            .find(|c| {
                c.shape == Shape::Circle
                    && c.colour == square.colour
                    && c.direction == square.direction
            })
            .unwrap();
        let (s, c) = (square.motion.mean_pixels(), circle.motion.mean_pixels());
        assert!(
            s > c,
            "{} covers {s:.1} pixels per frame, {} {c:.1}",
            square.label,
            circle.label
        );
    }
}

#[test]
fn prompts_outside_the_vocabulary_are_rejected_by_name() {
    // The tokenizer `load_text_to_video` pairs with the shipped checkpoint.
    let tok = tokenizer();
    for colour in Colour::ALL {
        for shape in Shape::ALL {
            for direction in Direction::ALL {
                let prompt = label(colour, shape, direction);
                let (_, len) = tok.try_encode(&prompt).unwrap();
                assert_eq!(len, 4, "{prompt}");
                assert_eq!(tok.try_encode(&prompt).unwrap(), tok.encode(&prompt));
            }
        }
    }
    let err = tok
        .try_encode("purple triangle moving sideways")
        .unwrap_err();
    let ModelError::UnknownWords { words, vocab } = &err else {
        panic!("expected UnknownWords, got {err:?}");
    };
    assert_eq!(words, &["purple", "triangle", "sideways"]);
    assert_eq!(vocab, &VOCAB);
    let message = err.to_string();
    for word in [
        "\"purple\"",
        "\"triangle\"",
        "\"sideways\"",
        "circle",
        "moving",
    ] {
        assert!(message.contains(word), "{message}");
    }
    // The lenient mode keeps "moving" and reports the rest.
    let lenient = tok.encode_lenient("purple triangle moving sideways");
    assert_eq!((lenient.len, &lenient.dropped), (1, words));
}

#[test]
fn a_nan_weight_in_the_checkpoint_is_an_error_naming_the_step() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut tensors: Vec<(String, TensorData)> =
        read_safetensors(assets.join("tiny_stdit.safetensors"))
            .unwrap()
            .into_iter()
            .map(|t| (t.full_path(), t.to_data().unwrap()))
            .collect();
    // One NaN in one bias of the final projection.
    let (name, bias) = tensors
        .iter_mut()
        .find(|(n, _)| n.ends_with("final_layer.linear.bias"))
        .expect("final projection bias");
    let mut values = bias.to_vec::<f32>().unwrap();
    values[0] = f32::NAN;
    *bias = TensorData::new(values, bias.shape.clone());
    let name = name.clone();
    let path = std::env::temp_dir().join(format!(
        "vidgen_nan_bias_{}.safetensors",
        std::process::id()
    ));
    let views: Vec<(&str, TensorData)> = tensors
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    write_safetensors(&path, &views).unwrap();

    let device = Default::default();
    let (pipeline, config) =
        load_text_to_video::<Flex>(assets.join("tiny_stdit.json"), &path, &device).unwrap();
    let err = pipeline
        .generate(
            &["red square moving right"],
            &config.generate_options(0),
            &device,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::NonFinite {
                step: 0,
                tensor: "model output",
                ..
            }
        ),
        "{name}: {err:?}"
    );
    assert!(err.to_string().contains("sampling step 0"), "{err}");
    let _ = std::fs::remove_file(&path);
}

/// LoRA adapters (rank 4 on all seven linears of every block) of the shipped model, saved on
/// their own: under a tenth of the checkpoint.
#[test]
fn shipped_model_lora_adapter_file_is_small() {
    use vidgen_models::{LoraConfig, WithLora, save_lora};
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let checkpoint = assets.join("tiny_stdit.safetensors");
    let device = Default::default();
    let (pipeline, _) =
        load_text_to_video::<Flex>(assets.join("tiny_stdit.json"), &checkpoint, &device).unwrap();
    let targets = ["qkv", "q_linear", "kv_linear", "proj", "fc1", "fc2"].map(String::from);
    let adapted = pipeline
        .model
        .with_lora(&LoraConfig::new(4, 4.0, targets.to_vec()))
        .unwrap();
    let dir = std::env::temp_dir().join("vidgen_shipped_lora");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("adapter.safetensors");
    let tensors = save_lora(&adapted, &path).unwrap();
    let (adapter, full) = (
        std::fs::metadata(&path).unwrap().len(),
        std::fs::metadata(&checkpoint).unwrap().len(),
    );
    eprintln!(
        "shipped tiny STDiT: {tensors} adapter tensors, {adapter} B, checkpoint {full} B ({:.1} %)",
        100.0 * adapter as f64 / full as f64
    );
    assert_eq!(
        tensors,
        2 * 7 * 4,
        "A and B of 7 linears in each of the 4 blocks"
    );
    assert!(
        adapter * 10 < full,
        "adapter file {adapter} B vs checkpoint {full} B"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The shipped model fine-tuned on a new word with LoRA only (`assets/tiny_stdit_yellow.json`:
/// rank 4 adapters on the six attention and MLP linears of every block plus one embedding row
/// for "yellow", 600 steps; `train_tiny -- 600 OUT assets/tiny_stdit_yellow.json`), loaded from
/// the base checkpoint and the adapter file: every yellow label is drawn in yellow (red and
/// green channels lit, blue dark) moving as prompted, and the 24 old labels still pass. Without
/// the adapters, the base model with the same new-word row passes no yellow label.
#[test]
fn lora_fine_tuned_model_learns_yellow_and_keeps_the_old_labels() {
    use vidgen_models::tiny::load_lora_text_to_video;
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let (config_path, base, adapter) = (
        assets.join("tiny_stdit_yellow.json"),
        assets.join("tiny_stdit.safetensors"),
        assets.join("tiny_stdit_yellow_lora.safetensors"),
    );
    let (adapter_size, base_size) = (
        std::fs::metadata(&adapter).unwrap().len(),
        std::fs::metadata(&base).unwrap().len(),
    );
    assert!(
        adapter_size * 10 < base_size,
        "{adapter_size} vs {base_size} B"
    );
    let device = Default::default();
    let (pipeline, config) =
        load_lora_text_to_video::<Flex>(&config_path, &base, &adapter, &device).unwrap();
    assert_eq!(
        config.data.colours(),
        [Colour::Red, Colour::Green, Colour::Blue, Colour::Yellow]
    );
    let checks = check_motion(&pipeline, &config, 7, &device).unwrap();
    assert_eq!(checks.len(), 32);
    let failed: Vec<String> = checks.iter().filter(|c| !c.follows).map(describe).collect();
    assert!(
        failed.is_empty(),
        "labels that do not follow:\n{}",
        failed.join("\n")
    );

    // The same new-word row on the base weights (adapters dropped): no yellow.
    let base_only = {
        let mut model = TinyTrainConfig::load(assets.join("tiny_stdit.json"))
            .unwrap()
            .init::<Flex>(&device)
            .unwrap();
        vidgen_models::load_checkpoint(&mut model, &base).unwrap();
        let tuned = vidgen_nn::checkpoint::read_safetensors(&adapter).unwrap();
        let row = tuned
            .iter()
            .find(|t| t.full_path() == "text_embedder.new_tokens")
            .expect("the new word's row in the adapter file");
        let row = burn::tensor::Tensor::<Flex, 2>::from_data(row.to_data().unwrap(), &device);
        model.text_embedder.new_tokens = Some(burn::module::Param::from_tensor(row));
        config.pipeline(model).unwrap()
    };
    let mut yellow_labels = config.clone();
    yellow_labels.data.colours = Some(vec![Colour::Yellow]);
    let checks = check_motion(&base_only, &yellow_labels, 7, &device).unwrap();
    assert_eq!(checks.len(), 8);
    let drawn: Vec<&str> = checks
        .iter()
        .filter(|c| c.follows)
        .map(|c| c.label.as_str())
        .collect();
    assert!(
        drawn.is_empty(),
        "the base model drew yellow without the adapters: {drawn:?}"
    );
}
