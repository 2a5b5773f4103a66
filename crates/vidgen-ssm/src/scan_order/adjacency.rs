//! The adjacency metric `d_k` of LinGen's supplement, sec. A and Fig. 1: "the *minimum
//! distance* between originally adjacent tokens in k layers reflects their most precise
//! correlation. For an H×W×T token tensor, we compute its average, `d_k`, among adjacent tokens
//! in a 2×2×2 cube".
//!
//! Our reading, made exact:
//! - *adjacent tokens* are two grid cells that differ by one in exactly one axis (the 12 edges
//!   of a 2×2×2 cube);
//! - their *distance* in layer `l` is `|pos_l(a) − pos_l(b)|`, their positions in that layer's
//!   scanned sequence (review tokens shift both equally and are ignored);
//! - `min_dist(a, b) = min_{l < k} |pos_l(a) − pos_l(b)|`;
//! - `d_k = mean over cubes c, over the edges (a, b) of c, of min_dist(a, b)`.
//!
//! Which cubes the text averages over is not stated; [`AdjacencyCubes`] offers every cube
//! position ([`Sliding`](AdjacencyCubes::Sliding), our default: every adjacent pair of the grid
//! takes part, interior pairs weighted by the 4 cubes that share them) and the non-overlapping
//! tiling ([`Disjoint`](AdjacencyCubes::Disjoint)). An axis of size 1 gives the cube extent 1
//! there (a 2×2 square for images), so `d_k` is defined for every grid with two or more tokens.

use super::{ScanOrder, grid_len, invert, raster_index};
use crate::error::ConfigError;
use crate::error::{SsmError, positive};

/// Which 2×2×2 cubes `d_k` averages over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AdjacencyCubes {
    /// Every cube position (stride 1): `(T−1)(H−1)(W−1)` cubes on a grid with all sides ≥ 2.
    #[default]
    Sliding,
    /// The non-overlapping tiling by cubes starting at even coordinates (stride 2); a trailing
    /// odd slice of the grid belongs to no cube.
    Disjoint,
}

impl AdjacencyCubes {
    /// How many cubes along an axis of size `n` (cube extent `min(2, n)`) contain grid line `p`.
    fn cover(self, n: usize, p: usize) -> usize {
        if n == 1 {
            return 1;
        }
        match self {
            AdjacencyCubes::Sliding => usize::from(p >= 1) + usize::from(p + 1 < n),
            AdjacencyCubes::Disjoint => usize::from(p - p % 2 + 2 <= n),
        }
    }

    /// Cube start coordinates along an axis of size `n`.
    fn starts(self, n: usize) -> Vec<usize> {
        let extent = n.min(2);
        let step = match self {
            AdjacencyCubes::Sliding => 1,
            AdjacencyCubes::Disjoint => 2,
        };
        (0..=n - extent).step_by(step).collect()
    }
}

fn check_inputs(grid: [usize; 3], layers: &[ScanOrder]) -> Result<(), SsmError> {
    positive("grid[0] (T)", grid[0])?;
    positive("grid[1] (H)", grid[1])?;
    positive("grid[2] (W)", grid[2])?;
    positive("layers", layers.len())?;
    if grid_len(grid) < 2 {
        return Err(SsmError::Config(ConfigError::Unsupported {
            field: "grid",
            value: format!("{grid:?}"),
            reason: "a single token has no adjacent pairs",
        }));
    }
    Ok(())
}

