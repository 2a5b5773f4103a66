//! The discrete tokenizers (VQ, FSQ, LFQ) against lucidrains' vector-quantize-pytorch
//! (`VectorQuantize` with a gradient-trained and with an EMA codebook, `FSQ`, `LFQ`; run by
//! `golden/gen_vae_tokenizer.py`, whose header lists how each is configured), plus
//! straight-through gradients, index ↔ code round trips, nearest-neighbour search against a
//! brute-force host computation, and config errors.
//!
//! The library has no separate codebook loss for a gradient-trained codebook (one symmetric
//! `commitment_weight·mse(q, x)`); eq. 3's two terms are read from two runs with weights `β` and 1.
//! FSQ's `bounded` (before rounding) is not returned by the library and is read from its `bound`
//! with the rounding replaced by the identity.

use burn::module::Param;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use vidgen_testing::{
    Golden, Tolerance, assert_close, autodiff_backend_tests, backend_tests, golden,
};
use vidgen_vae::ConfigError;
use vidgen_vae::VaeError;
use vidgen_vae::tokenizer::*;

/// Losses and gradients are means over a few dozen f32 products; both sides accumulate in a
/// different order.
const LOSS_F32: Tolerance = Tolerance::new("LOSS_F32", 1e-5, 1e-4);
/// LFQ's soft assignment at `inv_temperature = 100` has logits of a few hundred: one f32 ulp of
/// a logit (≈3e-5) moves the tiny probabilities by that much relative, which the entropies and
/// their gradients inherit.
const LFQ_ENTROPY: Tolerance = Tolerance::new("LFQ_ENTROPY", 1e-4, 1e-3);

/// 25 EMA steps in f32 against f64: each step adds a few ulps to the running averages.
const EMA_LOOP: Tolerance = Tolerance::new("EMA_LOOP", 1e-5, 1e-4);

fn ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap()
}

fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

fn assert_same_ints<B: Backend, const D: usize>(
    got: Tensor<B, D, Int>,
    want: Tensor<B, D, Int>,
    what: &str,
) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    assert_eq!(ints(got), ints(want), "{what}");
}

fn arange_column<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::<B, 1, Int>::arange(0..n as i64, device).reshape([n, 1])
}

// ------------------------------------------------------------------------------------------ VQ

fn vq_from_golden<B: Backend>(g: &Golden, ema: bool, device: &B::Device) -> VectorQuantizer<B> {
    let mut config = VectorQuantizerConfig::new(12, 4).with_beta(g.meta_f64("beta"));
    if ema {
        config = config.with_ema(Some(
            VqEmaConfig::new()
                .with_decay(g.meta_f64("decay"))
                .with_eps(g.meta_f64("eps")),
        ));
    }
    let mut vq = config.init::<B>(device).unwrap();
    vq.embedding = g.param("embedding", device);
    if ema {
        vq.embedding = vq.embedding.set_require_grad(false);
        vq.cluster_size = Some(Param::from_tensor(g.tensor("ema.cluster_size0", device)));
        vq.embed_avg = Some(Param::from_tensor(g.tensor("ema.embed_avg0", device)));
    }
    vq
}

/// Quantized values, indices and both losses of eq. 3 equal `VectorQuantize`'s.
fn vq_matches_golden<B: Backend>(device: &B::Device) {
    let g = golden("vae_tok_vq.safetensors");
    let vq = vq_from_golden::<B>(&g, false, device);
    let out = vq.forward(g.tensor::<B, 4>("z", device));
    assert_close(
        out.quantized,
        g.tensor("quantized", device),
        Tolerance::SINGLE_OP,
    );
    assert_same_ints(out.indices, g.int_tensor("indices", device), "indices");
    assert_close(
        out.codebook_loss,
        g.tensor("codebook_loss", device),
        LOSS_F32,
    );
    assert_close(
        out.commitment_loss,
        g.tensor("commitment_loss", device),
        LOSS_F32,
    );
}

