//! A procedurally generated moving-shapes video dataset with text labels, for training tiny
//! text-to-video models on a CPU in minutes.
//!
//! Every item is a `[3, T, H, W]` RGB video in `[-1, 1]` (pixel space, black background) of one
//! shape (square or circle) of one pure colour (red, green or blue) that moves by `speed` pixels
//! per frame in one direction (left, right, up or down), labelled
//! `"<colour> <shape> moving <direction>"`. Item `i` shows combination `i mod 24` (so every batch
//! of 24 consecutive items is balanced) at a random start position, drawn from a generator seeded
//! by `(seed, i)`, chosen so the shape stays inside the frame in every frame.
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

use crate::error::ConfigError;
use crate::error::{ModelError, positive, positive_f64};
use crate::text::WordTokenizer;
use burn::config::Config;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use vidgen_schedulers::NoiseGenerator;

/// Shapes drawn by [`MovingShapes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An axis-aligned square of side `shape_size`.
    Square,
    /// A disc of diameter `shape_size`.
    Circle,
}

/// Colours of the shapes: one RGB channel at `+1`, the others at `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Channel 0.
    Red,
    /// Channel 1.
    Green,
    /// Channel 2.
    Blue,
}

/// Directions of motion (image coordinates: `up` is towards row 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards column 0.
    Left,
    /// Towards the last column.
    Right,
    /// Towards row 0.
    Up,
    /// Towards the last row.
    Down,
}

impl Shape {
    /// Every shape, in label order.
    pub const ALL: [Shape; 2] = [Shape::Square, Shape::Circle];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Circle => "circle",
        }
    }
}

impl Colour {
    /// Every colour, in label order.
    pub const ALL: [Colour; 3] = [Colour::Red, Colour::Green, Colour::Blue];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        ["red", "green", "blue"][self.channel()]
    }
    /// The RGB channel at `+1`.
    pub fn channel(self) -> usize {
        match self {
            Colour::Red => 0,
            Colour::Green => 1,
            Colour::Blue => 2,
        }
    }
}

impl Direction {
    /// Every direction, in label order.
    pub const ALL: [Direction; 4] = [
        Direction::Right,
        Direction::Left,
        Direction::Up,
        Direction::Down,
    ];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
    /// Unit displacement `(dx, dy)` per frame in image coordinates (x: column, y: row).
    pub fn unit(self) -> (f64, f64) {
        match self {
            Direction::Left => (-1.0, 0.0),
            Direction::Right => (1.0, 0.0),
            Direction::Up => (0.0, -1.0),
            Direction::Down => (0.0, 1.0),
        }
    }
}

/// The label `"<colour> <shape> moving <direction>"`.
pub fn label(colour: Colour, shape: Shape, direction: Direction) -> String {
    format!(
        "{} {} moving {}",
        colour.name(),
        shape.name(),
        direction.name()
    )
}

/// Every word of the labels, the vocabulary of [`tokenizer`].
pub const VOCAB: [&str; 10] = [
    "red", "green", "blue", "square", "circle", "moving", "left", "right", "up", "down",
];

/// The word tokenizer for the labels (4 tokens per label).
pub fn tokenizer() -> WordTokenizer {
    WordTokenizer::new(&VOCAB, 4).expect("non-empty vocabulary, max_len 4")
}

/// Configuration of [`MovingShapes`].
#[derive(Config, Debug)]
pub struct MovingShapesConfig {
    /// Number of items.
    pub len: usize,
    /// Frames `T` per video.
    #[config(default = 8)]
    pub frames: usize,
    /// Height and width `H = W` in pixels.
    #[config(default = 16)]
    pub size: usize,
    /// Side of the square / diameter of the circle, in pixels.
    #[config(default = 5.0)]
    pub shape_size: f64,
    /// Displacement per frame, in pixels.
    #[config(default = 1.0)]
    pub speed: f64,
    /// Seed of the start positions.
    #[config(default = 0)]
    pub seed: u64,
}

impl MovingShapesConfig {
    /// Builds the dataset.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Zero`) naming `len`, `frames` or `size`; [`ModelError::Config`] (`ConfigError::OutOfDomain`) naming
    /// `shape_size` or `speed` if not `> 0`, or `size` if `shape_size + speed·(frames − 1)` does
    /// not fit in it.
    pub fn init(&self) -> Result<MovingShapes, ModelError> {
        positive("len", self.len)?;
        positive("frames", self.frames)?;
        positive("size", self.size)?;
        positive_f64("shape_size", self.shape_size)?;
        positive_f64("speed", self.speed)?;
        if self.shape_size + self.travel() > self.size as f64 {
            return Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "size",
                value: self.size as f64,
                requirement: ">= shape_size + speed·(frames − 1)",
            }));
        }
        Ok(MovingShapes {
            config: self.clone(),
        })
    }

    /// Distance travelled from the first to the last frame.
    pub fn travel(&self) -> f64 {
        self.speed * (self.frames.saturating_sub(1)) as f64
    }
}

