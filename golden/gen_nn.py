"""Golden fixtures for vidgen-nn, from diffusers' own functions and modules (and torch's
`nn.RMSNorm`) where they exist, otherwise from small torch code written below the way the model
code writes it:

* diffusers: `get_timestep_embedding`, `Timesteps` + `TimestepEmbedding`, `BasicTransformerBlock`
  (adaLN-Zero and adaLN-single forms) with `AdaLayerNormZero` / `AdaLayerNormSingle`,
  `FeedForward` (GELU-tanh and SwiGLU), `PatchEmbed`, `HunyuanVideoPatchEmbed` (a 3D patch conv),
  the sin-cos and rotary position functions, `apply_rotary_emb`.
* written here: the per-axis sum of factorized position tables (NaViT), DiT / Open-Sora
  unpatchify reshapes, and the adaLN-single chunk split (see `adaln`), which diffusers performs
  inline in its models rather than in a function.

Run: python golden/gen_nn.py   (writes golden/fixtures/nn_*.safetensors)
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.embeddings import (
    PatchEmbed,
    TimestepEmbedding,
    Timesteps,
    apply_rotary_emb,
    get_1d_rotary_pos_embed,
    get_1d_sincos_pos_embed_from_grid,
    get_2d_sincos_pos_embed,
    get_3d_rotary_pos_embed,
    get_3d_sincos_pos_embed,
    get_timestep_embedding,
)
from diffusers.models.normalization import AdaLayerNormSingle
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoPatchEmbed

from common import linear_state, save, seed_everything

GEN = "golden/gen_nn.py"


def timestep_embedding() -> None:
    seed = 1
    seed_everything(seed)
    t = torch.tensor([0.0, 1.0, 17.5, 250.25, 999.0])
    cases = {
        # DDPM UNet defaults
        "a": dict(embedding_dim=32, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1, max_period=10000),
        # DiT / Open-Sora, odd width (zero pad), non-default scale and period
        "b": dict(embedding_dim=33, flip_sin_to_cos=True, downscale_freq_shift=0, scale=2, max_period=1000),
    }
    tensors = {"timesteps": t}
    params = {}
    for key, kw in cases.items():
        tensors[f"emb_{key}"] = get_timestep_embedding(t, **kw)
        params.update({f"{key}.{k}": v for k, v in kw.items()})
    save("nn_timestep_embedding", tensors, GEN, seed, **params)


def timestep_embedder() -> None:
    seed = 2
    seed_everything(seed)
    proj = Timesteps(64, flip_sin_to_cos=True, downscale_freq_shift=0)
    emb = TimestepEmbedding(64, 32)
    t = torch.tensor([0.0, 3.0, 500.0, 999.0])
    with torch.no_grad():
        out = emb(proj(t))
    tensors = {"timesteps": t, "out": out, **linear_state("linear_1", emb.linear_1), **linear_state("linear_2", emb.linear_2)}
    save("nn_timestep_embedder", tensors, GEN, seed, frequency_dim=64, d_model=32)


def capture(module: nn.Module, store: dict, key: str, what: str) -> None:
    """Records a submodule's first input (`what="in"`) or its output (`"out"`) under `key`."""
    if what == "in":
        module.register_forward_pre_hook(lambda _m, args: store.__setitem__(key, args[0].detach().clone()))
    else:
        module.register_forward_hook(lambda _m, _args, out: store.__setitem__(key, out))