/// Two EMA steps (the second on a new batch quantized with the updated codebook) reproduce
/// `VectorQuantize`'s (`EuclideanCodebook`'s) cluster sizes, embedding sums and codebook.
fn vq_ema_matches_golden<B: Backend>(device: &B::Device) {
    let g = golden("vae_tok_vq.safetensors");
    let mut vq = vq_from_golden::<B>(&g, true, device);
    let z: Tensor<B, 4> = g.tensor("z", device);
    let first = vq.forward(z.clone());
    assert_same_ints(
        first.indices.clone(),
        g.int_tensor("indices", device),
        "indices",
    );
    vq.ema_update(z, first.indices).unwrap();
    let check = |vq: &VectorQuantizer<B>, step: u32| {
        let cs = vq.cluster_size.as_ref().unwrap().val();
        let ea = vq.embed_avg.as_ref().unwrap().val();
        assert_close(
            cs,
            g.tensor(&format!("ema.cluster_size{step}"), device),
            LOSS_F32,
        );
        assert_close(
            ea,
            g.tensor(&format!("ema.embed_avg{step}"), device),
            LOSS_F32,
        );
        let e = vq.embedding.val();
        assert_close(
            e,
            g.tensor(&format!("ema.embedding{step}"), device),
            LOSS_F32,
        );
    };
    check(&vq, 1);
    let z2: Tensor<B, 3> = g.tensor("ema.z2", device);
    let second = vq.forward(z2.clone());
    assert_same_ints(
        second.indices.clone(),
        g.int_tensor("ema.indices2", device),
        "indices2",
    );
    vq.ema_update(z2, second.indices).unwrap();
    check(&vq, 2);
}

/// Repeated EMA updates from the default statistics of `init` (cluster sizes one) on a fixed batch
/// with well-separated clusters equal a host simulation in f64 of the VQ-VAE-2 recursion: used
/// codes converge to their cluster means, and the unused code decays towards zero once its
/// cluster size falls below `ε` (Laplace smoothing).
fn vq_ema_matches_host_simulation<B: Backend>(device: &B::Device) {
    let (decay, eps, steps) = (0.5, 1e-5, 25);
    let config = VectorQuantizerConfig::new(3, 2)
        .with_ema(Some(VqEmaConfig::new().with_decay(decay).with_eps(eps)));
    let mut vq = config.init::<B>(device).unwrap();
    let start = [[-1.0, -1.0], [1.0, 1.0], [5.0, 5.0]];
    let e = Tensor::<B, 2>::from_floats(start, device);
    vq.embedding = Param::from_tensor(e.clone()).set_require_grad(false);
    vq.embed_avg = Some(Param::from_tensor(e).set_require_grad(false));
    let points = [
        [-1.2, -0.8],
        [-0.7, -1.1],
        [-1.4, -0.6],
        [0.9, 1.3],
        [1.2, 0.8],
    ];
    let z = Tensor::<B, 2>::from_floats(points, device);
    let (mut size, mut avg) = ([1.0f64; 3], start);
    let mut embedding = avg;
    for _ in 0..steps {
        let out = vq.forward(z.clone());
        assert_eq!(ints(out.indices.clone()), [0, 0, 0, 1, 1], "assignments");
        vq.ema_update(z.clone(), out.indices).unwrap();
        for (k, members) in [&points[..3], &points[3..], &[]].iter().enumerate() {
            size[k] = decay * size[k] + (1.0 - decay) * members.len() as f64;
            for (c, a) in avg[k].iter_mut().enumerate() {
                *a = decay * *a + (1.0 - decay) * members.iter().map(|p| p[c]).sum::<f64>();
            }
        }
        let n: f64 = size.iter().sum();
        for k in 0..3 {
            let smoothed = (size[k] + eps) / (n + 3.0 * eps) * n;
            embedding[k] = avg[k].map(|a| a / smoothed);
        }
    }
    let want = Tensor::<B, 2>::from_floats(embedding.map(|r| r.map(|v| v as f32)), device);
    assert_close(vq.embedding.val(), want, EMA_LOOP);
    let m0 = [-1.1, -2.5 / 3.0];
    assert!((embedding[0][0] - m0[0]).abs() < 1e-4 && (embedding[0][1] - m0[1]).abs() < 1e-4);
    assert!(
        embedding[2][0].abs() < 1.0,
        "unused code: {:?}",
        embedding[2]
    );
}

