"""Golden fixtures for vidgen-vae's discrete tokenizers (`crates/vidgen-vae/src/tokenizer*`).

The vector-quantize-pytorch package is not installed here, so the references below are small torch
modules written after the papers and the well-known public implementations:

* VQ (van den Oord et al. 2017, eqs. 1-3): nearest codebook row by squared L2 distance written as
  ||z||^2 - 2 z.e + ||e||^2 (taming-transformers' `VectorQuantizer`), straight-through
  `z + (z_q - z).detach()`, codebook loss mean((z_q - sg[z])^2), commitment loss
  beta * mean((z - sg[z_q])^2). EMA update as in VQ-VAE-2 (Razavi et al. 2019, appendix) in the
  form of lucidrains' `EuclideanCodebook`: N <- decay N + (1-decay) n, m <- decay m + (1-decay) sum z,
  Laplace smoothing N' = (N + eps) / (sum N + K eps) * sum N, e = m / N'. No zero-debiasing.
* FSQ (Mentzer et al. 2023, appendix A.1) as in lucidrains' `FSQ`: half_l = (L-1)(1+eps)/2,
  offset = 0.5 for even L, shift = atanh(offset / half_l), bound = tanh(z + shift) half_l - offset,
  round with straight-through, divide by L//2; indices in mixed radix with basis
  cumprod([1] + L[:-1]) (first channel least significant). Indices are rounded before the integer
  cast (lucidrains truncates; equal for exact codes).
* LFQ (Yu et al. 2023, MAGVIT-v2 sec. 3.1) as in lucidrains' `LFQ` (one codebook, no projections,
  training mode): q = +-codebook_scale by sign (x > 0 -> +), straight-through, index bits MSB first
  (channel 0 is bit d-1); prob = softmax(2 inv_temperature x.c) over all 2^d codes; entropy
  H(p) = -sum p log(max(p, 1e-5)); entropy loss = mean_n H(p_n) - gamma H(mean_n p_n); commitment
  = mean((x - sg[q])^2); aux = entropy_weight * entropy + commitment_weight * commitment.

Run: python golden/gen_vae_tokenizer.py   (writes golden/fixtures/vae_tok_*.safetensors)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common import save, seed_everything

GEN = "golden/gen_vae_tokenizer.py"


# ----------------------------------------------------------------------------------------- VQ
def vq_forward(z: torch.Tensor, embed: torch.Tensor, beta: float):
    d = embed.shape[1]
    flat = z.reshape(-1, d)
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None]
    idx = dist.argmin(1)
    zq = embed[idx].view_as(z)
    codebook_loss = F.mse_loss(zq, z.detach())
    commitment_loss = beta * F.mse_loss(z, zq.detach())
    quantized = z + (zq - z).detach()
    return quantized, idx.view(*z.shape[:-1], 1), codebook_loss, commitment_loss


def check_gap(z: torch.Tensor, embed: torch.Tensor, min_gap: float = 1e-3) -> None:
    """Refuses inputs whose nearest and second-nearest codes are nearly tied (f32 could flip)."""
    flat = z.reshape(-1, embed.shape[1]).double()
    dist = torch.cdist(flat, embed.double()).pow(2)
    top2 = dist.topk(2, largest=False).values
    gap = (top2[:, 1] - top2[:, 0]).min().item()
    assert gap > min_gap, f"near tie in nearest-code search: gap {gap}"


def vq_ema_step(z, idx, embed, cluster_size, embed_avg, decay, eps):
    k, d = embed.shape
    flat = z.reshape(-1, d)
    onehot = F.one_hot(idx.reshape(-1), k).to(flat.dtype)
    cluster_size = cluster_size.lerp(onehot.sum(0), 1 - decay)
    embed_avg = embed_avg.lerp(onehot.t() @ flat, 1 - decay)
    n = cluster_size.sum()
    smoothed = (cluster_size + eps) / (n + k * eps) * n
    return embed_avg / smoothed[:, None], cluster_size, embed_avg


def vq() -> None:
    seed = 11
    g = seed_everything(seed)
    k, d, beta, decay, eps = 12, 4, 0.25, 0.9, 1e-5
    embed = torch.randn(k, d, generator=g)
    z = torch.randn(2, 3, 5, d, generator=g)
    z2 = torch.randn(3, 7, d, generator=g)
    w = torch.randn(2, 3, 5, d, generator=g)
    check_gap(z, embed)

    zz = z.clone().requires_grad_(True)
    ee = embed.clone().requires_grad_(True)
    quantized, idx, codebook_loss, commitment_loss = vq_forward(zz, ee, beta)
    ((quantized * w).sum() + codebook_loss + commitment_loss).backward()

    # EMA: start from non-trivial statistics, two steps (the second with the updated codebook).
    cluster_size = torch.rand(k, generator=g) * 3
    embed_avg = embed * cluster_size[:, None]
    e1, cs1, ea1 = vq_ema_step(z, idx, embed, cluster_size, embed_avg, decay, eps)
    check_gap(z2, e1)
    _, idx2, _, _ = vq_forward(z2, e1, beta)
    e2, cs2, ea2 = vq_ema_step(z2, idx2, e1, cs1, ea1, decay, eps)

    tensors = {
        "embedding": embed, "z": z, "w": w, "quantized": quantized, "indices": idx,
        "codebook_loss": codebook_loss.reshape(1), "commitment_loss": commitment_loss.reshape(1),
        "grad_z": zz.grad, "grad_embedding": ee.grad,
        "ema.cluster_size0": cluster_size, "ema.embed_avg0": embed_avg,
        "ema.embedding1": e1, "ema.cluster_size1": cs1, "ema.embed_avg1": ea1,
        "ema.z2": z2, "ema.indices2": idx2,
        "ema.embedding2": e2, "ema.cluster_size2": cs2, "ema.embed_avg2": ea2,
    }
    save("vae_tok_vq", tensors, GEN, seed, n_codes=k, code_dim=d, beta=beta, decay=decay, eps=eps)


# ---------------------------------------------------------------------------------------- FSQ
class Fsq:
    def __init__(self, levels: list[int], eps: float = 1e-3):
        self.levels = torch.tensor(levels)
        self.basis = torch.cumprod(torch.tensor([1] + levels[:-1]), 0)
        self.eps = eps

    def bound(self, z):
        half_l = (self.levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def quantize(self, z):
        b = self.bound(z)
        return (b + (b.round() - b).detach()) / (self.levels // 2)

    def codes_to_indices(self, codes):
        hw = self.levels // 2
        return ((codes * hw + hw) * self.basis).sum(-1, keepdim=True).round().long()

    def indices_to_codes(self, idx):
        hw = self.levels // 2
        digits = (idx // self.basis) % self.levels
        return (digits - hw) / hw


def fsq() -> None:
    seed = 12
    g = seed_everything(seed)
    tensors = {}
    params = {}
    for key, levels, shape in (("a", [3, 4, 5], (2, 7)), ("b", [8, 5, 5, 5], (3, 4))):
        f = Fsq(levels)
        z = (torch.randn(*shape, len(levels), generator=g) * 1.5).requires_grad_(True)
        w = torch.randn(*shape, len(levels), generator=g)
        q = f.quantize(z)
        (q * w).sum().backward()
        size = int(torch.prod(f.levels))
        all_idx = torch.arange(size)[:, None]
        tensors.update({
            f"{key}.z": z, f"{key}.w": w, f"{key}.bounded": f.bound(z), f"{key}.quantized": q,
            f"{key}.indices": f.codes_to_indices(q), f"{key}.grad_z": z.grad,
            f"{key}.all_codes": f.indices_to_codes(all_idx),
        })
        params[f"{key}.levels"] = ",".join(map(str, levels))
    save("vae_tok_fsq", tensors, GEN, seed, eps=1e-3, **params)


# ---------------------------------------------------------------------------------------- LFQ
def lfq_forward(x, d, entropy_weight, commitment_weight, gamma, inv_temperature, scale):
    mask = 2 ** torch.arange(d - 1, -1, -1)
    bits = ((torch.arange(2**d)[:, None] & mask) != 0).float()
    codebook = bits * 2 * scale - scale
    q = torch.where(x > 0, scale, -scale) * torch.ones_like(x)
    quantized = x + (q - x).detach()
    idx = ((quantized > 0).long() * mask).sum(-1, keepdim=True)
    prob = (2 * inv_temperature * x @ codebook.t()).softmax(-1).reshape(-1, 2**d)

    def entropy(p):
        return (-p * p.clamp(min=1e-5).log()).sum(-1)

    per_sample = entropy(prob).mean()
    codebook_entropy = entropy(prob.mean(0))
    entropy_loss = entropy_weight * (per_sample - gamma * codebook_entropy)
    commitment_loss = commitment_weight * F.mse_loss(x, q.detach())
    return quantized, idx, entropy_loss, commitment_loss, per_sample, codebook_entropy


def lfq() -> None:
    seed = 13
    g = seed_everything(seed)
    tensors = {}
    params = {}
    cases = {
        # lucidrains' defaults
        "a": dict(d=5, entropy_weight=0.1, commitment_weight=0.25, gamma=1.0, inv_temperature=100.0, scale=1.0),
        # soft probabilities, scaled codebook, other weights
        "b": dict(d=4, entropy_weight=0.3, commitment_weight=0.5, gamma=0.7, inv_temperature=1.5, scale=0.5),
    }
    for key, kw in cases.items():
        x = (torch.randn(2, 6, kw["d"], generator=g) * 0.6).requires_grad_(True)
        w = torch.randn(2, 6, kw["d"], generator=g)
        quantized, idx, ent, com, per_sample, cb = lfq_forward(x, **kw)
        ((quantized * w).sum() + ent + com).backward()
        tensors.update({
            f"{key}.x": x, f"{key}.w": w, f"{key}.quantized": quantized, f"{key}.indices": idx,
            f"{key}.entropy_loss": ent.reshape(1), f"{key}.commitment_loss": com.reshape(1),
            f"{key}.per_sample_entropy": per_sample.reshape(1),
            f"{key}.codebook_entropy": cb.reshape(1), f"{key}.grad_x": x.grad,
        })
        params.update({f"{key}.{k}": v for k, v in kw.items()})
    save("vae_tok_lfq", tensors, GEN, seed, **params)


if __name__ == "__main__":
    vq()
    fsq()
    lfq()
