//! Video token scan orders as invertible permutations, LinGen's Rotary-Major Scan (RMS), review
//! tokens and the adjacency metric `d_k` (LinGen, Wang et al. 2024, main paper sec. 3 and
//! supplement sec. A; the zigzag baseline is ZigMa, Hu et al. 2024).
//!
//! A `(T, H, W)` token grid is stored in raster order: token `(t, h, w)` sits at
//! `(t·H + h)·W + w` of a `[B, L, C]` sequence, `L = T·H·W`. A [`ScanOrder`] walks the three
//! axes in a chosen nesting order, slowest axis first, either lexicographically ("linear") or as
//! a boustrophedon ("snake"/zigzag: the direction of each inner axis flips every time the axes
//! around it advance, so consecutive tokens are always grid neighbours).
//!
//! Naming: as in "row-major" (rows — lines along `w` — are contiguous), an order is
//! `X`-major when lines along axis `X` are contiguous, i.e. `X` varies fastest. Raster is
//! `W`-major, [`ScanOrder::COLUMN_MAJOR`] is `H`-major, [`ScanOrder::TEMPORAL_MAJOR`] is
//! `T`-major.
//!
//! Permutation convention: `perm = order.permutation(grid)` lists, for every position `i` of the
//! scanned sequence, the raster index of the token found there, so `scanned[i] = x[perm[i]]`
//! (`apply` = `select(1, perm)`); `inverse[j]` is the scan position of raster token `j`
//! (`restore` = `select(1, inverse)`).

use crate::error::ConfigError;
use crate::error::SsmError;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

pub mod adjacency;
pub mod review;

pub use adjacency::{
    AdjacencyCubes, adjacency_curve, adjacency_distance, adjacency_distance_reference,
};
pub use review::{ReviewTokens, ReviewTokensConfig};

/// One axis of a `(T, H, W)` token grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Time (frames), grid index 0.
    T,
    /// Height (rows), grid index 1.
    H,
    /// Width (columns), grid index 2.
    W,
}

impl Axis {
    /// Position of the axis in a `[T, H, W]` grid: `T → 0`, `H → 1`, `W → 2`.
    pub const fn index(self) -> usize {
        match self {
            Axis::T => 0,
            Axis::H => 1,
            Axis::W => 2,
        }
    }
}

/// Number of tokens `T·H·W` of a `[T, H, W]` grid.
pub fn grid_len(grid: [usize; 3]) -> usize {
    grid[0] * grid[1] * grid[2]
}

/// Raster index `(t·H + h)·W + w` of the token at `coord = [t, h, w]`.
///
/// # Panics
/// If a coordinate is outside the grid.
pub fn raster_index(grid: [usize; 3], coord: [usize; 3]) -> usize {
    assert!(
        (0..3).all(|a| coord[a] < grid[a]),
        "coordinate {coord:?} is outside the grid {grid:?}"
    );
    (coord[0] * grid[1] + coord[1]) * grid[2] + coord[2]
}

/// Coordinate `[t, h, w]` of raster index `index` (inverse of [`raster_index`]).
///
/// # Panics
/// If `index >= T·H·W`.
pub fn raster_coord(grid: [usize; 3], index: usize) -> [usize; 3] {
    assert!(
        index < grid_len(grid),
        "raster index {index} is outside the grid {grid:?}"
    );
    [
        index / (grid[1] * grid[2]),
        (index / grid[2]) % grid[1],
        index % grid[2],
    ]
}

/// A scan order over a `(T, H, W)` token grid: a nesting order of the three axes (slowest
/// first) and whether inner axes run as a boustrophedon (zigzag).
///
/// Snake rule: with scan counters `j0, j1, j2` over the axes in nesting order, the middle axis
/// runs backwards when `j0` is odd and the innermost axis runs backwards when the number of
/// completed lines `j0·n1 + j1` is odd. Consecutive tokens are then always grid neighbours, also
/// across plane boundaries (a Hamiltonian path of the grid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanOrder {
    axes: [Axis; 3],
    snake: bool,
}

impl ScanOrder {
    /// Raster `(t, h, w)`, `w` fastest: the storage order (identity permutation).
    pub const RASTER: Self = Self {
        axes: [Axis::T, Axis::H, Axis::W],
        snake: false,
    };
    /// Column-major per frame: `(t, w, h)`, `h` fastest.
    pub const COLUMN_MAJOR: Self = Self {
        axes: [Axis::T, Axis::W, Axis::H],
        snake: false,
    };
    /// Temporal-major: `(h, w, t)`, `t` fastest (each pixel's tube is contiguous).
    pub const TEMPORAL_MAJOR: Self = Self {
        axes: [Axis::H, Axis::W, Axis::T],
        snake: false,
    };
    /// Zigzag (boustrophedon) over `(t, h, w)`: rows alternate direction, and so do planes.
    /// Equal to [`RotaryMajorScan::for_layer(0)`](RotaryMajorScan::for_layer).
    pub const ZIGZAG: Self = Self {
        axes: [Axis::T, Axis::H, Axis::W],
        snake: true,
    };