/// Squared distances on the host in f64.
fn host_distances(z: &[f64], e: &[f64], c: usize) -> Vec<Vec<f64>> {
    z.chunks(c)
        .map(|zi| {
            e.chunks(c)
                .map(|ej| zi.iter().zip(ej).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect()
        })
        .collect()
}

/// Both nearest-code searches pick a code at the brute-force minimum distance (within f32
/// rounding of the distances) for every row, on sizes that are not powers of two.
fn nearest_code_matches_brute_force<B: Backend>(device: &B::Device) {
    B::seed(device, 7);
    let (n, k, c) = (37, 11, 6);
    let z = Tensor::<B, 2>::random([n, c], Distribution::Normal(0.0, 1.0), device);
    let e = Tensor::<B, 2>::random([k, c], Distribution::Normal(0.0, 1.0), device);
    let dist = host_distances(&floats(z.clone()), &floats(e.clone()), c);
    let fast = ints(nearest_code_indices(z.clone(), e.clone()));
    let reference = ints(nearest_code_indices_reference(z, e));
    for (i, row) in dist.iter().enumerate() {
        let min = row.iter().cloned().fold(f64::INFINITY, f64::min);
        for (name, idx) in [("fast", &fast), ("reference", &reference)] {
            let got = row[idx[i] as usize];
            assert!(
                got <= min + 1e-4,
                "{name} row {i}: picked {} at {got}, min {min}",
                idx[i]
            );
        }
        let mut sorted = row.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted[1] - sorted[0] > 1e-3 {
            assert_eq!(
                fast[i], reference[i],
                "row {i}: fast and reference disagree"
            );
        }
    }
}

/// Every codebook row decodes to itself and quantizes to its own index.
fn vq_decode_round_trip<B: Backend>(device: &B::Device) {
    let vq = VectorQuantizerConfig::new(9, 3).init::<B>(device).unwrap();
    let idx = arange_column::<B>(9, device);
    let codes = vq.decode_indices(idx.clone());
    assert_close(codes.clone(), vq.embedding.val(), Tolerance::EXACT);
    assert_same_ints(vq.forward(codes).indices, idx, "round trip");
}

/// Gradients of `Σ w·quantized + codebook_loss + commitment_loss` with respect to `z` and the
/// codebook equal torch's; the quantized output alone has the identity gradient to `z`.
fn vq_gradients_match_golden<B: AutodiffBackend>(device: &B::Device) {
    let g = golden("vae_tok_vq.safetensors");
    let vq = vq_from_golden::<B>(&g, false, device);
    let w: Tensor<B, 4> = g.tensor("w", device);
    let z = g.tensor::<B, 4>("z", device).require_grad();
    let out = vq.forward(z.clone());
    let loss = (out.quantized.clone() * w.clone()).sum() + out.codebook_loss + out.commitment_loss;
    let grads = loss.backward();
    assert_close(
        z.grad(&grads).unwrap(),
        g.tensor("grad_z", device),
        LOSS_F32,
    );
    let ge = vq.embedding.val().grad(&grads).unwrap();
    assert_close(ge, g.tensor("grad_embedding", device), LOSS_F32);

    let z = g.tensor::<B, 4>("z", device).require_grad();
    let grads = (vq.forward(z.clone()).quantized * w.clone())
        .sum()
        .backward();
    assert_close(z.grad(&grads).unwrap(), w.inner(), Tolerance::EXACT);
}

/// With EMA the codebook receives no gradient from any loss.
fn vq_ema_codebook_gets_no_gradient<B: AutodiffBackend>(device: &B::Device) {
    let g = golden("vae_tok_vq.safetensors");
    let vq = vq_from_golden::<B>(&g, true, device);
    let z = g.tensor::<B, 4>("z", device).require_grad();
    let out = vq.forward(z.clone());
    let grads = (out.quantized.sum() + out.codebook_loss + out.commitment_loss).backward();
    assert!(vq.embedding.val().grad(&grads).is_none());
    assert!(z.grad(&grads).is_some());
}

// ----------------------------------------------------------------------------------------- FSQ

fn fsq_case(g: &Golden, key: &str) -> Fsq {
    let levels = g.meta(&format!("{key}.levels")).unwrap();
    let levels = levels.split(',').map(|l| l.parse().unwrap()).collect();
    FsqConfig::new(levels)
        .with_eps(g.meta_f64("eps"))
        .init()
        .unwrap()
}

/// Bound, quantized codes, indices and the whole implicit codebook equal the reference, for
/// levels with odd and even `L` ([3, 4, 5] and the paper's [8, 5, 5, 5]).
fn fsq_matches_golden<B: Backend>(device: &B::Device) {
    let g = golden("vae_tok_fsq.safetensors");
    for key in ["a", "b"] {
        let fsq = fsq_case(&g, key);
        let z: Tensor<B, 3> = g.tensor(&format!("{key}.z"), device);
        let bounded = fsq.bound(z.clone());
        assert_close(
            bounded,
            g.tensor(&format!("{key}.bounded"), device),
            Tolerance::SINGLE_OP,
        );
        let (codes, indices) = fsq.forward(z);
        assert_close(
            codes,
            g.tensor(&format!("{key}.quantized"), device),
            Tolerance::SINGLE_OP,
        );
        assert_same_ints(
            indices,
            g.int_tensor(&format!("{key}.indices"), device),
            key,
        );
        let all = fsq.indices_to_codes(arange_column::<B>(fsq.codebook_size(), device));
        let want: Tensor<B, 2> = g.tensor(&format!("{key}.all_codes"), device);
        assert_close(all, want, Tolerance::SINGLE_OP);
    }
}

/// Every index of small codebooks maps to a distinct code on the grid and back to itself.
fn fsq_round_trip_all_indices<B: Backend>(device: &B::Device) {
    for levels in [vec![2, 3, 4], vec![5], vec![7, 2, 6]] {
        let fsq = FsqConfig::new(levels.clone()).init().unwrap();
        let size: usize = levels.iter().product();
        assert_eq!(fsq.codebook_size(), size);
        let idx = arange_column::<B>(size, device);
        let codes = fsq.indices_to_codes(idx.clone());
        let host = floats(codes.clone());
        let mut rows: Vec<Vec<i64>> = host
            .chunks(levels.len())
            .map(|row| {
                row.iter()
                    .zip(&levels)
                    .map(|(&v, &l)| {
                        assert!((-1.0..=1.0).contains(&v), "{levels:?}: code {v}");
                        let digit = v * (l / 2) as f64 + (l / 2) as f64;
                        assert!(
                            (digit - digit.round()).abs() < 1e-5,
                            "{levels:?}: off grid {v}"
                        );
                        digit.round() as i64
                    })
                    .collect()
            })
            .collect();
        rows.sort();
        rows.dedup();
        assert_eq!(rows.len(), size, "{levels:?}: codes are not distinct");
        assert_same_ints(fsq.codes_to_indices(codes), idx, "fsq round trip");
    }
}

/// Quantizing the codes' pre-images gives the same codes: `quantize` lands on the grid of
/// `indices_to_codes` for random inputs, including large ones that saturate the bound.
fn fsq_quantize_lands_on_codebook<B: Backend>(device: &B::Device) {
    B::seed(device, 3);
    let fsq = FsqConfig::new(vec![4, 3, 6]).init().unwrap();
    let z = Tensor::<B, 3>::random([2, 9, 3], Distribution::Normal(0.0, 4.0), device);
    let (codes, idx) = fsq.forward(z);
    let back = fsq.indices_to_codes(idx);
    assert_close(back, codes, Tolerance::SINGLE_OP);
}

/// The gradient of `Σ w·quantize(z)` is that of `Σ w·bound(z)/⌊L/2⌋`: torch's and the host's
/// `w·h·(1 − tanh²(z + s))/⌊L/2⌋`.
fn fsq_gradient_is_straight_through<B: AutodiffBackend>(device: &B::Device) {
    let g = golden("vae_tok_fsq.safetensors");
    for key in ["a", "b"] {
        let fsq = fsq_case(&g, key);
        let w: Tensor<B, 3> = g.tensor(&format!("{key}.w"), device);
        let z = g.tensor::<B, 3>(&format!("{key}.z"), device).require_grad();
        let grads = (fsq.quantize(z.clone()) * w.clone()).sum().backward();
        let got = z.grad(&grads).unwrap();
        assert_close(
            got.clone(),
            g.tensor(&format!("{key}.grad_z"), device),
            LOSS_F32,
        );
        let c = fsq.code_dim();
        let host: Vec<f64> = floats(z.inner())
            .iter()
            .zip(floats(w.inner()))
            .enumerate()
            .map(|(i, (&zi, wi))| {
                let l = fsq.levels()[i % c];
                let h = (l - 1) as f64 * (1.0 + 1e-3) / 2.0;
                let o = if l.is_multiple_of(2) { 0.5 } else { 0.0 };
                let t = (zi + (o / h).atanh()).tanh();
                wi * h * (1.0 - t * t) / (l / 2) as f64
            })
            .collect();
        let want = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(host.iter().map(|&v| v as f32).collect(), [host.len()]),
            device,
        );
        assert_close(got.reshape([host.len()]), want, Tolerance::SINGLE_OP);
    }
}