/// `[d_1, …, d_k]` for the layer orders `layers` (`k = layers.len()`): the adjacency metric of
/// every prefix of the layer stack, in `O(k·T·H·W)`.
///
/// Each grid edge carries its running minimum over layers and a weight, the number of cubes
/// that contain it (a product of per-axis counts), so no cube is enumerated.
///
/// # Errors
/// [`SsmError::Config`] (`ConfigError::Zero`) naming a grid side or `layers` if it is 0; [`SsmError::Config`] (`ConfigError::Unsupported`)
/// naming `grid` if it holds a single token.
pub fn adjacency_curve(
    grid: [usize; 3],
    layers: &[ScanOrder],
    cubes: AdjacencyCubes,
) -> Result<Vec<f64>, SsmError> {
    check_inputs(grid, layers)?;
    let positions: Vec<Vec<usize>> = layers
        .iter()
        .map(|order| invert(&order.permutation(grid)))
        .collect();
    // (token, neighbour, weight) for every edge that lies in at least one cube.
    let mut edges = Vec::with_capacity(3 * grid_len(grid));
    for t in 0..grid[0] {
        for h in 0..grid[1] {
            for w in 0..grid[2] {
                let p = [t, h, w];
                let cover = [0, 1, 2].map(|a| cubes.cover(grid[a], p[a]));
                for axis in 0..3 {
                    let odd_disjoint = p[axis] % 2 == 1 && cubes == AdjacencyCubes::Disjoint;
                    if p[axis] + 1 >= grid[axis] || odd_disjoint {
                        continue;
                    }
                    let weight: usize = (0..3).filter(|&b| b != axis).map(|b| cover[b]).product();
                    let mut q = p;
                    q[axis] += 1;
                    if weight > 0 {
                        edges.push((raster_index(grid, p), raster_index(grid, q), weight as f64));
                    }
                }
            }
        }
    }
    let total: f64 = edges.iter().map(|e| e.2).sum();
    let mut best = vec![usize::MAX; edges.len()];
    let mut curve = Vec::with_capacity(layers.len());
    for pos in &positions {
        let mut sum = 0.0;
        for (m, &(a, b, weight)) in best.iter_mut().zip(&edges) {
            *m = (*m).min(pos[a].abs_diff(pos[b]));
            sum += weight * *m as f64;
        }
        curve.push(sum / total);
    }
    Ok(curve)
}

/// `d_k` for the layer orders `layers` (`k = layers.len()`); the last entry of
/// [`adjacency_curve`].
///
/// ```
/// use vidgen_ssm::scan_order::{AdjacencyCubes, RotaryMajorScan, adjacency_distance};
/// // After one layer of each major axis every adjacent pair is contiguous somewhere.
/// let d3 = adjacency_distance([4, 4, 4], &RotaryMajorScan::layers(3), AdjacencyCubes::Sliding)?;
/// assert_eq!(d3, 1.0);
/// # Ok::<(), vidgen_ssm::SsmError>(())
/// ```
///
/// # Errors
/// As [`adjacency_curve`].
pub fn adjacency_distance(
    grid: [usize; 3],
    layers: &[ScanOrder],
    cubes: AdjacencyCubes,
) -> Result<f64, SsmError> {
    Ok(*adjacency_curve(grid, layers, cubes)?
        .last()
        .expect("at least one layer"))
}

/// Brute-force twin of [`adjacency_distance`] for tiny grids: enumerates every cube and every
/// pair of its cells, keeps the pairs at grid distance 1, and finds each token's scan position
/// by a linear search of each layer's permutation. `O(cubes · k · T·H·W)`.
///
/// # Errors
/// As [`adjacency_curve`].
pub fn adjacency_distance_reference(
    grid: [usize; 3],
    layers: &[ScanOrder],
    cubes: AdjacencyCubes,
) -> Result<f64, SsmError> {
    check_inputs(grid, layers)?;
    let perms: Vec<Vec<usize>> = layers.iter().map(|o| o.permutation(grid)).collect();
    let position = |perm: &[usize], token: usize| perm.iter().position(|&r| r == token).unwrap();
    let extent = grid.map(|n| n.min(2));
    let (mut sum, mut count) = (0usize, 0usize);
    for &t0 in &cubes.starts(grid[0]) {
        for &h0 in &cubes.starts(grid[1]) {
            for &w0 in &cubes.starts(grid[2]) {
                let mut cells = Vec::new();
                for dt in 0..extent[0] {
                    for dh in 0..extent[1] {
                        for dw in 0..extent[2] {
                            cells.push([t0 + dt, h0 + dh, w0 + dw]);
                        }
                    }
                }
                for (i, a) in cells.iter().enumerate() {
                    for b in &cells[i + 1..] {
                        let manhattan: usize = (0..3).map(|x| a[x].abs_diff(b[x])).sum();
                        if manhattan != 1 {
                            continue;
                        }
                        let (ra, rb) = (raster_index(grid, *a), raster_index(grid, *b));
                        let min = perms
                            .iter()
                            .map(|p| position(p, ra).abs_diff(position(p, rb)))
                            .min()
                            .unwrap();
                        sum += min;
                        count += 1;
                    }
                }
            }
        }
    }
    Ok(sum as f64 / count as f64)
}
