//! Measuring how a colour moves through a video (the motion check of generated videos).

use super::labels::*;

/// How the pixels of one colour move through a video: what [`measure_motion`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// Per frame: centroid `(x, y)` of the pixels showing the colour (its channels above 0, the
    /// others below 0; `(NaN, NaN)` for a frame without any) and how many there are.
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
    let lit = colour.channels();
    let track: Vec<(f64, f64, usize)> = (0..t_len)
        .map(|t| {
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
            for r in 0..h {
                for c in 0..w {
                    if (0..3).all(|ch| (at(ch, t, r, c) > 0.0) == lit[ch]) {
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