    /// Lexicographic scan over `axes` (slowest first).
    ///
    /// # Errors
    /// [`SsmError::Config`] (`ConfigError::Unsupported`) naming `axes` unless it names `T`, `H` and `W` once each.
    pub fn linear(axes: [Axis; 3]) -> Result<Self, SsmError> {
        check_axes(axes)?;
        Ok(Self { axes, snake: false })
    }

    /// Boustrophedon scan over `axes` (slowest first); see the type docs for the rule.
    ///
    /// # Errors
    /// [`SsmError::Config`] (`ConfigError::Unsupported`) naming `axes` unless it names `T`, `H` and `W` once each.
    pub fn snake(axes: [Axis; 3]) -> Result<Self, SsmError> {
        check_axes(axes)?;
        Ok(Self { axes, snake: true })
    }

    /// The nesting order, slowest axis first.
    pub fn axes(&self) -> [Axis; 3] {
        self.axes
    }

    /// Whether inner axes alternate direction (zigzag).
    pub fn is_snake(&self) -> bool {
        self.snake
    }

    /// The fastest-varying axis (`X` of "`X`-major", see the module docs).
    pub fn major_axis(&self) -> Axis {
        self.axes[2]
    }

    /// `perm[i]` = raster index of the token at scan position `i`; closed form per position
    /// (mixed-radix decode of `i`, then the snake reflections).
    ///
    /// # Shapes
    /// `grid`: `[T, H, W]` → `T·H·W` indices, a bijection of `0..T·H·W`.
    ///
    /// ```
    /// use vidgen_ssm::scan_order::{RotaryMajorScan, ScanOrder};
    /// // 1×2×3 grid: row 0 forward, row 1 backward.
    /// assert_eq!(ScanOrder::ZIGZAG.permutation([1, 2, 3]), vec![0, 1, 2, 5, 4, 3]);
    /// // RMS layer 1 is H-major: columns first, alternating direction.
    /// let col = RotaryMajorScan::for_layer(1).permutation([1, 2, 3]);
    /// assert_eq!(col, vec![0, 3, 4, 1, 2, 5]);
    /// ```
    pub fn permutation(&self, grid: [usize; 3]) -> Vec<usize> {
        let n = self.axes.map(|a| grid[a.index()]);
        let raster_strides = [grid[1] * grid[2], grid[2], 1];
        let stride = self.axes.map(|a| raster_strides[a.index()]);
        (0..grid_len(grid))
            .map(|i| {
                let (j0, j1, j2) = (i / (n[1] * n[2]), (i / n[2]) % n[1], i % n[2]);
                let (a1, a2) = if self.snake {
                    let a1 = if j0 % 2 == 1 { n[1] - 1 - j1 } else { j1 };
                    let a2 = if (j0 * n[1] + j1) % 2 == 1 {
                        n[2] - 1 - j2
                    } else {
                        j2
                    };
                    (a1, a2)
                } else {
                    (j1, j2)
                };
                j0 * stride[0] + a1 * stride[1] + a2 * stride[2]
            })
            .collect()
    }

    /// Reference twin of [`permutation`](Self::permutation): walks the grid with three nested
    /// loops, toggling a direction flag after every completed line / plane.
    pub fn permutation_reference(&self, grid: [usize; 3]) -> Vec<usize> {
        let n = self.axes.map(|a| grid[a.index()]);
        let mut out = Vec::with_capacity(grid_len(grid));
        let (mut back1, mut back2) = (false, false);
        for j0 in 0..n[0] {
            for j1 in 0..n[1] {
                let a1 = if back1 { n[1] - 1 - j1 } else { j1 };
                for j2 in 0..n[2] {
                    let a2 = if back2 { n[2] - 1 - j2 } else { j2 };
                    let mut coord = [0; 3];
                    coord[self.axes[0].index()] = j0;
                    coord[self.axes[1].index()] = a1;
                    coord[self.axes[2].index()] = a2;
                    out.push(raster_index(grid, coord));
                }
                back2 ^= self.snake;
            }
            back1 ^= self.snake;
        }
        out
    }

    /// `inverse[j]` = scan position of raster token `j`, so `perm[inverse[j]] = j`.
    pub fn inverse(&self, grid: [usize; 3]) -> Vec<usize> {
        invert(&self.permutation(grid))
    }

    /// Index tensors of this order for `grid` on `device`, to reuse across calls.
    pub fn plan<B: Backend>(&self, grid: [usize; 3], device: &B::Device) -> ScanPlan<B> {
        ScanPlan::from_permutation(&self.permutation(grid), device)
    }