def adaln() -> None:
    """Modulation and gating as diffusers' `BasicTransformerBlock` runs them, read off the block.

    * adaLN-Zero: DiT's block (`norm_type="ada_norm_zero"`; `norm1` is `AdaLayerNormZero`, whose
      `emb` embeds timestep + class label into the conditioning vector `cond`). `zero.chunks` is
      the output of `norm1.linear`, captured during the block's forward, split by `.chunk(6, 1)`
      as `AdaLayerNormZero.forward` splits it (that forward returns only gate_msa, shift_mlp,
      scale_mlp and gate_mlp, which are checked equal to the matching chunks).
    * adaLN-single: `AdaLayerNormSingle` (PixArt's shared `t_block`) feeds a block with
      `norm_type="ada_norm_single"`, which owns `scale_shift_table`. No cross-attention (Latte's form
      of the block), so `norm2` precedes the MLP. The block splits
      `scale_shift_table[None] + timestep.reshape(B, 6, -1)` inline; `single.chunks` evaluates that
      expression with the block's table, the one value here not produced by a diffusers call (the
      modulated and gated tensors that use the chunks are).
    * `modulate` is checked on the block's normalised input (`*.normed`: the output of its
      parameter-free LayerNorm) against the input of `attn1` / `ff`; `gate` (no function in
      diffusers: the block writes `gate * out + residual` inline) against the residual stream after
      `attn1` / `ff`, with the branch output (`*.attn_out`, `*.ff_out`) captured by hooks.
    """
    seed = 3
    seed_everything(seed)
    b, l, d, heads = 2, 5, 8, 2
    x = torch.randn(b, l, d)
    tensors = {"x": x}

    zero = BasicTransformerBlock(d, heads, d // heads, norm_type="ada_norm_zero", num_embeds_ada_norm=10).eval()
    grab: dict = {}
    capture(zero.norm1.emb, grab, "cond", "out")
    capture(zero.norm1.linear, grab, "packed", "out")
    capture(zero.norm1.norm, grab, "normed", "out")
    capture(zero.attn1, grab, "modulated", "in")
    capture(zero.attn1, grab, "attn_out", "out")
    capture(zero.norm3, grab, "residual", "in")
    capture(zero.norm3, grab, "normed_mlp", "out")
    capture(zero.ff, grab, "modulated_mlp", "in")
    capture(zero.ff, grab, "ff_out", "out")
    timestep, labels = torch.tensor([3.0, 711.0]), torch.tensor([4, 9])
    out = zero(x, timestep=timestep, class_labels=labels)
    _, gate_msa, shift_mlp, scale_mlp, gate_mlp = zero.norm1(x, timestep, labels, hidden_dtype=x.dtype)
    chunks = grab["packed"].chunk(6, dim=1)
    for got, want in zip((gate_msa, shift_mlp, scale_mlp, gate_mlp), chunks[2:]):
        assert torch.equal(got, want)
    tensors.update({
        "cond": grab["cond"],
        **linear_state("zero.linear", zero.norm1.linear),
        "zero.chunks": torch.stack(chunks),
        **{f"zero.{k}": grab[k] for k in ("normed", "modulated", "attn_out", "residual", "normed_mlp", "modulated_mlp", "ff_out")},
        "zero.output": out,
    })

    adaln_single = AdaLayerNormSingle(d).eval()
    single = BasicTransformerBlock(d, heads, d // heads, norm_type="ada_norm_single").eval()
    grab = {}
    capture(single.norm1, grab, "normed", "out")
    capture(single.attn1, grab, "modulated", "in")
    capture(single.attn1, grab, "attn_out", "out")
    capture(single.norm2, grab, "residual", "in")
    capture(single.norm2, grab, "normed_mlp", "out")
    capture(single.ff, grab, "modulated_mlp", "in")
    capture(single.ff, grab, "ff_out", "out")
    packed, t = adaln_single(torch.tensor([17.0, 640.0]), batch_size=b, hidden_dtype=x.dtype)
    out = single(x, timestep=packed)
    table = single.scale_shift_table
    tensors.update({
        "t": t,
        **linear_state("single.t_block", adaln_single.linear),
        "single.scale_shift_table": table,
        "single.packed": packed,
        "single.chunks": (table[None] + packed.reshape(b, 6, -1)).permute(1, 0, 2),
        **{f"single.{k}": grab[k] for k in ("normed", "modulated", "attn_out", "residual", "normed_mlp", "modulated_mlp", "ff_out")},
        "single.output": out,
    })
    save("nn_adaln", tensors, GEN, seed, batch=b, tokens=l, d_model=d, n_heads=heads)


def mlps() -> None:
    seed = 4
    seed_everything(seed)
    d, hidden = 16, 40
    x = torch.randn(2, 5, d)
    # diffusers FeedForward: net = [GELU(tanh) proj, Dropout, Linear], timm's Mlp with
    # GELU(approximate="tanh"); and with SwiGLU (bias-free), LLaMA's w2(silu(w1 x) * w3 x): its
    # `proj` packs [w3; w1] (`hidden, gate = proj(x).chunk(2)`, `hidden * silu(gate)`).
    mlp = FeedForward(d, inner_dim=hidden, activation_fn="gelu-approximate").eval()
    swiglu = FeedForward(d, inner_dim=hidden, activation_fn="swiglu", bias=False).eval()
    w3, w1 = swiglu.net[0].proj.weight.chunk(2, dim=0)
    tensors = {
        "x": x,
        **linear_state("fc1", mlp.net[0].proj),
        **linear_state("fc2", mlp.net[2]),
        "mlp_out": mlp(x),
        "w1.weight": w1,
        "w2.weight": swiglu.net[2].weight,
        "w3.weight": w3,
        "swiglu_out": swiglu(x),
    }
    save("nn_mlp", tensors, GEN, seed, d_model=d, hidden_dim=hidden)


def patches() -> None:
    seed = 5
    seed_everything(seed)
    c, d = 4, 16
    # 2D: diffusers' PatchEmbed (DiT) without positional embedding or norm.
    embed2d = PatchEmbed(height=8, width=6, patch_size=2, in_channels=c, embed_dim=d, layer_norm=False, pos_embed_type=None)
    img = torch.randn(2, c, 8, 6)
    # 3D: Open-Sora's PatchEmbed3D = Conv3d(kernel = stride = patch), flatten(2).transpose(1, 2),
    # which diffusers ships as HunyuanVideo's patch embedding.
    embed3d = HunyuanVideoPatchEmbed(patch_size=(1, 2, 2), in_chans=c, embed_dim=d)
    vid = torch.randn(1, c, 3, 4, 6)
    with torch.no_grad():
        out2d = embed2d(img)
        out3d = embed3d(vid)
    # Unpatchify: DiT (2D) and Open-Sora (3D) token layouts. diffusers has no standalone function
    # (its transformers reshape inline, as below: DiT's einsum, Open-Sora's rearrange).
    p, c_out, h, w = 2, 3, 4, 3
    tok2d = torch.randn(2, h * w, p * p * c_out)
    x = tok2d.reshape(2, h, w, p, p, c_out)
    unpatch2d = torch.einsum("nhwpqc->nchpwq", x).reshape(2, c_out, h * p, w * p)
    pt, ph, pw, nt, nh, nw = 2, 2, 1, 2, 3, 2
    tok3d = torch.randn(1, nt * nh * nw, pt * ph * pw * c_out)
    unpatch3d = rearrange(
        tok3d,
        "B (N_t N_h N_w) (T_p H_p W_p C_out) -> B C_out (N_t T_p) (N_h H_p) (N_w W_p)",
        N_t=nt, N_h=nh, N_w=nw, T_p=pt, H_p=ph, W_p=pw,
    )
    tensors = {
        "img": img,
        "proj2d.weight": embed2d.proj.weight,
        "proj2d.bias": embed2d.proj.bias,
        "out2d": out2d,
        "vid": vid,
        "proj3d.weight": embed3d.proj.weight,
        "proj3d.bias": embed3d.proj.bias,
        "out3d": out3d,
        "tok2d": tok2d,
        "unpatch2d": unpatch2d,
        "tok3d": tok3d,
        "unpatch3d": unpatch3d,
    }
    save("nn_patch", tensors, GEN, seed, in_channels=c, d_model=d)


def sincos() -> None:
    seed = 6
    seed_everything(seed)
    pos = torch.tensor([0.0, 0.5, 3.0, 10.0, 77.0])
    emb1d = get_1d_sincos_pos_embed_from_grid(12, pos)
    # Non-square grid (h, w) = (4, 6); base_size and interpolation_scale as in PixArt.
    emb2d = get_2d_sincos_pos_embed(16, (4, 6), base_size=8, interpolation_scale=2.0)
    # diffusers takes spatial_size = (w, h): here (w, h, t) = (5, 3, 4).
    emb3d = get_3d_sincos_pos_embed(32, (5, 3), 4, spatial_interpolation_scale=1.5, temporal_interpolation_scale=2.0)
    tensors = {"pos1d": pos, "emb1d": emb1d, "emb2d": emb2d, "emb3d": emb3d.reshape(-1, 32)}
    save("nn_sincos", tensors, GEN, seed)


def factorized() -> None:
    seed = 7
    seed_everything(seed)
    d, max_t, max_h, max_w = 8, 5, 6, 7
    pos_t, pos_h, pos_w = torch.randn(max_t, d), torch.randn(max_h, d), torch.randn(max_w, d)
    t, h, w = 3, 4, 7
    out = (pos_t[:t, None, None] + pos_h[None, :h, None] + pos_w[None, None, :w]).reshape(t * h * w, d)
    save("nn_factorized_pos", {"pos_t": pos_t, "pos_h": pos_h, "pos_w": pos_w, "out": out}, GEN, seed, grid="3,4,7")


def rope() -> None:
    seed = 8
    seed_everything(seed)
    dh, seq = 16, 9
    x1 = torch.randn(2, 3, seq, dh)
    pos = torch.arange(seq, dtype=torch.float32)
    cos_i, sin_i = get_1d_rotary_pos_embed(dh, pos, use_real=True, repeat_interleave_real=True)
    inter = apply_rotary_emb(x1, (cos_i, sin_i), use_real=True, use_real_unbind_dim=-1)
    # Start offset 5 (decoding): positions 5..5+seq.
    cos_o, sin_o = get_1d_rotary_pos_embed(dh, pos + 5, use_real=True, repeat_interleave_real=True)
    inter_offset = apply_rotary_emb(x1, (cos_o, sin_o), use_real=True, use_real_unbind_dim=-1)
    frac = torch.tensor([0.0, 0.25, 1.5, 2.0, 7.75, 8.0, 11.0, 12.5, 30.0])
    cos_h, sin_h = get_1d_rotary_pos_embed(dh, frac, use_real=True, repeat_interleave_real=False)
    half = apply_rotary_emb(x1, (cos_h, sin_h), use_real=True, use_real_unbind_dim=-2)
    # 3D (CogVideoX split [D/4, 3D/8, 3D/8]) over a (t, h, w) = (2, 3, 4) grid, integer coordinates.
    t, h, w = 2, 3, 4
    x3 = torch.randn(1, 2, t * h * w, dh)
    cos3, sin3 = get_3d_rotary_pos_embed(dh, None, (h, w), t, grid_type="slice", max_size=(h, w))
    rope3d = apply_rotary_emb(x3, (cos3, sin3), use_real=True, use_real_unbind_dim=-1)
    tensors = {
        "x1": x1,
        "interleaved": inter,
        "interleaved_offset5": inter_offset,
        "frac_pos": frac,
        "half_split": half,
        "x3": x3,
        "rope3d": rope3d,
    }
    save("nn_rope", tensors, GEN, seed, head_dim=dh, grid="2,3,4")


def qk_norm() -> None:
    seed = 9
    seed_everything(seed)
    d_model, n_heads = 16, 2
    hd = d_model // n_heads
    q_norm, k_norm = nn.RMSNorm(hd, eps=1e-6), nn.RMSNorm(hd, eps=1e-6)
    with torch.no_grad():
        q_norm.weight.copy_(torch.randn(hd))
        k_norm.weight.copy_(torch.randn(hd))
    q, k = 3 * torch.randn(2, n_heads, 5, hd), torch.randn(2, n_heads, 7, hd)
    with torch.no_grad():
        tensors = {
            "q": q,
            "k": k,
            "q_norm.weight": q_norm.weight,
            "k_norm.weight": k_norm.weight,
            "q_out": q_norm(q),
            "k_out": k_norm(k),
        }
    save("nn_qk_norm", tensors, GEN, seed, d_model=d_model, n_heads=n_heads, eps=1e-6)


def main() -> None:
    torch.set_grad_enabled(False)
    timestep_embedding()
    timestep_embedder()
    adaln()
    mlps()
    patches()
    sincos()
    factorized()
    rope()
    qk_norm()


if __name__ == "__main__":
    main()
