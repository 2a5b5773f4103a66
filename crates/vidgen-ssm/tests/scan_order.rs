//! Scan orders, Rotary-Major Scan, review tokens, the adjacency metric `d_k` and the FLOPs
//! formulas of vidgen-ssm (LinGen supplement sec. A and E.2). Everything here is index math or
//! data movement, so tensors are compared exactly except the pooled review tokens.

use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};
use vidgen_ssm::ConfigError;
use vidgen_ssm::SsmError;
use vidgen_ssm::flops::*;
use vidgen_ssm::scan_order::*;
use vidgen_testing::{Tolerance, assert_close, backend_tests};

/// Window means of f32 inputs: the tensor path sums per axis in f32, the reference in f64, over
/// at most a few dozen values of size ~1.
const POOL_MEAN: Tolerance = Tolerance::SINGLE_OP;

const GRIDS: [[usize; 3]; 8] = [
    [3, 5, 4],
    [1, 1, 7],
    [2, 3, 1],
    [4, 4, 4],
    [1, 1, 1],
    [2, 1, 3],
    [5, 2, 3],
    [3, 3, 3],
];

const AXIS_ORDERS: [[Axis; 3]; 6] = [
    [Axis::T, Axis::H, Axis::W],
    [Axis::T, Axis::W, Axis::H],
    [Axis::H, Axis::T, Axis::W],
    [Axis::H, Axis::W, Axis::T],
    [Axis::W, Axis::T, Axis::H],
    [Axis::W, Axis::H, Axis::T],
];

/// Every named order, every linear and snake order over the six axis nestings, and RMS layers.
fn all_orders() -> Vec<ScanOrder> {
    let mut v = vec![
        ScanOrder::RASTER,
        ScanOrder::COLUMN_MAJOR,
        ScanOrder::TEMPORAL_MAJOR,
        ScanOrder::ZIGZAG,
    ];
    for axes in AXIS_ORDERS {
        v.push(ScanOrder::linear(axes).unwrap());
        v.push(ScanOrder::snake(axes).unwrap());
    }
    v.extend(RotaryMajorScan::layers(4));
    v
}

#[test]
fn permutations_are_bijections_matching_the_reference_walk() {
    for grid in GRIDS {
        let n = grid_len(grid);
        for order in all_orders() {
            let perm = order.permutation(grid);
            assert_eq!(
                perm,
                order.permutation_reference(grid),
                "{order:?} {grid:?}"
            );
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "{order:?} {grid:?}");
            let inv = order.inverse(grid);
            assert!((0..n).all(|i| inv[perm[i]] == i && perm[inv[i]] == i));
        }
    }
}

#[test]
fn named_orders_follow_their_definitions() {
    let grid = [2, 2, 3];
    assert_eq!(
        ScanOrder::RASTER.permutation(grid),
        (0..12).collect::<Vec<_>>()
    );
    let mut column = Vec::new();
    let mut temporal = Vec::new();
    for t in 0..2 {
        for w in 0..3 {
            for h in 0..2 {
                column.push(raster_index(grid, [t, h, w]));
            }
        }
    }
    for h in 0..2 {
        for w in 0..3 {
            for t in 0..2 {
                temporal.push(raster_index(grid, [t, h, w]));
            }
        }
    }
    assert_eq!(ScanOrder::COLUMN_MAJOR.permutation(grid), column);
    assert_eq!(ScanOrder::TEMPORAL_MAJOR.permutation(grid), temporal);
    // Worked by hand: row 0 forward, row 1 backward; plane 1 walks rows 1, 0 (line 2 forward,
    // line 3 backward).
    let zigzag = vec![0, 1, 2, 5, 4, 3, 9, 10, 11, 8, 7, 6];
    assert_eq!(ScanOrder::ZIGZAG.permutation(grid), zigzag);
    assert_eq!(raster_coord(grid, 11), [1, 1, 2]);
}

#[test]
fn snake_orders_only_step_between_grid_neighbours() {
    for grid in GRIDS {
        for order in all_orders().into_iter().filter(|o| o.is_snake()) {
            let perm = order.permutation(grid);
            for pair in perm.windows(2) {
                let (a, b) = (raster_coord(grid, pair[0]), raster_coord(grid, pair[1]));
                let step: usize = (0..3).map(|x| a[x].abs_diff(b[x])).sum();
                assert_eq!(step, 1, "{order:?} {grid:?}: {a:?} -> {b:?}");
            }
        }
    }
}