    /// Reorders raster tokens into this scan order: `out[:, i] = x[:, perm[i]]`.
    ///
    /// # Shapes
    /// `x`: `[B, T·H·W, C]` in raster order → `[B, T·H·W, C]` in scan order
    ///
    /// # Panics
    /// If `x.dims()[1] != T·H·W`.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 3> {
        self.plan(grid, &x.device()).apply(x)
    }

    /// Inverse of [`apply`](Self::apply): `out[:, j] = y[:, inverse[j]]`.
    ///
    /// # Shapes
    /// `y`: `[B, T·H·W, C]` in scan order → `[B, T·H·W, C]` in raster order
    ///
    /// # Panics
    /// If `y.dims()[1] != T·H·W`.
    pub fn restore<B: Backend>(&self, y: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 3> {
        self.plan(grid, &y.device()).restore(y)
    }
}

fn check_axes(axes: [Axis; 3]) -> Result<(), SsmError> {
    let mut seen = [false; 3];
    axes.iter().for_each(|a| seen[a.index()] = true);
    if seen.iter().all(|&s| s) {
        Ok(())
    } else {
        Err(SsmError::Config(ConfigError::Unsupported {
            field: "axes",
            value: format!("{axes:?}"),
            reason: "a scan order must name T, H and W once each",
        }))
    }
}

/// Inverse of a permutation of `0..perm.len()`.
///
/// # Panics
/// If `perm` is not a bijection of `0..perm.len()`.
pub fn invert(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![usize::MAX; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        assert!(
            p < perm.len() && inv[p] == usize::MAX,
            "not a permutation: index {p} at position {i} (length {})",
            perm.len()
        );
        inv[p] = i;
    }
    inv
}

/// LinGen's Rotary-Major Scan: the nesting order of `(T, H, W)` is rotated cyclically from layer
/// to layer, and each layer scans as a zigzag (snake) so consecutive tokens stay neighbours.
///
/// Layer `k` uses the rotation `k mod 3` of `[T, H, W]`:
///
/// | `k mod 3` | axes (slow → fast) | major (fastest) axis |
/// |---|---|---|
/// | 0 | `T, H, W` | `W` (row-major zigzag = [`ScanOrder::ZIGZAG`]) |
/// | 1 | `W, T, H` | `H` (column-major zigzag) |
/// | 2 | `H, W, T` | `T` (temporal-major zigzag) |
///
/// Each rotation is a transpose of the `[T, H, W]` token tensor, which is why RMS is cheap
/// compared with arbitrary scan paths. Our reading of "rotary": the whole axis tuple rotates,
/// not only the fastest axis; the choice that layer 0 is the plain row-major zigzag makes a
/// one-layer RMS model identical to a zigzag model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotaryMajorScan;

impl RotaryMajorScan {
    /// Number of distinct layer orders before the cycle repeats.
    pub const PERIOD: usize = 3;

    /// Scan order of layer `k` (0-based).
    pub fn for_layer(k: usize) -> ScanOrder {
        const ROTATIONS: [[Axis; 3]; 3] = [
            [Axis::T, Axis::H, Axis::W],
            [Axis::W, Axis::T, Axis::H],
            [Axis::H, Axis::W, Axis::T],
        ];
        ScanOrder {
            axes: ROTATIONS[k % Self::PERIOD],
            snake: true,
        }
    }

    /// The orders of layers `0..n_layers`.
    pub fn layers(n_layers: usize) -> Vec<ScanOrder> {
        (0..n_layers).map(Self::for_layer).collect()
    }
}

/// Index tensors of one scan order for one grid, built once and reused by every layer call.
#[derive(Clone, Debug)]
pub struct ScanPlan<B: Backend> {
    forward: Tensor<B, 1, Int>,
    backward: Tensor<B, 1, Int>,
    len: usize,
}

impl<B: Backend> ScanPlan<B> {
    /// Plan of an arbitrary permutation (`perm[i]` = source index of position `i`).
    ///
    /// # Panics
    /// If `perm` is not a bijection of `0..perm.len()`.
    pub fn from_permutation(perm: &[usize], device: &B::Device) -> Self {
        let inv = invert(perm);
        let to_tensor = |v: &[usize]| {
            let data: Vec<i64> = v.iter().map(|&i| i as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(data, [v.len()]), device)
        };
        Self {
            forward: to_tensor(perm),
            backward: to_tensor(&inv),
            len: perm.len(),
        }
    }

    /// Sequence length the plan permutes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the plan permutes an empty sequence.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Raster → scan order.
    ///
    /// # Shapes
    /// `x`: `[B, L, C]` → `[B, L, C]`
    ///
    /// # Panics
    /// If `x.dims()[1] != self.len()`.
    pub fn apply(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.check(x.dims(), "apply");
        x.select(1, self.forward.clone())
    }

    /// Scan → raster order.
    ///
    /// # Shapes
    /// `y`: `[B, L, C]` → `[B, L, C]`
    ///
    /// # Panics
    /// If `y.dims()[1] != self.len()`.
    pub fn restore(&self, y: Tensor<B, 3>) -> Tensor<B, 3> {
        self.check(y.dims(), "restore");
        y.select(1, self.backward.clone())
    }

    fn check(&self, dims: [usize; 3], op: &str) {
        assert_eq!(
            dims[1], self.len,
            "scan {op}: sequence length {} (shape {dims:?}) differs from the grid's {} tokens",
            dims[1], self.len
        );
    }
}
