//! The shipped checkpoint (`assets/tiny_stdit.safetensors`, trained by `train_tiny`) generates the
//! prompted shape moving the prompted way: one video per label of the dataset (3 colours × 2
//! shapes × 4 directions, 16 Euler steps, guidance 4, fixed noise), and for every direction the
//! centroid of the prompted colour travels at least half the dataset's distance along it, more
//! than twice as far as across it, with the shape visible in every frame; and each square covers
//! more pixels than the circle of the same colour and direction.

use std::path::Path;
use vidgen_models::data::{Direction, Shape};
use vidgen_models::train::{TinyTrainConfig, check_motion, load_text_to_video};
use vidgen_testing::Flex;

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
        let report: Vec<String> = of_direction
            .iter()
            .map(|c| {
                format!(
                    "{}: along {:+.2}, across {:+.2}, min pixels {}",
                    c.label,
                    c.motion.along,
                    c.motion.across,
                    c.motion.min_pixels()
                )
            })
            .collect();
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