#[test]
fn rotary_major_scan_cycles_its_major_axis() {
    let expected = [Axis::W, Axis::H, Axis::T];
    for k in 0..9 {
        let order = RotaryMajorScan::for_layer(k);
        assert_eq!(order.major_axis(), expected[k % 3], "layer {k}");
        assert!(order.is_snake());
        assert_eq!(
            order,
            RotaryMajorScan::for_layer(k + RotaryMajorScan::PERIOD)
        );
        // The nesting tuple is rotated as a whole: layer k+1's axes are layer k's shifted right.
        let (a, b) = (order.axes(), RotaryMajorScan::for_layer(k + 1).axes());
        assert_eq!(b, [a[2], a[0], a[1]], "layer {k}");
    }
    assert_eq!(RotaryMajorScan::for_layer(0), ScanOrder::ZIGZAG);
    assert_eq!(RotaryMajorScan::layers(5).len(), 5);
}

#[test]
fn invalid_axis_tuples_are_rejected() {
    for axes in [[Axis::T, Axis::T, Axis::W], [Axis::H, Axis::W, Axis::W]] {
        let err = ScanOrder::linear(axes).unwrap_err();
        assert!(
            matches!(
                err,
                SsmError::Config(ConfigError::Unsupported { field: "axes", .. })
            ),
            "{err}"
        );
        assert!(ScanOrder::snake(axes).is_err());
    }
    assert!(std::panic::catch_unwind(|| invert(&[0, 0, 1])).is_err());
}

fn apply_restore_round_trip<B: Backend>(device: &B::Device) {
    for grid in GRIDS {
        let n = grid_len(grid);
        let x = Tensor::<B, 3>::random([2, n, 3], Distribution::Normal(0.0, 1.0), device);
        let host = x.to_data().to_vec::<f32>().unwrap();
        for order in all_orders() {
            let perm = order.permutation(grid);
            let scanned = order.apply(x.clone(), grid);
            // Expected gather on the host: scanned[b, i] = x[b, perm[i]].
            let mut expected = Vec::with_capacity(host.len());
            for b in 0..2 {
                for &src in &perm {
                    expected.extend_from_slice(&host[(b * n + src) * 3..(b * n + src + 1) * 3]);
                }
            }
            let expected = Tensor::<B, 3>::from_data(TensorData::new(expected, [2, n, 3]), device);
            assert_close(scanned.clone(), expected, Tolerance::EXACT);
            assert_close(order.restore(scanned, grid), x.clone(), Tolerance::EXACT);
            let plan = order.plan::<B>(grid, device);
            assert_eq!(plan.len(), n);
            assert_close(
                plan.restore(plan.apply(x.clone())),
                x.clone(),
                Tolerance::EXACT,
            );
        }
    }
}

#[test]
#[should_panic(expected = "differs from the grid's 8 tokens")]
fn apply_rejects_wrong_length() {
    let x = Tensor::<vidgen_testing::Flex, 3>::zeros([1, 7, 2], &Default::default());
    let _ = ScanOrder::ZIGZAG.apply(x, [2, 2, 2]);
}

/// Orders whose `d_k` the tests compare: fixed orders, RMS stacks and a mixed stack.
fn schedules() -> Vec<Vec<ScanOrder>> {
    let mut v = vec![
        vec![ScanOrder::RASTER],
        vec![ScanOrder::ZIGZAG; 3],
        vec![ScanOrder::TEMPORAL_MAJOR, ScanOrder::COLUMN_MAJOR],
    ];
    v.extend((1..=4).map(RotaryMajorScan::layers));
    v
}

