"""Golden fixtures for vidgen-vae's discrete tokenizers (`crates/vidgen-vae/src/tokenizer*`), from
lucidrains' vector-quantize-pytorch (pinned in requirements.txt), run in training mode on CPU:

* VQ: `VectorQuantize` with one head, no projections, `rotation_trick=False` (plain
  straight-through `x + (q - x).detach()`), `threshold_ema_dead_code=0` (no dead-code restarts).
  - Gradient-trained codebook (`learnable_codebook=True, ema_update=False`): the library has one
    loss, `commitment_weight * mse(q, x)` with no stop-gradient on either side, where VQ-VAE's
    eq. 3 has `mse(q, sg[x]) + beta * mse(x, sg[q])`. Both terms are the same mean squared error in
    value, so: `commitment_loss` and `grad_z` come from a run with `commitment_weight = beta`
    (the codebook term sends nothing to `z`), `codebook_loss` and `grad_embedding` from a run with
    `commitment_weight = 1` (the straight-through output sends nothing to the codebook).
  - EMA (`ema_update=True`): `Codebook` updates `cluster_size` / `embed_avg` by `lerp` and sets
    `embed = embed_avg / laplace_smoothing(cluster_size) * sum(cluster_size)` inside `forward`
    (with the assignments made by the codebook before the update), which is one `forward` +
    `ema_update` of ours. The library starts `cluster_size` at ones and `embed_avg` at the codebook
    as ours does; the fixture loads other statistics into both buffers first. Two steps.
  - Nearest code: the library takes `argmax(-cdist)` (`sqrt(clamp(d^2, 1e-8))`), ours `argmin(d^2)`;
    the generator refuses inputs with near ties, where the two could pick different codes.
* FSQ: `FSQ(levels)` (bound margin `eps = 1e-3`, the library's fixed default). Its `bound` method
  returns the rounded, rescaled code; `bounded` (before rounding) is read from the same method with
  `round_ste` replaced by the identity and multiplied back by `L // 2` (a power of two for the
  levels used, so exact). Indices: the library rounds before the integer cast, as ours does.
* LFQ: `LFQ(dim=d)` without projections, `forward(x, inv_temperature, return_loss_breakdown=True)`:
  per-sample entropy, codebook entropy (`entropy` clamps probabilities at 1e-5) and the unweighted
  commitment from the breakdown; `entropy_loss` is the library's `aux_loss` with
  `commitment_loss_weight = 0`, `commitment_loss` its `aux_loss` with `entropy_loss_weight = 0`,
  and `grad_x` the gradient of `sum(w * quantized) + aux_loss` with both weights on.

No stand-ins beyond the `round_ste` replacement above. Indices are stored with a trailing axis of
size 1 (`[.., 1]`), as the Rust tokenizers return them.

Run: python golden/gen_vae_tokenizer.py   (writes golden/fixtures/vae_tok_*.safetensors)
"""

from __future__ import annotations

from unittest import mock

import torch
import vector_quantize_pytorch.finite_scalar_quantization as fsq_module
from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

from common import save, seed_everything

GEN = "golden/gen_vae_tokenizer.py"


# ----------------------------------------------------------------------------------------- VQ
def check_gap(z: torch.Tensor, embed: torch.Tensor, min_gap: float = 1e-3) -> None:
    """Refuses inputs whose nearest and second-nearest codes are nearly tied (f32 could flip)."""
    flat = z.reshape(-1, embed.shape[1]).double()
    dist = torch.cdist(flat, embed.double()).pow(2)
    top2 = dist.topk(2, largest=False).values
    gap = (top2[:, 1] - top2[:, 0]).min().item()
    assert gap > min_gap, f"near tie in nearest-code search: gap {gap}"


def vq_module(k: int, d: int, embed: torch.Tensor, **kw) -> VectorQuantize:
    vq = VectorQuantize(dim=d, codebook_size=k, rotation_trick=False, threshold_ema_dead_code=0, **kw)
    with torch.no_grad():
        vq._codebook.embed.copy_(embed[None])
    return vq.train()


def vq_learnable(z, w, embed, weight):
    """(quantized, indices, loss, grad_z, grad_embedding) of the gradient-trained codebook."""
    k, d = embed.shape
    vq = vq_module(k, d, embed, commitment_weight=weight, learnable_codebook=True, ema_update=False)
    zz = z.reshape(z.shape[0], -1, d).clone().requires_grad_(True)
    quantized, idx, loss = vq(zz)
    ((quantized * w.reshape(zz.shape)).sum() + loss).backward()
    grad_e = vq._codebook.embed.grad[0]
    return quantized.reshape(z.shape), idx.reshape(*z.shape[:-1], 1), loss, zz.grad.reshape(z.shape), grad_e


