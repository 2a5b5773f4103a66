"""Golden fixtures for vidgen-attention's full multi-head attention and STDiT spatial / temporal
attention, from Open-Sora's own code.

Runs `opensora/models/layers/blocks.py` (`Attention`, `MultiHeadCrossAttention`) and
`opensora/models/stdit/stdit3.py` (`STDiT3Block`, which builds the self-attention) from the
snapshot `golden/.upstream/Open-Sora` at tag v1.2.0 (commit
17cce908b22283acc3c946816c81f46dd442a453; see golden/README.md), with the real
rotary-embedding-torch 0.5.3 (`RotaryEmbedding(head_dim).rotate_queries_or_keys`, as STDiT3 passes
it to its temporal blocks), on CPU in float64. The snapshot is loaded by
`gen_opensora_stdit3.upstream_stdit3()`, whose header lists the stand-ins; the one these fixtures
depend on is `xformers.ops`: `BlockDiagonalMask.from_seqlens` builds the block-diagonal mask over
the packed sequences and `memory_efficient_attention` computes softmax(q k^T / sqrt(head_dim) +
bias) v with it explicitly, in float64.

Upstream's own casts are kept: `LlamaRMSNorm` (the QK-norm, eps 1e-6) and the self-attention
softmax run in float32 even for a float64 model, so expected values carry float32 rounding there.
Weights are float32 (torch's default Linear init; QK-norm weights 1 + 0.2 N so the scale is
exercised); outputs are float64 runs of them, stored as float32.

- `attn_full_self`: `STDiT3Block(temporal=True, qk_norm=True, rope=...).attn` (qkv bias, QK-norm
  then RoPE) on [B, N, C]. `out` is upstream's forward. Upstream has no causal option, so
  `out_causal` is torch SDPA with `is_causal=True` on upstream's own q, k (read at the output of
  its RoPE call) and v (read off its `qkv` output, split as its forward splits it), then its
  `proj`; the same path without the causal flag is checked against `out` before saving.
- `attn_full_cross`: `MultiHeadCrossAttention(d_model, n_heads)` with its `kv_linear` rebuilt as
  `Linear(d_context, 2 d_model)` so the context width differs from d_model (upstream's forward only
  reads the context through `kv_linear`). The context is packed as `STDiT3.encode_text` packs it
  (`masked_select` of the valid tokens into [1, sum(lengths), d_context]) and the lengths are
  passed as upstream's `mask`; `out_unmasked` passes the whole padded context with every length
  equal to its width, as `encode_text` does without a mask. `out` is checked against SDPA with a
  key-padding mask on the padded batch (the layout the Rust test uses) before saving.
- `attn_full_st`: the spatial and temporal attentions of `STDiT3Block(temporal=False)` and
  `STDiT3Block(temporal=True, rope=...)`. The rearranges `B (T S) C -> (B T) S C` and
  `B (T S) C -> (B S) T C` (and back) sit inline in `STDiT3Block.forward` between the
  modulation, cross-attention and MLP, so they cannot be run alone: they are written here with
  einops using the same patterns, as is the residual pair `y = x + spatial(x)`,
  `pair_out = y + temporal(y)` (the block's residual without modulation or gate). The temporal
  `proj` keeps its random init (STDiT3 zero-initialises it) so the test exercises it.

Run: python golden/gen_attention_full.py   (writes golden/fixtures/attn_full_*.safetensors)
"""

from __future__ import annotations

import importlib.metadata

import torch
import torch.nn.functional as F
from einops import rearrange
from rotary_embedding_torch import RotaryEmbedding
from torch import nn

from common import linear_state, save, seed_everything
from gen_opensora_stdit3 import REPO, TAG, upstream_stdit3

GEN = "golden/gen_attention_full.py"
EPS = 1e-6  # LlamaRMSNorm's default, which STDiT3's Attention uses
THETA = 10000.0  # RotaryEmbedding's default, which STDiT3 uses


def upstream():
    """The snapshot's `stdit3` and `blocks` modules and its commit."""
    stdit3, commit = upstream_stdit3()
    import opensora.models.layers.blocks as blocks

    return stdit3, blocks, commit


def metadata(commit: str) -> dict[str, str]:
    return {
        "upstream": REPO,
        "upstream.tag": TAG,
        "upstream.commit": commit,
        "upstream.file": "opensora/models/layers/blocks.py",
        "version.rotary-embedding-torch": importlib.metadata.version("rotary-embedding-torch"),
        "compute_dtype": "float64",
    }


def clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 weights, kept apart from the modules before they are cast to float64."""
    return {k: v.detach().clone() for k, v in state.items()}


def rope_for(head_dim: int) -> RotaryEmbedding:
    rope = RotaryEmbedding(dim=head_dim).double()
    want = 1.0 / THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    torch.testing.assert_close(rope.freqs, want, rtol=1e-6, atol=0.0)
    return rope


def self_attn(stdit3, d: int, h: int, rope: RotaryEmbedding | None) -> nn.Module:
    """The self-attention of an STDiT3 block (temporal when given the RoPE), QK-norm weights
    redrawn around 1."""
    block = stdit3.STDiT3Block(
        d, h, qk_norm=True, temporal=rope is not None,
        rope=None if rope is None else rope.rotate_queries_or_keys,
    )
    attn = block.attn.eval()
    with torch.no_grad():
        for norm in (attn.q_norm, attn.k_norm):
            assert norm.variance_epsilon == EPS
            norm.weight.copy_(1.0 + 0.2 * torch.randn(norm.weight.shape))
    return attn


def self_state(attn: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return clone({
        **linear_state(f"{prefix}.qkv", attn.qkv),
        **linear_state(f"{prefix}.proj", attn.proj),
        f"{prefix}.q_norm.weight": attn.q_norm.weight,
        f"{prefix}.k_norm.weight": attn.k_norm.weight,
    })


def with_causal(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's forward, and SDPA with `is_causal=True` on the q, k, v that forward builds."""
    b, n, c = x.shape
    rotated, qkv = [], []
    rotary = attn.rotary_emb

    def record(t):
        rotated.append(rotary(t))
        return rotated[-1]

    attn.rotary_emb = record
    hook = attn.qkv.register_forward_hook(lambda m, i, o: qkv.append(o))
    out = attn(x)
    hook.remove()
    attn.rotary_emb = rotary
    q, k = rotated
    v = qkv[0].view(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)[2]

    def sdpa(causal):
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return attn.proj(y.transpose(1, 2).reshape(b, n, c))

    # Upstream's softmax runs in float32: agreement to float32 rounding.
    torch.testing.assert_close(sdpa(False), out, rtol=1e-6, atol=1e-6)
    return out, sdpa(True)


def self_attention(stdit3, commit: str) -> None:
    seed = 11
    seed_everything(seed)
    b, n, d, h = 2, 7, 16, 2
    rope = rope_for(d // h)
    attn = self_attn(stdit3, d, h, rope)
    x = torch.randn(b, n, d)
    state = self_state(attn, "attn")
    with torch.no_grad():
        out, out_causal = with_causal(attn.double(), x.double())
    tensors = {"x": x, "out": out, "out_causal": out_causal, **state}
    save("attn_full_self", tensors, GEN, seed, d_model=d, n_heads=h, qk_norm_eps=EPS,
         rope_theta=THETA, **metadata(commit))


def cross_attention(blocks, commit: str) -> None:
    seed = 12
    seed_everything(seed)
    b, n, m, d, dc, h = 2, 5, 6, 16, 12, 2
    lengths = [6, 3]
    attn = blocks.MultiHeadCrossAttention(d, h).eval()
    attn.kv_linear = nn.Linear(dc, 2 * d)
    x, cond = torch.randn(b, n, d), torch.randn(b, m, dc)
    state = clone({
        **linear_state("attn.q_linear", attn.q_linear),
        **linear_state("attn.kv_linear", attn.kv_linear),
        **linear_state("attn.proj", attn.proj),
    })
    attn = attn.double()
    xd, cd = x.double(), cond.double()
    keep = torch.arange(m)[None, :] < torch.tensor(lengths)[:, None]  # True = valid token
    with torch.no_grad():
        packed = cd.masked_select(keep[..., None]).view(1, -1, dc)
        out = attn(xd, packed, lengths)
        out_full = attn(xd, cd.view(1, -1, dc), [m] * b)

        q = attn.q_linear(xd).view(b, n, h, d // h).transpose(1, 2)
        k, v = attn.kv_linear(cd).view(b, m, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        padded = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        padded = attn.proj(padded.transpose(1, 2).reshape(b, n, d))
    torch.testing.assert_close(padded, out, rtol=1e-12, atol=1e-12)
    tensors = {
        "x": x,
        "context": cond,
        "lengths": torch.tensor(lengths, dtype=torch.int64),
        "out": out,
        "out_unmasked": out_full,
        **state,
    }
    save("attn_full_cross", tensors, GEN, seed, d_model=d, d_context=dc, n_heads=h,
         **metadata(commit))


def spatial_temporal(stdit3, commit: str) -> None:
    seed = 13
    seed_everything(seed)
    b, t, s, d, h = 2, 3, 4, 16, 2
    spatial = self_attn(stdit3, d, h, None)
    temporal = self_attn(stdit3, d, h, rope_for(d // h))
    x = torch.randn(b, t * s, d)
    state = {**self_state(spatial, "spatial"), **self_state(temporal, "temporal")}
    spatial, temporal = spatial.double(), temporal.double()

    def run_spatial(z):
        z = rearrange(z, "B (T S) C -> (B T) S C", T=t, S=s)
        return rearrange(spatial(z), "(B T) S C -> B (T S) C", T=t, S=s)

    def run_temporal(z):
        z = rearrange(z, "B (T S) C -> (B S) T C", T=t, S=s)
        return rearrange(temporal(z), "(B S) T C -> B (T S) C", T=t, S=s)

    xd = x.double()
    with torch.no_grad():
        spatial_out = run_spatial(xd)
        temporal_out = run_temporal(xd)
        y = xd + spatial_out
        pair_out = y + run_temporal(y)
    tensors = {
        "x": x,
        "spatial_out": spatial_out,
        "temporal_out": temporal_out,
        "pair_out": pair_out,
        **state,
    }
    save("attn_full_st", tensors, GEN, seed, d_model=d, n_heads=h, frames=t, spatial=s,
         qk_norm_eps=EPS, rope_theta=THETA, **metadata(commit))


if __name__ == "__main__":
    stdit3, blocks, commit = upstream()
    self_attention(stdit3, commit)
    cross_attention(blocks, commit)
    spatial_temporal(stdit3, commit)