/// One labelled video of [`MovingShapes`].
#[derive(Debug, Clone, PartialEq)]
pub struct MovingShapeItem {
    /// `[3, T, H, W]` values in `[-1, 1]`, row-major.
    pub video: Vec<f32>,
    /// `[3, T, H, W]`.
    pub shape: [usize; 4],
    /// `"<colour> <shape> moving <direction>"`.
    pub label: String,
    /// A seed unique to the item (for per-item training noise).
    pub seed: u64,
}

/// The moving-shapes dataset (see the module docs). Deterministic: `get(i)` depends only on the
/// configuration and `i`.
#[derive(Debug, Clone)]
pub struct MovingShapes {
    config: MovingShapesConfig,
}

impl MovingShapes {
    /// The configuration.
    pub fn config(&self) -> &MovingShapesConfig {
        &self.config
    }

    /// The combination shown by item `index`.
    pub fn combination(index: usize) -> (Colour, Shape, Direction) {
        let c = index % 24;
        (
            Colour::ALL[c % 3],
            Shape::ALL[(c / 3) % 2],
            Direction::ALL[c / 6],
        )
    }

    /// Renders a video `[3, T, H, W]` of `shape` in `colour` whose centre starts at `(x0, y0)`
    /// (pixel units, x: column, y: row) and moves by `speed` per frame along `direction`.
    pub fn render(
        &self,
        colour: Colour,
        shape: Shape,
        direction: Direction,
        (x0, y0): (f64, f64),
    ) -> Vec<f32> {
        let c = &self.config;
        let (t_len, n) = (c.frames, c.size);
        let (dx, dy) = direction.unit();
        let half = c.shape_size / 2.0;
        let mut video = vec![-1.0f32; 3 * t_len * n * n];
        for t in 0..t_len {
            let (cx, cy) = (x0 + dx * c.speed * t as f64, y0 + dy * c.speed * t as f64);
            for row in 0..n {
                for col in 0..n {
                    let (px, py) = (col as f64 + 0.5 - cx, row as f64 + 0.5 - cy);
                    let inside = match shape {
                        Shape::Square => px.abs() <= half && py.abs() <= half,
                        Shape::Circle => px * px + py * py <= half * half,
                    };
                    if inside {
                        video[((colour.channel() * t_len + t) * n + row) * n + col] = 1.0;
                    }
                }
            }
        }
        video
    }
}

impl Dataset<MovingShapeItem> for MovingShapes {
    fn get(&self, index: usize) -> Option<MovingShapeItem> {
        let c = &self.config;
        if index >= c.len {
            return None;
        }
        let seed = c.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64;
        let mut rng = NoiseGenerator::seed_from_u64(seed);
        let (colour, shape, direction) = Self::combination(index);
        let (dx, dy) = direction.unit();
        let half = c.shape_size / 2.0;
        let size = c.size as f64;
        // Centre range so the whole path stays in frame: along the motion axis the start leaves
        // room for the travel, across it only for the shape.
        let start = |u: f64, d: f64| {
            let lo = half + if d < 0.0 { c.travel() } else { 0.0 };
            let hi = size - half - if d > 0.0 { c.travel() } else { 0.0 };
            lo + u * (hi - lo)
        };
        let u = rng.uniform_f64(2);
        let xy = (start(u[0], dx), start(u[1], dy));
        Some(MovingShapeItem {
            video: self.render(colour, shape, direction, xy),
            shape: [3, c.frames, c.size, c.size],
            label: label(colour, shape, direction),
            seed,
        })
    }

    fn len(&self) -> usize {
        self.config.len
    }
}

/// How the pixels of one colour move through a video: what [`measure_motion`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// Per frame: centroid `(x, y)` of the pixels showing the colour (that channel above 0, the
    /// other two below 0; `(NaN, NaN)` for a frame without any) and how many there are.
    pub track: Vec<(f64, f64, usize)>,
    /// Centroid displacement from the first to the last frame along the expected direction.
    pub along: f64,
    /// Centroid displacement from the first to the last frame across the expected direction.
    pub across: f64,
}