def vq() -> None:
    seed = 11
    g = seed_everything(seed)
    k, d, beta, decay, eps = 12, 4, 0.25, 0.9, 1e-5
    embed = torch.randn(k, d, generator=g)
    z = torch.randn(2, 3, 5, d, generator=g)
    z2 = torch.randn(3, 7, d, generator=g)
    w = torch.randn(2, 3, 5, d, generator=g)
    check_gap(z, embed)

    quantized, idx, commitment_loss, grad_z, _ = vq_learnable(z, w, embed, beta)
    quantized_b, idx_b, codebook_loss, _, grad_embedding = vq_learnable(z, w, embed, 1.0)
    assert torch.equal(idx, idx_b) and torch.equal(quantized, quantized_b)

    # EMA: start from non-trivial statistics, two steps (the second with the updated codebook).
    cluster_size = torch.rand(k, generator=g) * 3
    embed_avg = embed * cluster_size[:, None]
    ema = vq_module(k, d, embed, commitment_weight=beta, decay=decay, eps=eps)
    book = ema._codebook
    with torch.no_grad():
        book.cluster_size.copy_(cluster_size[None])
        book.embed_avg.copy_(embed_avg[None])
    _, idx1, _ = ema(z.reshape(2, -1, d))
    assert torch.equal(idx1.reshape(idx.shape), idx)
    e1, cs1, ea1 = (t[0].clone() for t in (book.embed, book.cluster_size, book.embed_avg))
    check_gap(z2, e1)
    _, idx2, _ = ema(z2)
    e2, cs2, ea2 = (t[0].clone() for t in (book.embed, book.cluster_size, book.embed_avg))

    tensors = {
        "embedding": embed, "z": z, "w": w, "quantized": quantized, "indices": idx.long(),
        "codebook_loss": codebook_loss.reshape(1), "commitment_loss": commitment_loss.reshape(1),
        "grad_z": grad_z, "grad_embedding": grad_embedding,
        "ema.cluster_size0": cluster_size, "ema.embed_avg0": embed_avg,
        "ema.embedding1": e1, "ema.cluster_size1": cs1, "ema.embed_avg1": ea1,
        "ema.z2": z2, "ema.indices2": idx2[..., None].long(),
        "ema.embedding2": e2, "ema.cluster_size2": cs2, "ema.embed_avg2": ea2,
    }
    save("vae_tok_vq", tensors, GEN, seed, n_codes=k, code_dim=d, beta=beta, decay=decay, eps=eps)


# ---------------------------------------------------------------------------------------- FSQ
def fsq_bounded(f: FSQ, z: torch.Tensor) -> torch.Tensor:
    """The library's `bound` before its rounding step (see the header)."""
    half_width = f._levels // 2
    assert bool(((half_width & (half_width - 1)) == 0).all()), "L // 2 must be a power of two"
    with mock.patch.object(fsq_module, "round_ste", lambda t: t):
        return f.bound(z) * half_width


def fsq() -> None:
    seed = 12
    g = seed_everything(seed)
    tensors = {}
    params = {}
    for key, levels, shape in (("a", [3, 4, 5], (2, 7)), ("b", [8, 5, 5, 5], (3, 4))):
        f = FSQ(levels)
        z = (torch.randn(*shape, len(levels), generator=g) * 1.5).requires_grad_(True)
        w = torch.randn(*shape, len(levels), generator=g)
        q, idx = f(z)
        (q * w).sum().backward()
        size = int(f.codebook_size)
        tensors.update({
            f"{key}.z": z, f"{key}.w": w, f"{key}.bounded": fsq_bounded(f, z), f"{key}.quantized": q,
            f"{key}.indices": idx[..., None].long(), f"{key}.grad_z": z.grad,
            f"{key}.all_codes": f.indices_to_codes(torch.arange(size)),
        })
        params[f"{key}.levels"] = ",".join(map(str, levels))
    save("vae_tok_fsq", tensors, GEN, seed, eps=1e-3, **params)


# ---------------------------------------------------------------------------------------- LFQ
def lfq_run(x, w, d, entropy_weight, commitment_weight, gamma, inv_temperature, scale):
    lfq = LFQ(
        dim=d, entropy_loss_weight=entropy_weight, commitment_loss_weight=commitment_weight,
        diversity_gamma=gamma, codebook_scale=scale,
    ).train()
    xx = x.clone().requires_grad_(True)
    (quantized, idx, aux), breakdown = lfq(xx, inv_temperature=inv_temperature, return_loss_breakdown=True)
    ((quantized * w).sum() + aux).backward()
    return quantized, idx, aux, breakdown, xx.grad


def lfq() -> None:
    seed = 13
    g = seed_everything(seed)
    tensors = {}
    params = {}
    cases = {
        # the library's defaults (inv_temperature 100, entropy weight 0.1, gamma 1) with the
        # commitment weight 0.25 of ours
        "a": dict(d=5, entropy_weight=0.1, commitment_weight=0.25, gamma=1.0, inv_temperature=100.0, scale=1.0),
        # soft probabilities, scaled codebook, other weights
        "b": dict(d=4, entropy_weight=0.3, commitment_weight=0.5, gamma=0.7, inv_temperature=1.5, scale=0.5),
    }
    for key, kw in cases.items():
        x = torch.randn(2, 6, kw["d"], generator=g) * 0.6
        w = torch.randn(2, 6, kw["d"], generator=g)
        quantized, idx, aux, parts, grad_x = lfq_run(x, w, **kw)
        entropy_loss = lfq_run(x, w, **{**kw, "commitment_weight": 0.0})[2]
        commitment_loss = lfq_run(x, w, **{**kw, "entropy_weight": 0.0})[2]
        assert torch.allclose(entropy_loss + commitment_loss, aux, rtol=1e-6, atol=1e-7)
        tensors.update({
            f"{key}.x": x, f"{key}.w": w, f"{key}.quantized": quantized, f"{key}.indices": idx[..., None].long(),
            f"{key}.entropy_loss": entropy_loss.reshape(1), f"{key}.commitment_loss": commitment_loss.reshape(1),
            f"{key}.per_sample_entropy": parts.per_sample_entropy.reshape(1),
            f"{key}.codebook_entropy": parts.batch_entropy.reshape(1), f"{key}.grad_x": grad_x,
        })
        params.update({f"{key}.{k}": v for k, v in kw.items()})
    save("vae_tok_lfq", tensors, GEN, seed, **params)


if __name__ == "__main__":
    vq()
    fsq()
    lfq()