#[test]
fn adjacency_matches_brute_force_on_tiny_grids() {
    let grids = [
        [3, 4, 5],
        [2, 2, 2],
        [1, 3, 4],
        [2, 3, 1],
        [4, 3, 3],
        [5, 1, 1],
    ];
    for grid in grids {
        for cubes in [AdjacencyCubes::Sliding, AdjacencyCubes::Disjoint] {
            for layers in schedules() {
                let fast = adjacency_distance(grid, &layers, cubes).unwrap();
                let slow = adjacency_distance_reference(grid, &layers, cubes).unwrap();
                assert!(
                    (fast - slow).abs() <= 1e-12 * slow,
                    "{grid:?} {cubes:?} {layers:?}: {fast} vs brute force {slow}"
                );
                let curve = adjacency_curve(grid, &layers, cubes).unwrap();
                for k in 1..=layers.len() {
                    let prefix = adjacency_distance_reference(grid, &layers[..k], cubes).unwrap();
                    assert!((curve[k - 1] - prefix).abs() <= 1e-12 * prefix);
                }
            }
        }
    }
}

#[test]
fn adjacency_hand_values_on_one_cube() {
    // 2×2×2 raster: 4 edges each along w (distance 1), h (2), t (4).
    let d = adjacency_distance([2, 2, 2], &[ScanOrder::RASTER], AdjacencyCubes::Sliding).unwrap();
    assert_eq!(d, 28.0 / 12.0);
    // Three RMS layers make every edge contiguous in the layer whose fastest axis it follows.
    let rms = adjacency_distance([2, 2, 2], &RotaryMajorScan::layers(3), Default::default());
    assert_eq!(rms.unwrap(), 1.0);
}

#[test]
fn adjacency_rejects_empty_inputs() {
    let zero_layers = adjacency_distance([2, 2, 2], &[], AdjacencyCubes::Sliding).unwrap_err();
    assert_eq!(
        zero_layers,
        SsmError::Config(ConfigError::Zero { field: "layers" })
    );
    let zero_side = adjacency_distance([2, 0, 2], &[ScanOrder::RASTER], Default::default());
    assert!(matches!(
        zero_side,
        Err(SsmError::Config(ConfigError::Zero {
            field: "grid[1] (H)"
        }))
    ));
    let single = adjacency_distance([1, 1, 1], &[ScanOrder::RASTER], Default::default());
    assert!(matches!(
        single,
        Err(SsmError::Config(ConfigError::Unsupported {
            field: "grid",
            ..
        }))
    ));
}

/// Snake scans over the six axis nestings, cycled per layer in [`AXIS_ORDERS`] order.
fn zigzag_cycle(n_layers: usize) -> Vec<ScanOrder> {
    (0..n_layers)
        .map(|k| ScanOrder::snake(AXIS_ORDERS[k % 6]).unwrap())
        .collect()
}

/// The `d_k` table of docs/ssm.md (H = W = T = 32). Print it with
/// `cargo test -p vidgen-ssm --test scan_order adjacency_table_32 -- --nocapture`.
#[test]
fn adjacency_table_32() {
    const K: usize = 6;
    let grid = [32, 32, 32];
    for cubes in [AdjacencyCubes::Sliding, AdjacencyCubes::Disjoint] {
        let rows = [
            ("raster", vec![ScanOrder::RASTER; K]),
            ("zigzag (fixed)", vec![ScanOrder::ZIGZAG; K]),
            ("RMS", RotaryMajorScan::layers(K)),
            // A ZigMa-like layer-varying zigzag in 3D: snakes over the six nestings in turn.
            ("zigzag cycle (6 nestings)", zigzag_cycle(K)),
        ];
        println!("{cubes:?} cubes: | order | d_1 … d_{K} |");
        let mut curves = Vec::new();
        for (name, layers) in rows {
            let curve = adjacency_curve(grid, &layers, cubes).unwrap();
            let cells: Vec<String> = curve.iter().map(|d| format!("{d:.3}")).collect();
            println!("| {name} | {} |", cells.join(" | "));
            curves.push(curve);
        }
        let (raster, zigzag, rms, cycle) = (&curves[0], &curves[1], &curves[2], &curves[3]);
        // A fixed order cannot improve with depth.
        assert!(raster.iter().all(|&d| d == raster[0]));
        assert!(zigzag.iter().all(|&d| d == zigzag[0]));
        // RMS layer 0 is the zigzag; from layer 3 on every edge is contiguous somewhere: d = 1,
        // the floor of any scan.
        assert_eq!(rms[0], zigzag[0]);
        assert!(rms.windows(2).all(|w| w[1] <= w[0]));
        assert!(rms[2..].iter().all(|&d| d == 1.0));
        // The layer-varying zigzag reaches the same floor, later.
        assert!(rms.iter().zip(cycle).all(|(r, c)| r <= c));
        assert_eq!(cycle[K - 1], 1.0);
        if cubes == AdjacencyCubes::Sliding {
            // Raster distances are constant per axis (1, W, H·W): (1 + 32 + 1024) / 3.
            assert!((raster[0] - 1057.0 / 3.0).abs() < 1e-9, "{}", raster[0]);
        }
    }
}