// ----------------------------------------------------------------------------------------- LFQ

fn lfq_case(g: &Golden, key: &str) -> Lfq {
    let m = |k: &str| g.meta_f64(&format!("{key}.{k}"));
    LfqConfig::new(m("d") as usize)
        .with_entropy_weight(m("entropy_weight"))
        .with_commitment_weight(m("commitment_weight"))
        .with_diversity_gamma(m("gamma"))
        .with_inv_temperature(m("inv_temperature"))
        .with_codebook_scale(m("scale"))
        .init()
        .unwrap()
}

/// Quantized values, indices, both entropies and both weighted losses equal `LFQ`'s at the
/// library's defaults (`a`) and at a soft temperature with a scaled codebook (`b`).
fn lfq_matches_golden<B: Backend>(device: &B::Device) {
    let g = golden("vae_tok_lfq.safetensors");
    for key in ["a", "b"] {
        let lfq = lfq_case(&g, key);
        let t = |name: &str| g.tensor::<B, 1>(&format!("{key}.{name}"), device);
        let out = lfq.forward(g.tensor::<B, 3>(&format!("{key}.x"), device));
        let want_q: Tensor<B, 3> = g.tensor(&format!("{key}.quantized"), device);
        assert_close(out.quantized, want_q, Tolerance::SINGLE_OP);
        assert_same_ints(
            out.indices,
            g.int_tensor(&format!("{key}.indices"), device),
            key,
        );
        assert_close(out.per_sample_entropy, t("per_sample_entropy"), LFQ_ENTROPY);
        assert_close(out.codebook_entropy, t("codebook_entropy"), LFQ_ENTROPY);
        assert_close(out.entropy_loss, t("entropy_loss"), LFQ_ENTROPY);
        assert_close(out.commitment_loss, t("commitment_loss"), LOSS_F32);
    }
}

