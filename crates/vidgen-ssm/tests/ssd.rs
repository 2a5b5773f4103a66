//! The chunked SSD scan against its per-timestep recurrence twin (any length, chunk sizes that do
//! not divide it, n_groups 1 and 2, with and without an initial state), against mamba-ssm
//! 2.3.2.post1's `ssd_minimal_discrete` (`golden/gen_ssm_mamba2.py`), and its gradients against
//! the recurrence's.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData};
use vidgen_ssm::ssd::{SsdOutput, segsum, ssd_chunked, ssd_reference, ssd_step};
use vidgen_testing::{Tolerance, assert_close, autodiff_backend_tests, backend_tests, golden};

/// Chunked vs recurrent in f32: the two sum the same O(L·N) products in different orders and
/// form decays as `exp(Σa)` vs products of `exp(a)`; outputs are O(1–10), so 1e-4 absolute
/// (the brief's bound) with 1e-4 relative for the larger entries.
const SSD_EQUIV: Tolerance = Tolerance::new("SSD_EQUIV", 1e-4, 1e-4);
/// Against `ssd_minimal_discrete` run in f32 by PyTorch: the same algorithm with a different
/// summation order in einsum vs matmul; same bound as the equivalence.
const SSD_GOLDEN: Tolerance = Tolerance::new("SSD_GOLDEN", 1e-4, 1e-4);
/// Gradients summed over up to 13 steps and 2 heads per group; the same f32 reordering as the
/// forward, amplified by the loss weights (O(1)).
const SSD_GRAD: Tolerance = Tolerance::new("SSD_GRAD", 2e-4, 1e-3);

/// Random scan inputs: `x` (already times dt), `a = dt·A ∈ (−1, 0)`, `b`, `c`, optional state.
struct Inputs<B: Backend> {
    x: Tensor<B, 4>,
    a: Tensor<B, 3>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    init: Option<Tensor<B, 4>>,
}

fn inputs<B: Backend>(len: usize, groups: usize, init: bool, device: &B::Device) -> Inputs<B> {
    let (bs, h, p, n) = (2, 4, 3, 5);
    let normal = Distribution::Normal(0.0, 1.0);
    let scale = (n as f64).sqrt().recip();
    Inputs {
        x: Tensor::random([bs, len, h, p], normal, device),
        a: Tensor::random([bs, len, h], Distribution::Uniform(-1.0, 0.0), device),
        b: Tensor::random([bs, len, groups, n], normal, device) * scale,
        c: Tensor::random([bs, len, groups, n], normal, device),
        init: init.then(|| Tensor::random([bs, h, p, n], normal, device)),
    }
}

fn chunked<B: Backend>(i: &Inputs<B>, chunk: usize) -> SsdOutput<B> {
    let Inputs { x, a, b, c, init } = i;
    ssd_chunked(
        x.clone(),
        a.clone(),
        b.clone(),
        c.clone(),
        chunk,
        init.clone(),
    )
}

fn reference<B: Backend>(i: &Inputs<B>) -> SsdOutput<B> {
    let Inputs { x, a, b, c, init } = i;
    ssd_reference(x.clone(), a.clone(), b.clone(), c.clone(), init.clone())
}

fn chunked_matches_recurrence<B: Backend>(device: &B::Device) {
    B::seed(device, 1);
    for len in [1, 7, 64, 129] {
        for groups in [1, 2] {
            for init in [false, true] {
                let i = inputs::<B>(len, groups, init, device);
                let want = reference(&i);
                for chunk in [8, 16, 64] {
                    let got = chunked(&i, chunk);
                    assert_eq!(got.y.dims(), [2, len, 4, 3], "L={len} chunk={chunk}");
                    assert_close(got.y, want.y.clone(), SSD_EQUIV);
                    assert_close(got.final_state, want.final_state.clone(), SSD_EQUIV);
                }
            }
        }
    }
}

fn chunk_of_one_and_longer_than_sequence<B: Backend>(device: &B::Device) {
    B::seed(device, 2);
    let i = inputs::<B>(5, 2, true, device);
    let want = reference(&i);
    for chunk in [1, 2, 5, 100] {
        let got = chunked(&i, chunk);
        assert_close(got.y, want.y.clone(), SSD_EQUIV);
        assert_close(got.final_state, want.final_state.clone(), SSD_EQUIV);
    }
}

/// Scanning `[u₁, u₂]` at once equals scanning `u₂` from the final state of `u₁`.
fn state_carries_across_calls<B: Backend>(device: &B::Device) {
    B::seed(device, 3);
    let i = inputs::<B>(23, 2, true, device);
    let full = chunked(&i, 8);
    let part = |t: &Tensor<B, 4>, s, l| t.clone().narrow(1, s, l);
    let first = ssd_chunked(
        part(&i.x, 0, 10),
        i.a.clone().narrow(1, 0, 10),
        part(&i.b, 0, 10),
        part(&i.c, 0, 10),
        4,
        i.init.clone(),
    );
    let second = ssd_chunked(
        part(&i.x, 10, 13),
        i.a.clone().narrow(1, 10, 13),
        part(&i.b, 10, 13),
        part(&i.c, 10, 13),
        6,
        Some(first.final_state),
    );
    assert_close(Tensor::cat(vec![first.y, second.y], 1), full.y, SSD_EQUIV);
    assert_close(second.final_state, full.final_state, SSD_EQUIV);
}

