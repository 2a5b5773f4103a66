//! Patch groups of Snap Video's FIT (Sec. 3.4): a group is a `gh × gw` window of patches in space
//! that spans **all** `t` frames, so every group sees the whole clip.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

/// Raster-order patch tokens → tokens grouped for batched group-wise attention. Groups are in
/// `(h/gh, w/gw)` raster order; inside a group tokens are in `(t, gh, gw)` raster order.
///
/// # Shapes
/// `x`: `[B, t·h·w, D]` → `[B·G, t·gh·gw, D]` with `G = (h/gh)·(w/gw)`
///
/// # Panics
/// If the token count is not `t·h·w` or `group` does not divide `(h, w)`.
pub fn group_patches<B: Backend>(
    x: Tensor<B, 3>,
    grid: [usize; 3],
    group: [usize; 2],
) -> Tensor<B, 3> {
    let [b, l, d] = x.dims();
    let ([t, h, w], [gh, gw]) = (grid, group);
    check(l, grid, group);
    let (nh, nw) = (h / gh, w / gw);
    x.reshape([b, t, nh, gh, nw, gw, d])
        .permute([0, 2, 4, 1, 3, 5, 6])
        .reshape([b * nh * nw, t * gh * gw, d])
}

/// The inverse of [`group_patches`].
///
/// # Shapes
/// `x`: `[B·G, t·gh·gw, D]` → `[B, t·h·w, D]`
///
/// # Panics
/// If the shape does not match `batch`, `grid` and `group`.
pub fn ungroup_patches<B: Backend>(
    x: Tensor<B, 3>,
    batch: usize,
    grid: [usize; 3],
    group: [usize; 2],
) -> Tensor<B, 3> {
    let d = x.dims()[2];
    let ([t, h, w], [gh, gw]) = (grid, group);
    check(t * h * w, grid, group);
    let (nh, nw) = (h / gh, w / gw);
    x.reshape([batch, nh, nw, t, gh, gw, d])
        .permute([0, 3, 1, 4, 2, 5, 6])
        .reshape([batch, t * h * w, d])
}

fn check(tokens: usize, [t, h, w]: [usize; 3], [gh, gw]: [usize; 2]) {
    assert_eq!(
        tokens,
        t * h * w,
        "{tokens} tokens for grid {:?}",
        [t, h, w]
    );
    assert!(
        gh > 0 && gw > 0 && h.is_multiple_of(gh) && w.is_multiple_of(gw),
        "group {:?} does not divide the patch grid (h, w) = ({h}, {w})",
        [gh, gw]
    );
}

/// The group of every raster-order patch: `(hi / gh)·(w/gw) + wi / gw` for patch `(ti, hi, wi)`.
pub fn group_ids(grid: [usize; 3], group: [usize; 2]) -> Vec<usize> {
    let ([t, h, w], [gh, gw]) = (grid, group);
    let nw = w / gw;
    let mut ids = Vec::with_capacity(t * h * w);
    for _ in 0..t {
        for hi in 0..h {
            ids.extend((0..w).map(|wi| (hi / gh) * nw + wi / gw));
        }
    }
    ids
}

/// The block-diagonal read mask of the reference path: `mask[i, j] = (i / n_latents) ≠
/// group(j)` for latent `i` (group-major) and raster patch `j` (`true` = masked out).
///
/// # Shapes
/// → `[G·n_latents, t·h·w]`
pub fn group_read_mask<B: Backend>(
    grid: [usize; 3],
    group: [usize; 2],
    n_latents: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let ids = group_ids(grid, group);
    let n_groups = (grid[1] / group[0]) * (grid[2] / group[1]);
    let data: Vec<bool> = (0..n_groups * n_latents)
        .flat_map(|i| ids.iter().map(move |&g| g != i / n_latents))
        .collect();
    Tensor::from_bool(
        TensorData::new(data, [n_groups * n_latents, ids.len()]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Int;
    use vidgen_testing::Flex;

    #[test]
    fn grouping_round_trips_and_matches_group_ids() {
        let device = Default::default();
        let (grid, group) = ([2, 4, 6], [2, 3]);
        let l = 2 * 4 * 6;
        // Token j carries value j in its single channel; batch 2.
        let x = Tensor::<Flex, 1, Int>::arange(0..(2 * l) as i64, &device)
            .float()
            .reshape([2, l, 1]);
        let g = group_patches(x.clone(), grid, group);
        assert_eq!(g.dims(), [2 * 4, 2 * 2 * 3, 1]);
        let ids = group_ids(grid, group);
        let vals: Vec<f32> = g.clone().into_data().to_vec().unwrap();
        for (row, chunk) in vals.chunks(12).enumerate() {
            let (b, grp) = (row / 4, row % 4);
            for &v in chunk {
                let j = v as usize - b * l;
                assert_eq!(ids[j], grp, "token {j} in group row {row}");
            }
        }
        let back: Vec<f32> = ungroup_patches(g, 2, grid, group)
            .into_data()
            .to_vec()
            .unwrap();
        let orig: Vec<f32> = x.into_data().to_vec().unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn read_mask_is_block_diagonal() {
        let m = group_read_mask::<Flex>([1, 2, 2], [1, 2], 2, &Default::default());
        let v: Vec<bool> = m.into_data().to_vec().unwrap();
        // groups: patches (0,0),(0,1) → 0; (1,0),(1,1) → 1; latents 0,1 → group 0; 2,3 → 1.
        let f = false;
        let t = true;
        assert_eq!(v, vec![f, f, t, t, f, f, t, t, t, t, f, f, t, t, f, f]);
    }
}