fn review_tokens_pool_like_the_reference<B: Backend>(device: &B::Device) {
    let cases = [
        ([3, 5, 4], [2, 2, 3]),
        ([1, 1, 7], [4, 8, 8]),
        ([4, 4, 4], [2, 2, 2]),
        ([5, 2, 3], [3, 1, 2]),
    ];
    for (grid, pool) in cases {
        let review = ReviewTokensConfig::new()
            .with_pool_t(pool[0])
            .with_pool_h(pool[1])
            .with_pool_w(pool[2])
            .init()
            .unwrap();
        let x = Tensor::<B, 3>::random([2, grid_len(grid), 5], Distribution::Default, device);
        let summary = review.summarize(x.clone(), grid);
        let pooled = review.pooled_grid(grid);
        assert_eq!(summary.dims(), [2, grid_len(pooled), 5]);
        assert_close(summary, review.summarize_reference(x, grid), POOL_MEAN);
    }
    // Window 1 is the identity.
    let one = ReviewTokensConfig::new()
        .with_pool_t(1)
        .with_pool_h(1)
        .with_pool_w(1);
    let x = Tensor::<B, 3>::random([1, 24, 2], Distribution::Default, device);
    let summary = one.init().unwrap().summarize(x.clone(), [2, 3, 4]);
    assert_close(summary, x, Tolerance::EXACT);
}

fn review_tokens_round_trip<B: Backend>(device: &B::Device) {
    let review = ReviewTokensConfig::new()
        .with_pool_t(2)
        .with_pool_h(2)
        .with_pool_w(3)
        .init()
        .unwrap();
    let grid = [3, 5, 4];
    let r = review.count(grid);
    assert_eq!(r, 2 * 3 * 2);
    let x = Tensor::<B, 3>::random([2, 60, 4], Distribution::Default, device);
    for order in RotaryMajorScan::layers(3) {
        let seq = review.scan_with_review(x.clone(), grid, order);
        assert_eq!(seq.dims(), [2, r + 60, 4]);
        assert_close(
            seq.clone().narrow(1, 0, r),
            review.summarize(x.clone(), grid),
            Tolerance::EXACT,
        );
        assert_close(review.unscan(seq, grid, order), x.clone(), Tolerance::EXACT);
    }
    let prefix = Tensor::<B, 3>::ones([2, r, 4], device);
    let joined = ReviewTokens::prepend(prefix, x.clone());
    assert_close(review.strip(joined, grid), x, Tolerance::EXACT);
}

#[test]
fn review_config_rejects_zero_windows() {
    let d = ReviewTokensConfig::new();
    assert_eq!((d.pool_t, d.pool_h, d.pool_w), (4, 8, 8));
    assert_eq!(d.init().unwrap().count([32, 32, 32]), 128);
    for (cfg, field) in [
        (ReviewTokensConfig::new().with_pool_t(0), "pool_t"),
        (ReviewTokensConfig::new().with_pool_h(0), "pool_h"),
        (ReviewTokensConfig::new().with_pool_w(0), "pool_w"),
    ] {
        assert_eq!(
            cfg.init().unwrap_err(),
            SsmError::Config(ConfigError::Zero { field })
        );
    }
}

backend_tests!(
    apply_restore_round_trip,
    review_tokens_pool_like_the_reference,
    review_tokens_round_trip,
);

/// LinGen-4B (supplement E.1/E.2): d = 2560, E = 2, d_s = 128, d_h = 64, K = 4.
const LINGEN_4B: (usize, usize, usize, usize, usize) = (2560, 2, 128, 64, 4);

