//! `train_tiny` end to end at test size: a short burn-train run of the rectified-flow loss on the
//! moving-shapes data lowers the loss, and a checkpoint round trip reproduces the model exactly.

use burn::tensor::Tensor;
use vidgen_models::data::MovingShapesConfig;
use vidgen_models::stdit::StditConfig;
use vidgen_models::train::{TinyTrainConfig, first_last_means, train};
use vidgen_models::{load_checkpoint, save_checkpoint};
use vidgen_testing::{AutodiffFlex, Flex, Tolerance, assert_close};

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
        m.model.forward(
            x.clone(),
            Tensor::from_floats([300.0], &device),
            m.text_embedder.forward(ids),
            Some(&[4]),
            Tensor::from_floats([8.0], &device),
            None,
        )
    };
    // Same parameters, same ops: the outputs must be bit-identical.
    assert_close(run(&loaded), run(&model), Tolerance::EXACT);
}