impl Motion {
    /// Fewest pixels of the colour in any frame.
    pub fn min_pixels(&self) -> usize {
        self.track.iter().map(|p| p.2).min().unwrap_or(0)
    }

    /// Mean number of pixels of the colour per frame (the shape's drawn area).
    pub fn mean_pixels(&self) -> f64 {
        let total: usize = self.track.iter().map(|p| p.2).sum();
        total as f64 / self.track.len().max(1) as f64
    }

    /// Whether the shape is visible in every frame (at least `min_pixels` pixels) and moved at
    /// least half of `travel` along the expected direction and more than twice as far as across it.
    pub fn follows(&self, travel: f64, min_pixels: usize) -> bool {
        self.min_pixels() >= min_pixels
            && self.along >= travel / 2.0
            && self.along > 2.0 * self.across.abs()
    }
}

/// Tracks the pixels of `colour` in `video` (`[3, T, H, W]` row-major, values in `[-1, 1]`) and
/// measures their displacement relative to `direction` — the check that a generated video shows
/// its prompt's motion.
///
/// # Panics
/// If `video.len()` is not `3·T·H·W` or `T` is 0.
pub fn measure_motion(
    video: &[f32],
    [t_len, h, w]: [usize; 3],
    colour: Colour,
    direction: Direction,
) -> Motion {
    assert_eq!(video.len(), 3 * t_len * h * w, "video is not [3, T, H, W]");
    assert!(t_len > 0, "no frames");
    let at = |ch: usize, t: usize, r: usize, c: usize| video[((ch * t_len + t) * h + r) * w + c];
    let channel = colour.channel();
    let track: Vec<(f64, f64, usize)> = (0..t_len)
        .map(|t| {
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
            for r in 0..h {
                for c in 0..w {
                    if (0..3).all(|ch| (at(ch, t, r, c) > 0.0) == (ch == channel)) {
                        (sx, sy, n) = (sx + c as f64, sy + r as f64, n + 1);
                    }
                }
            }
            (sx / n as f64, sy / n as f64, n)
        })
        .collect();
    let (first, last) = (track[0], track[t_len - 1]);
    let (ddx, ddy) = (last.0 - first.0, last.1 - first.1);
    let (dx, dy) = direction.unit();
    Motion {
        along: ddx * dx + ddy * dy,
        across: ddx * dy.abs() + ddy * dx.abs(),
        track,
    }
}

/// A batch of [`MovingShapeItem`]s on a device.
#[derive(Debug, Clone)]
pub struct VideoBatch<B: Backend> {
    /// Videos `[N, 3, T, H, W]` in `[-1, 1]`.
    pub videos: Tensor<B, 5>,
    /// Label token ids `[N, L]`.
    pub ids: Tensor<B, 2, Int>,
    /// Valid token counts, `N` values.
    pub lens: Vec<usize>,
    /// The items' seeds, `N` values.
    pub seeds: Vec<u64>,
}

/// Batches [`MovingShapeItem`]s: stacks the videos, tokenizes the labels.
#[derive(Debug, Clone)]
pub struct MovingShapesBatcher {
    /// Label → ids.
    pub tokenizer: WordTokenizer,
}

impl Default for MovingShapesBatcher {
    fn default() -> Self {
        Self {
            tokenizer: tokenizer(),
        }
    }
}

impl<B: Backend> Batcher<B, MovingShapeItem, VideoBatch<B>> for MovingShapesBatcher {
    /// # Panics
    /// If `items` is empty or the items differ in shape.
    fn batch(&self, items: Vec<MovingShapeItem>, device: &B::Device) -> VideoBatch<B> {
        let [c, t, h, w] = items.first().expect("a non-empty batch").shape;
        let mut values = Vec::with_capacity(items.len() * c * t * h * w);
        for item in &items {
            assert_eq!(item.shape, [c, t, h, w], "items of different shapes");
            values.extend_from_slice(&item.video);
        }
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        let (ids, lens) = self.tokenizer.encode_batch::<B>(&labels, device);
        VideoBatch {
            videos: Tensor::from_data(TensorData::new(values, [items.len(), c, t, h, w]), device),
            ids,
            lens,
            seeds: items.iter().map(|i| i.seed).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            for other in (0..3).filter(|&ch| ch != colour.channel()) {
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
            let absent = Colour::ALL[(colour.channel() + 1) % 3];
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
    }
}