/// Eq. (1)'s projection term counts the multiply-adds of the layer's own `in_proj` and
/// `out_proj` (2 FLOPs each, per token), read off Mamba2 layers built at small sizes.
#[test]
fn eq1_projections_count_the_mamba2_layer_weights() {
    type Cpu = vidgen_testing::Flex;
    let device = Default::default();
    for (d, e, ds, dh) in [(64, 2, 16, 16), (96, 1, 8, 32), (48, 3, 4, 8)] {
        let layer = vidgen_ssm::Mamba2Config::new(d)
            .with_expand(e)
            .with_d_state(ds)
            .with_head_dim(dh)
            .init::<Cpu>(&device)
            .unwrap();
        let [in_in, in_out] = layer.in_proj.weight.dims();
        let [out_in, out_out] = layer.out_proj.weight.dims();
        assert_eq!((in_in, out_out), (d, d));
        for n in [1usize, 7, 4096] {
            let counted = 2 * n * (in_in * in_out + out_in * out_out);
            assert_eq!(
                mamba2_projection_flops(n, d, e, ds, dh),
                counted as f64,
                "d {d}, E {e}, d_s {ds}, d_h {dh}, N {n}"
            );
        }
    }
}

#[test]
fn bidirectional_doubles_conv_and_ssm_only() {
    let (d, e, ds, dh, k) = LINGEN_4B;
    let n = 32 * 32 * 32;
    let proj = mamba2_projection_flops(n, d, e, ds, dh);
    let conv = mamba2_conv_flops(n, d, e, k);
    let ssm = mamba2_ssm_flops(n, d, e, ds);
    assert_eq!(conv, (2 * e * k * (n + k - 1) * d) as f64);
    assert_eq!(ssm, (4 * e * n * ds * d + 2 * e * n * d) as f64);
    assert_eq!(mamba2_flops(n, d, e, ds, dh, k), proj + conv + ssm);
    assert_eq!(
        bimamba2_flops(n, d, e, ds, dh, k),
        proj + 2.0 * (conv + ssm)
    );
    assert_eq!(
        attention_flops(n, d),
        (8 * n * d * d + 4 * n * n * d) as f64
    );
}

#[test]
fn mamba2_is_linear_and_attention_quadratic_in_tokens() {
    let (d, e, ds, dh, k) = LINGEN_4B;
    let bi = |n| bimamba2_flops(n, d, e, ds, dh, k);
    let att = |n| attention_flops(n, d);
    for n in [64usize, 1000, 32768] {
        // Second differences: 0 for an affine cost, 8·d for 4·N²·d.
        assert_eq!(bi(n + 2) - 2.0 * bi(n + 1) + bi(n), 0.0);
        assert_eq!(att(n + 2) - 2.0 * att(n + 1) + att(n), 8.0 * d as f64);
    }
    // Doubling the tokens: Mamba2 ×2 up to the convolution's padding, attention → ×4.
    let (n, big) = (1 << 12, 1 << 20);
    assert!((bi(2 * n) / bi(n) - 2.0).abs() < 1e-5);
    assert!((att(2 * big) / att(big) - 4.0).abs() < 0.01);
}

/// The FLOPs table of docs/ssm.md. Print it with
/// `cargo test -p vidgen-ssm --test scan_order flops_table -- --nocapture`.
#[test]
fn flops_table() {
    let (d, e, ds, dh, k) = LINGEN_4B;
    let mut last_ratio = 0.0;
    for (grid, n) in [
        ("16×16×16", 4096),
        ("32×32×32", 32768),
        ("34×32×56", 34 * 32 * 56),
        ("136×32×56", 136 * 32 * 56),
    ] {
        let bi = bimamba2_flops(n, d, e, ds, dh, k);
        let two = 2.0 * mamba2_flops(n, d, e, ds, dh, k);
        let att = attention_flops(n, d);
        println!(
            "| {grid} | {n} | {bi:.3e} | {two:.3e} | {att:.3e} | {:.2} |",
            att / bi
        );
        assert!(att / bi > last_ratio && two > bi);
        last_ratio = att / bi;
    }
}
