//! A procedurally generated moving-shapes video dataset with text labels, for training tiny
//! text-to-video models on a CPU in minutes.
//!
//! Every item is a `[3, T, H, W]` RGB video in `[-1, 1]` (pixel space, black background) of one
//! shape (square or circle) of one pure colour (red, green or blue; yellow as the new word of
//! fine-tuning) that moves by `speed` pixels per frame in one direction (left, right, up or down),
//! labelled `"<colour> <shape> moving <direction>"`. Item `i` shows combination `i mod 8·k` of
//! the `k` configured colours (`i mod 24` for the base three, so every batch of 24 consecutive
//! items is balanced) at a random start position, drawn from a generator seeded by `(seed, i)`,
//! chosen so the shape stays inside the frame in every frame.
//!
//! ```
//! use burn::data::dataset::Dataset;
//! use vidgen_models::data::{MovingShapes, MovingShapesConfig};
//!
//! let data = MovingShapesConfig::new(48).init()?;
//! let item = data.get(1).unwrap();
//! assert_eq!(item.label, "green square moving right");
//! assert_eq!(item.video.len(), 3 * 8 * 16 * 16);
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```

mod batch;
mod dataset;
mod labels;
mod motion;

pub use batch::*;
pub use dataset::*;
pub use labels::*;
pub use motion::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, ModelError};
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;

    use vidgen_testing::Flex;

    #[test]
    fn items_are_deterministic_balanced_and_move_as_labelled() {
        let data = MovingShapesConfig::new(48).with_seed(3).init().unwrap();
        assert_eq!(data.get(5), data.get(5));
        assert_ne!(data.get(5).unwrap().video, data.get(29).unwrap().video);
        assert!(data.get(48).is_none());
        for i in 0..24 {
            let item = data.get(i).unwrap();
            let (colour, shape, direction) = MovingShapes::combination(i);
            assert_eq!(item.label, label(colour, shape, direction));
            let m = measure_motion(&item.video, [8, 16, 16], colour, direction);
            assert!(
                (m.along - 7.0).abs() < 1.0 && m.across.abs() < 1.0,
                "{}: {m:?}",
                item.label
            );
            for other in (0..3).filter(|&ch| !colour.channels()[ch]) {
                assert!(
                    item.video[other * 8 * 256..(other + 1) * 8 * 256]
                        .iter()
                        .all(|&v| v == -1.0)
                );
            }
        }
    }

    #[test]
    fn measured_motion_follows_the_label_and_no_other_direction() {
        let data = MovingShapesConfig::new(24).with_seed(5).init().unwrap();
        let travel = data.config().travel();
        for i in 0..24 {
            let item = data.get(i).unwrap();
            let (colour, shape, direction) = MovingShapes::combination(i);
            let m = measure_motion(&item.video, [8, 16, 16], colour, direction);
            assert!(m.follows(travel, 3), "{}: {m:?}", item.label);
            // Squares of side 5 cover 25–36 pixels, discs of diameter 5 fewer.
            let area = m.mean_pixels();
            match shape {
                Shape::Square => assert!((25.0..=36.0).contains(&area), "{area}"),
                Shape::Circle => assert!((12.0..25.0).contains(&area), "{area}"),
            }
            assert!((m.along - travel).abs() < 1.0 && m.across.abs() < 1e-9);
            for other in Direction::ALL.into_iter().filter(|&d| d != direction) {
                let m = measure_motion(&item.video, [8, 16, 16], colour, other);
                assert!(!m.follows(travel, 3), "{} as {other:?}", item.label);
            }
            // Another colour's pixels are absent: not visible, so it does not follow.
            let absent =
                Colour::ALL[(Colour::ALL.iter().position(|&c| c == colour).unwrap() + 1) % 3];
            let m = measure_motion(&item.video, [8, 16, 16], absent, direction);
            assert_eq!(m.min_pixels(), 0);
            assert!(!m.follows(travel, 3));
        }
    }

    #[test]
    fn batches_videos_and_labels() {
        let data = MovingShapesConfig::new(4).init().unwrap();
        let items: Vec<_> = (0..3).map(|i| data.get(i).unwrap()).collect();
        let batch: VideoBatch<Flex> =
            MovingShapesBatcher::default().batch(items, &Default::default());
        assert_eq!(batch.videos.dims(), [3, 3, 8, 16, 16]);
        assert_eq!(batch.ids.dims(), [3, 4]);
        assert_eq!(batch.lens, vec![4, 4, 4]);
        let ids: Vec<i64> = batch.ids.into_data().iter::<i64>().collect();
        assert_eq!(&ids[..4], &[2, 5, 7, 9]); // red square moving right
    }

    #[test]
    fn invalid_configs_fail_naming_the_field() {
        let err = |c: MovingShapesConfig| c.init().unwrap_err();
        assert!(matches!(
            err(MovingShapesConfig::new(0)),
            ModelError::Config(ConfigError::Zero { field: "len" })
        ));
        assert!(matches!(
            err(MovingShapesConfig::new(4).with_speed(0.0)),
            ModelError::Config(ConfigError::OutOfDomain { field: "speed", .. })
        ));
        assert!(matches!(
            err(MovingShapesConfig::new(4).with_size(8)),
            ModelError::Config(ConfigError::OutOfDomain { field: "size", .. })
        ));
        assert!(matches!(
            err(MovingShapesConfig::new(4).with_colours(Some(vec![]))),
            ModelError::Config(ConfigError::Zero { field: "colours" })
        ));
        assert!(matches!(
            err(MovingShapesConfig::new(4).with_colours(Some(vec![Colour::Red, Colour::Yellow, Colour::Red]))),
            ModelError::Config(ConfigError::OutOfDomain { field: "colours", value, .. }) if value == 2.0
        ));
    }

    #[test]
    fn a_new_colour_extends_labels_and_vocabulary() {
        let colours = vec![Colour::Red, Colour::Green, Colour::Blue, Colour::Yellow];
        let data = MovingShapesConfig::new(64)
            .with_colours(Some(colours.clone()))
            .init()
            .unwrap();
        let combos = data.combinations();
        assert_eq!(combos.len(), 32);
        assert_eq!(combos.iter().filter(|c| c.0 == Colour::Yellow).count(), 8);
        let travel = data.config().travel();
        for (i, &(colour, shape, direction)) in combos.iter().enumerate() {
            let item = data.get(i).unwrap();
            assert_eq!(item.label, label(colour, shape, direction));
            let m = measure_motion(&item.video, [8, 16, 16], colour, direction);
            assert!(m.follows(travel, 3), "{}: {m:?}", item.label);
            // Red and green pixels of a yellow shape are not pure red or green.
            for other in Colour::ALL.into_iter().filter(|&o| o != colour) {
                let m = measure_motion(&item.video, [8, 16, 16], other, direction);
                assert_eq!(m.min_pixels(), 0, "{} as {other:?}", item.label);
            }
            if colour == Colour::Yellow {
                let lit = |ch: usize| {
                    item.video[ch * 8 * 256..(ch + 1) * 8 * 256]
                        .iter()
                        .filter(|&&v| v > 0.0)
                        .count()
                };
                assert!(
                    lit(0) > 0 && lit(0) == lit(1) && lit(2) == 0,
                    "{}",
                    item.label
                );
            }
        }
        // The base words keep their ids; "yellow" comes after them.
        assert_eq!(new_words(&colours), ["yellow"]);
        assert!(new_words(&Colour::ALL).is_empty());
        let (base, extended) = (tokenizer(), tokenizer_for(&colours));
        assert_eq!(extended.vocab_size(), base.vocab_size() + 1);
        assert_eq!(
            extended.try_encode("red square moving right").unwrap(),
            base.try_encode("red square moving right").unwrap()
        );
        let (ids, _) = extended.try_encode("yellow circle moving up").unwrap();
        assert_eq!(ids[0], base.vocab_size());
        assert!(base.try_encode("yellow circle moving up").is_err());
    }
}