/// Every index maps to ±scale codes whose sign quantization gives the index back, with channel 0
/// as the most significant bit.
fn lfq_round_trip_all_indices<B: Backend>(device: &B::Device) {
    let lfq = LfqConfig::new(6).with_codebook_scale(0.5).init().unwrap();
    let idx = arange_column::<B>(64, device);
    let codes = lfq.indices_to_codes(idx.clone());
    for (i, row) in floats(codes.clone()).chunks(6).enumerate() {
        for (bit, &v) in row.iter().enumerate() {
            let on = (i >> (5 - bit)) & 1 == 1;
            assert_eq!(v, if on { 0.5 } else { -0.5 }, "index {i} bit {bit}");
        }
    }
    assert_same_ints(lfq.forward(codes).indices, idx, "lfq round trip");
    assert_close(
        lfq.codebook::<B>(device),
        lfq.indices_to_codes(arange_column::<B>(64, device)),
        Tolerance::EXACT,
    );
}

/// Gradients of `Σ w·quantized + aux_loss` equal torch's, and the quantized output alone has the
/// identity gradient.
fn lfq_gradients_match_golden<B: AutodiffBackend>(device: &B::Device) {
    let g = golden("vae_tok_lfq.safetensors");
    for key in ["a", "b"] {
        let lfq = lfq_case(&g, key);
        let w: Tensor<B, 3> = g.tensor(&format!("{key}.w"), device);
        let x = g.tensor::<B, 3>(&format!("{key}.x"), device).require_grad();
        let out = lfq.forward(x.clone());
        let grads = ((out.quantized.clone() * w.clone()).sum() + out.aux_loss()).backward();
        let want: Tensor<B::InnerBackend, 3> = g.tensor(&format!("{key}.grad_x"), device);
        assert_close(x.grad(&grads).unwrap(), want, LFQ_ENTROPY);

        let x = g.tensor::<B, 3>(&format!("{key}.x"), device).require_grad();
        let grads = (lfq.forward(x.clone()).quantized * w.clone())
            .sum()
            .backward();
        assert_close(x.grad(&grads).unwrap(), w.inner(), Tolerance::EXACT);
    }
}

// -------------------------------------------------------------------------------------- errors

/// The field an error names, and the kind of error.
fn field_of(err: &VaeError) -> (&'static str, &'static str) {
    match err {
        VaeError::Config(ConfigError::Zero { field }) => (field, "Zero"),
        VaeError::Config(ConfigError::OutOfDomain { field, .. }) => (field, "OutOfDomain"),
        VaeError::Config(ConfigError::Unsupported { field, .. }) => (field, "Unsupported"),
        other => panic!("unexpected error {other:?}"),
    }
}

