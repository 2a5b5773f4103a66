//! The moving-shapes dataset: its config, items and the renderer.

use super::labels::*;
use crate::error::ConfigError;
use crate::error::{ModelError, positive, positive_f64};
use burn::config::Config;
use burn::data::dataset::Dataset;
use vidgen_schedulers::NoiseGenerator;

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
    /// Colours of the shapes, in label order; `None` (and a config file without the field):
    /// the base colours [`Colour::ALL`]. A colour outside [`VOCAB`] adds its word to the
    /// tokenizer ([`tokenizer_for`]). See [`colours`](Self::colours).
    pub colours: Option<Vec<Colour>>,
}

impl MovingShapesConfig {
    /// Builds the dataset.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Zero`) naming `len`, `frames`, `size` or `colours`
    /// (empty); [`ModelError::Config`] (`ConfigError::OutOfDomain`) naming `shape_size` or
    /// `speed` if not `> 0`, `size` if `shape_size + speed·(frames − 1)` does not fit in it, or
    /// `colours` if a colour is listed twice.
    pub fn init(&self) -> Result<MovingShapes, ModelError> {
        positive("len", self.len)?;
        let colours = self.colours();
        positive("colours", colours.len())?;
        for (i, colour) in colours.iter().enumerate() {
            if colours[..i].contains(colour) {
                return Err(ModelError::Config(ConfigError::OutOfDomain {
                    field: "colours",
                    value: i as f64,
                    requirement: "each colour listed once (value: index of the repeat)",
                }));
            }
        }
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

    /// The colours of the shapes, in label order ([`Colour::ALL`] unless set).
    pub fn colours(&self) -> &[Colour] {
        self.colours.as_deref().unwrap_or(&Colour::ALL)
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

    /// The combination of the base colours shown by item `index`
    /// ([`combination_of`](Self::combination_of) over [`Colour::ALL`]).
    pub fn combination(index: usize) -> (Colour, Shape, Direction) {
        Self::combination_of(&Colour::ALL, index)
    }

    /// Combination `index mod (8·k)` of `k` colours: colour fastest, then shape, then direction,
    /// so every `8·k` consecutive items are balanced.
    ///
    /// # Panics
    /// If `colours` is empty.
    pub fn combination_of(colours: &[Colour], index: usize) -> (Colour, Shape, Direction) {
        let k = colours.len();
        let c = index % (8 * k);
        (
            colours[c % k],
            Shape::ALL[(c / k) % 2],
            Direction::ALL[c / (2 * k)],
        )
    }

    /// Every combination of the configured colours, in item order (`8·k` of `k` colours).
    pub fn combinations(&self) -> Vec<(Colour, Shape, Direction)> {
        let colours = self.config.colours();
        (0..8 * colours.len())
            .map(|i| Self::combination_of(colours, i))
            .collect()
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
                        for (ch, lit) in colour.channels().into_iter().enumerate() {
                            if lit {
                                video[((ch * t_len + t) * n + row) * n + col] = 1.0;
                            }
                        }
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
        let (colour, shape, direction) = Self::combination_of(c.colours(), index);
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
