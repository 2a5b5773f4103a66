"""Golden fixtures for vidgen-attention's full multi-head attention and STDiT spatial/temporal
attention, from small torch modules written the way Open-Sora 1.2 writes them
(`opensora/models/layers/blocks.py`: `Attention`, `MultiHeadCrossAttention`; `stdit3.py`: the
spatial / temporal rearranges and `RotaryEmbedding(head_dim).rotate_queries_or_keys`), with the
attention computed by `torch.nn.functional.scaled_dot_product_attention`.

- QK-norm is `torch.nn.RMSNorm(head_dim, eps=1e-6)` per head (Open-Sora's `LlamaRMSNorm` computes
  the same), with random weights so the scale is exercised; order: norm, then RoPE.
- Temporal / 1D RoPE is interleaved as in `rotary_embedding_torch` (not installed here; the few
  lines it runs for `rotate_queries_or_keys` are written out below).
- Open-Sora's cross-attention packs the text tokens of a batch and uses xformers'
  `BlockDiagonalMask.from_seqlens`; here the padded batch with a bool key-padding mask is used and
  checked against a per-sample (packed-equivalent) computation before saving.

Run: python golden/gen_attention_full.py   (writes golden/fixtures/attn_full_*.safetensors)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from common import linear_state, save, seed_everything

GEN = "golden/gen_attention_full.py"
EPS = 1e-6
THETA = 10000.0


def rope_interleaved(x: torch.Tensor, theta: float = THETA) -> torch.Tensor:
    """rotary_embedding_torch: freqs θ^(-2k/d) repeated over each pair `(n r), r=2`, positions
    0..L along dim -2, rotate_half on adjacent pairs."""
    seq, dim = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.einsum("i,j->ij", torch.arange(seq).float(), inv_freq)
    angles = angles.repeat_interleave(2, dim=-1)
    pairs = x.unflatten(-1, (dim // 2, 2))
    even, odd = pairs.unbind(-1)
    rotated = torch.stack((-odd, even), dim=-1).flatten(-2)
    return x * angles.cos() + rotated * angles.sin()


def random_rms(dim: int) -> nn.RMSNorm:
    norm = nn.RMSNorm(dim, eps=EPS)
    with torch.no_grad():
        norm.weight.copy_(1.0 + 0.2 * torch.randn(dim))
    return norm


class SelfAttention(nn.Module):
    """Open-Sora `Attention` (qkv_bias=True, non-legacy qk-norm order), SDPA inside."""

    def __init__(self, dim: int, heads: int, qk_norm: bool, rope: bool):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = random_rms(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = random_rms(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            q, k = rope_interleaved(q), rope_interleaved(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {**linear_state(f"{prefix}.qkv", self.qkv), **linear_state(f"{prefix}.proj", self.proj)}
        for name in ("q_norm", "k_norm"):
            norm = getattr(self, name)
            if isinstance(norm, nn.RMSNorm):
                out[f"{prefix}.{name}.weight"] = norm.weight
        return out


class CrossAttention(nn.Module):
    """Open-Sora `MultiHeadCrossAttention` with a context of width `d_context`."""

    def __init__(self, dim: int, d_context: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(d_context, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def heads_of(self, x, cond):
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        kv = self.kv_linear(cond).view(b, cond.shape[1], 2, self.heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def forward(self, x, cond, lengths):
        b, n, c = x.shape
        q, k, v = self.heads_of(x, cond)
        keep = torch.arange(cond.shape[1])[None, :] < torch.tensor(lengths)[:, None]  # True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def forward_packed(self, x, cond, lengths):
        """What the block-diagonal mask computes: sample b attends to its first lengths[b] keys."""
        b, n, c = x.shape
        q, k, v = self.heads_of(x, cond)
        rows = [
            F.scaled_dot_product_attention(q[i : i + 1], k[i : i + 1, :, :ln], v[i : i + 1, :, :ln])
            for i, ln in enumerate(lengths)
        ]
        y = torch.cat(rows, 0)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            **linear_state(f"{prefix}.q_linear", self.q_linear),
            **linear_state(f"{prefix}.kv_linear", self.kv_linear),
            **linear_state(f"{prefix}.proj", self.proj),
        }


def self_attention() -> None:
    seed = 11
    seed_everything(seed)
    b, n, d, h = 2, 7, 16, 2
    attn = SelfAttention(d, h, qk_norm=True, rope=True)
    x = torch.randn(b, n, d)
    with torch.no_grad():
        out = attn(x)
        out_causal = attn(x, is_causal=True)
    tensors = {"x": x, "out": out, "out_causal": out_causal, **attn.state("attn")}
    save("attn_full_self", tensors, GEN, seed, d_model=d, n_heads=h, qk_norm_eps=EPS, rope_theta=THETA)


def cross_attention() -> None:
    seed = 12
    seed_everything(seed)
    b, n, m, d, dc, h = 2, 5, 6, 16, 12, 2
    lengths = [6, 3]
    attn = CrossAttention(d, dc, h)
    x, cond = torch.randn(b, n, d), torch.randn(b, m, dc)
    with torch.no_grad():
        out = attn(x, cond, lengths)
        packed = attn.forward_packed(x, cond, lengths)
        out_full = attn(x, cond, [m] * b)
    torch.testing.assert_close(out, packed, rtol=1e-5, atol=1e-6)
    tensors = {
        "x": x,
        "context": cond,
        "lengths": torch.tensor(lengths, dtype=torch.int64),
        "out": out,
        "out_unmasked": out_full,
        **attn.state("attn"),
    }
    save("attn_full_cross", tensors, GEN, seed, d_model=d, d_context=dc, n_heads=h)


def spatial_temporal() -> None:
    seed = 13
    seed_everything(seed)
    b, t, s, d, h = 2, 3, 4, 16, 2
    spatial = SelfAttention(d, h, qk_norm=True, rope=False)
    # Random (not zero) temporal proj so the test exercises it.
    temporal = SelfAttention(d, h, qk_norm=True, rope=True)
    x = torch.randn(b, t * s, d)

    def run_spatial(z):
        z = rearrange(z, "B (T S) C -> (B T) S C", T=t, S=s)
        return rearrange(spatial(z), "(B T) S C -> B (T S) C", T=t, S=s)

    def run_temporal(z):
        z = rearrange(z, "B (T S) C -> (B S) T C", T=t, S=s)
        return rearrange(temporal(z), "(B S) T C -> B (T S) C", T=t, S=s)

    with torch.no_grad():
        spatial_out = run_spatial(x)
        temporal_out = run_temporal(x)
        y = x + spatial_out
        pair_out = y + run_temporal(y)
    tensors = {
        "x": x,
        "spatial_out": spatial_out,
        "temporal_out": temporal_out,
        "pair_out": pair_out,
        **spatial.state("spatial"),
        **temporal.state("temporal"),
    }
    save("attn_full_st", tensors, GEN, seed, d_model=d, n_heads=h, frames=t, spatial=s, qk_norm_eps=EPS, rope_theta=THETA)


if __name__ == "__main__":
    self_attention()
    cross_attention()
    spatial_temporal()
