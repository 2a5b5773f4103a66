//! Redundancy-free frame interpolation (FlashVideo sec. 3.3, Figure 4): classify the token
//! positions of the frames between two key frames.
//!
//! - **Different**: the two key frames hold different codes there; the interpolation model
//!   generates them.
//! - **Unstable**: within Chebyshev distance `unstable_radius` of a different token (the ring of
//!   "orange patches" around the red ones); generated as well, for fault tolerance.
//! - **Stable**: all the others (both key frames agree and nothing nearby changes).
//! - **Inheritable**: a random subset of the stable tokens, `round(ratio · #stable)` of them
//!   (20 % by default), drawn once per key-frame pair with the caller's seed; their code (equal
//!   in both key frames) is copied into every interpolated frame without sampling.

use super::generate::SplitMix64;

/// The class of one token position of an interpolated frame (paper sec. 3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClass {
    /// The key frames differ here: generated.
    Different,
    /// Next to a different token: generated.
    Unstable,
    /// Unchanged and not inherited: generated.
    Stable,
    /// Unchanged and selected: copied from the key frames, never sampled.
    Inheritable,
}

/// The classes of every token position between two key frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterpolationPlan {
    /// Per position, row-major over the frame grid.
    pub classes: Vec<TokenClass>,
}

impl InterpolationPlan {
    /// Number of positions of class `class`.
    pub fn count(&self, class: TokenClass) -> usize {
        self.classes.iter().filter(|&&c| c == class).count()
    }

    /// Whether position `i` is copied from the key frames.
    pub fn inherits(&self, i: usize) -> bool {
        self.classes[i] == TokenClass::Inheritable
    }
}

/// Classifies the positions of the frames between key frames `key_a` and `key_b` (codes of a
/// `[h, w]` grid, row-major) as in the module docs: different where the codes differ, unstable
/// within Chebyshev distance `radius` of a different position, the rest stable, and
/// `round(ratio · #stable)` stable positions chosen uniformly with `seed` (partial Fisher–Yates
/// over SplitMix64) as inheritable.
///
/// # Panics
/// If the key frames do not both have `h·w` codes or `ratio` is outside `[0, 1]`.
pub fn classify_tokens(
    key_a: &[usize],
    key_b: &[usize],
    grid: [usize; 2],
    radius: usize,
    ratio: f64,
    seed: u64,
) -> InterpolationPlan {
    let [h, w] = grid;
    assert!(
        key_a.len() == h * w && key_b.len() == h * w,
        "key frames have {} and {} codes, expected {h}·{w}",
        key_a.len(),
        key_b.len()
    );
    assert!((0.0..=1.0).contains(&ratio), "ratio {ratio} outside [0, 1]");
    let mut classes: Vec<TokenClass> = key_a
        .iter()
        .zip(key_b)
        .map(|(a, b)| {
            if a == b {
                TokenClass::Stable
            } else {
                TokenClass::Different
            }
        })
        .collect();
    let differs = |r: usize, c: usize| key_a[r * w + c] != key_b[r * w + c];
    let near_different = |i: usize| {
        let (r, c) = (i / w, i % w);
        let rows = r.saturating_sub(radius)..(r + radius + 1).min(h);
        let cols = c.saturating_sub(radius)..(c + radius + 1).min(w);
        rows.into_iter()
            .any(|rr| cols.clone().any(|cc| differs(rr, cc)))
    };
    for (i, class) in classes.iter_mut().enumerate() {
        if *class == TokenClass::Stable && near_different(i) {
            *class = TokenClass::Unstable;
        }
    }
    let mut stable: Vec<usize> = (0..h * w)
        .filter(|&i| classes[i] == TokenClass::Stable)
        .collect();
    let n_inherit = (ratio * stable.len() as f64).round() as usize;
    let mut rng = SplitMix64::new(seed);
    for k in 0..n_inherit {
        let j = k + rng.below(stable.len() - k);
        stable.swap(k, j);
        classes[stable[k]] = TokenClass::Inheritable;
    }
    InterpolationPlan { classes }
}