/// `ssd_step` on hand-computed numbers: one head, P = 1, N = 2.
fn step_by_hand<B: Backend>(device: &B::Device) {
    let state = Tensor::<B, 4>::from_floats([[[[1.0, 2.0]]]], device);
    let x = Tensor::<B, 3>::from_floats([[[3.0]]], device);
    let a = Tensor::<B, 2>::from_floats([[(0.5f32).ln()]], device);
    let b = Tensor::<B, 3>::from_floats([[[1.0, -1.0]]], device);
    let c = Tensor::<B, 3>::from_floats([[[2.0, 1.0]]], device);
    let (y, s) = ssd_step(state, x, a, b, c);
    // h = 0.5·[1, 2] + 3·[1, −1] = [3.5, −2];  y = 2·3.5 − 2 = 5
    assert_close(
        s,
        Tensor::from_floats([[[[3.5, -2.0]]]], device),
        Tolerance::SINGLE_OP,
    );
    assert_close(
        y,
        Tensor::from_floats([[[5.0]]], device),
        Tolerance::SINGLE_OP,
    );
}

/// `segsum` against its definition `Σ_{j<k≤i} x_k`, `−∞` above the diagonal.
fn segsum_definition<B: Backend>(device: &B::Device) {
    let xs = [0.5f32, -1.0, 2.0, -0.25];
    let x = Tensor::<B, 4>::from_floats([[[xs]]], device);
    let mut want = vec![0.0f32; 16];
    for i in 0..4 {
        for j in 0..4 {
            want[i * 4 + j] = if j > i {
                f32::NEG_INFINITY
            } else {
                xs[j + 1..=i].iter().sum()
            };
        }
    }
    let want = Tensor::<B, 5>::from_data(TensorData::new(want, [1, 1, 1, 4, 4]), device);
    assert_close(segsum(x), want, Tolerance::SINGLE_OP);
}

fn golden_case<B: Backend>(name: &str, chunks: &[usize], device: &B::Device) {
    let g = golden(name);
    let init = g
        .names()
        .contains(&"initial_state")
        .then(|| g.tensor("initial_state", device));
    let i = Inputs::<B> {
        x: g.tensor("x", device),
        a: g.tensor("a", device),
        b: g.tensor("b", device),
        c: g.tensor("c", device),
        init,
    };
    let (y, state): (Tensor<B, 4>, Tensor<B, 4>) =
        (g.tensor("y", device), g.tensor("final_state", device));
    let golden_chunk = g.meta("chunk_size").unwrap().parse::<usize>().unwrap();
    for &chunk in [golden_chunk].iter().chain(chunks) {
        let got = chunked(&i, chunk);
        assert_close(got.y, y.clone(), SSD_GOLDEN);
        assert_close(got.final_state, state.clone(), SSD_GOLDEN);
    }
    let got = reference(&i);
    assert_close(got.y, y, SSD_GOLDEN);
    assert_close(got.final_state, state, SSD_GOLDEN);
}

fn matches_ssd_minimal_discrete<B: Backend>(device: &B::Device) {
    golden_case::<B>("ssm_ssd_g1.safetensors", &[5, 48, 100], device);
}

fn matches_ssd_minimal_discrete_groups_initial_state<B: Backend>(device: &B::Device) {
    golden_case::<B>("ssm_ssd_g2_init.safetensors", &[3, 13, 64], device);
}

backend_tests!(
    chunked_matches_recurrence,
    chunk_of_one_and_longer_than_sequence,
    state_carries_across_calls,
    step_by_hand,
    segsum_definition,
    matches_ssd_minimal_discrete,
    matches_ssd_minimal_discrete_groups_initial_state,
);

/// `Σ w_y·y + Σ w_s·final_state` for fixed weights, so every output gets a distinct cotangent.
fn loss<B: Backend>(out: SsdOutput<B>, wy: &Tensor<B, 4>, ws: &Tensor<B, 4>) -> Tensor<B, 1> {
    (out.y * wy.clone()).sum() + (out.final_state * ws.clone()).sum()
}

/// Gradients wrt x, a, B, C and the initial state through the chunked path equal the recurrence's.
fn gradients_match_recurrence<B: AutodiffBackend>(device: &B::Device) {
    B::seed(device, 4);
    let plain = inputs::<B>(13, 2, true, device);
    let wy = Tensor::<B, 4>::random(plain.y_shape(), Distribution::Normal(0.0, 1.0), device);
    let ws = Tensor::<B, 4>::random([2, 4, 3, 5], Distribution::Normal(0.0, 1.0), device);
    let grads_of = |run: &dyn Fn(&Inputs<B>) -> SsdOutput<B>| {
        let i = Inputs {
            x: plain.x.clone().require_grad(),
            a: plain.a.clone().require_grad(),
            b: plain.b.clone().require_grad(),
            c: plain.c.clone().require_grad(),
            init: plain.init.clone().map(|t| t.require_grad()),
        };
        let grads = loss(run(&i), &wy, &ws).backward();
        let g4 = |t: &Tensor<B, 4>| t.grad(&grads).expect("grad");
        let init = i.init.as_ref().unwrap();
        (
            [g4(&i.x), g4(&i.b), g4(&i.c), g4(init)],
            i.a.grad(&grads).expect("grad a"),
        )
    };
    let (want4, want_a) = grads_of(&|i| reference(i));
    for chunk in [4, 5, 13] {
        let (got4, got_a) = grads_of(&|i| chunked(i, chunk));
        for (got, want) in got4.into_iter().zip(want4.iter().cloned()) {
            assert!(
                got.clone().abs().sum().into_scalar().elem::<f64>() > 0.0,
                "zero gradient"
            );
            assert_close(got, want, SSD_GRAD);
        }
        assert_close(got_a, want_a.clone(), SSD_GRAD);
    }
}

impl<B: Backend> Inputs<B> {
    fn y_shape(&self) -> [usize; 4] {
        self.x.dims()
    }
}

autodiff_backend_tests!(gradients_match_recurrence);