/// Invalid configurations fail at `init`, naming the field; `ema_update` without EMA is refused.
#[test]
fn config_errors_name_the_field() {
    type B = vidgen_testing::Flex;
    let device = Default::default();
    let vq = |c: VectorQuantizerConfig| field_of(&c.init::<B>(&device).unwrap_err());
    let with_ema = |ema: VqEmaConfig| VectorQuantizerConfig::new(4, 2).with_ema(Some(ema));
    assert_eq!(vq(VectorQuantizerConfig::new(0, 4)), ("n_codes", "Zero"));
    assert_eq!(vq(VectorQuantizerConfig::new(4, 0)), ("code_dim", "Zero"));
    let beta = VectorQuantizerConfig::new(4, 2).with_beta(-0.5);
    assert_eq!(vq(beta), ("beta", "OutOfDomain"));
    for decay in [0.0, 1.0, 1.5, f64::NAN] {
        let config = with_ema(VqEmaConfig::new().with_decay(decay));
        assert_eq!(vq(config), ("ema.decay", "OutOfDomain"), "decay {decay}");
    }
    let eps = with_ema(VqEmaConfig::new().with_eps(0.0));
    assert_eq!(vq(eps), ("ema.eps", "OutOfDomain"));
    let mut plain = VectorQuantizerConfig::new(4, 2).init::<B>(&device).unwrap();
    let z = Tensor::<B, 2>::zeros([3, 2], &device);
    let err = plain
        .ema_update(z, Tensor::zeros([3, 1], &device))
        .unwrap_err();
    assert_eq!(field_of(&err), ("ema", "Unsupported"));

    let fsq = |c: FsqConfig| c.init().unwrap_err();
    assert_eq!(field_of(&fsq(FsqConfig::new(vec![]))), ("levels", "Zero"));
    let err = fsq(FsqConfig::new(vec![3, 1, 4]));
    assert!(
        matches!(err, VaeError::Config(ConfigError::OutOfDomain { field: "levels", value, .. }) if value == 1.0)
    );
    let eps = FsqConfig::new(vec![5]).with_eps(-1.0);
    assert_eq!(field_of(&fsq(eps)), ("eps", "OutOfDomain"));
    let err = fsq(FsqConfig::new(vec![1 << 16, 1 << 16]));
    assert_eq!(field_of(&err), ("levels", "Unsupported"));
    assert!(err.to_string().contains("levels"), "{err}");

    let lfq = |c: LfqConfig| c.init().unwrap_err();
    assert_eq!(field_of(&lfq(LfqConfig::new(0))), ("code_dim", "Zero"));
    let err = lfq(LfqConfig::new(31));
    assert!(
        matches!(&err, VaeError::Config(ConfigError::Unsupported { field: "code_dim", value, .. }) if value == "31")
    );
    assert!(LfqConfig::new(30).init().is_ok());
    let bad = [
        (
            "entropy_weight",
            LfqConfig::new(4).with_entropy_weight(-1.0),
        ),
        (
            "commitment_weight",
            LfqConfig::new(4).with_commitment_weight(-1.0),
        ),
        (
            "diversity_gamma",
            LfqConfig::new(4).with_diversity_gamma(f64::NAN),
        ),
        (
            "inv_temperature",
            LfqConfig::new(4).with_inv_temperature(0.0),
        ),
        (
            "codebook_scale",
            LfqConfig::new(4).with_codebook_scale(-2.0),
        ),
    ];
    for (name, config) in bad {
        assert_eq!(field_of(&lfq(config)), (name, "OutOfDomain"));
    }
}

/// A wrong channel count panics with the shape in the message.
#[test]
#[should_panic(expected = "expected the last axis to have 4 channels")]
fn wrong_channel_count_panics() {
    type B = vidgen_testing::Flex;
    let vq = VectorQuantizerConfig::new(8, 4)
        .init::<B>(&Default::default())
        .unwrap();
    vq.forward(Tensor::<B, 2>::zeros([3, 5], &Default::default()));
}

backend_tests!(
    vq_matches_golden,
    vq_ema_matches_golden,
    vq_ema_matches_host_simulation,
    nearest_code_matches_brute_force,
    vq_decode_round_trip,
    fsq_matches_golden,
    fsq_round_trip_all_indices,
    fsq_quantize_lands_on_codebook,
    lfq_matches_golden,
    lfq_round_trip_all_indices,
);

autodiff_backend_tests!(
    vq_gradients_match_golden,
    vq_ema_codebook_gets_no_gradient,
    fsq_gradient_is_straight_through,
    lfq_gradients_match_golden,
);
