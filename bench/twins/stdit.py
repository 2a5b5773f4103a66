"""PyTorch twin of vidgen's STDiT denoiser and the tiny text-to-video model, for CPU benchmarks.

Mirrors, operation for operation, the Rust of
- `crates/vidgen-models/src/stdit.rs` and `stdit/{block,forward}.rs` (`Stdit`, its blocks, caption
  embedder and final layer),
- `crates/vidgen-models/src/tiny.rs` / `text.rs` (`TextVideoModel`: denoiser + label embedding table,
  `flow_loss`),
- the layers they use: `vidgen-nn` (`adaln.rs`, `mlp.rs`, `patch.rs`, `pos_embed.rs`, `rope.rs`,
  `timestep.rs`) and `vidgen-attention` (`full.rs`, `spatial_temporal.rs`).

Parameter names and shapes are those of the checkpoints `save_checkpoint` writes (burn-store's
`BurnToPyTorchAdapter`: linear weights `[out, in]` as `nn.Linear` holds them, conv weights as
`nn.Conv3d`, module paths as keys; the RMSNorm weight keeps Burn's name `gamma`), so
`TextVideoTwin.load_state_dict(load_file("assets/tiny_stdit.safetensors"), strict=True)` loads the
shipped model as it is. The temporal RoPE table is a non-persistent buffer (Burn does not save it
either).

Attention runs through `torch.nn.functional.scaled_dot_product_attention`.

Run `python bench/twins/stdit.py` (inside golden/.venv) for the self-checks: strict loading of the
shipped checkpoint, parameter count, and, with the twin configured as upstream STDiT3, the Open-Sora
1.2 golden fixture (`golden/fixtures/opensora_stdit3_cases.safetensors`, upstream's own forward).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

NORM_EPS = 1e-6
"""LayerNorm epsilon of every block / final-layer norm (`stdit::NORM_EPS`)."""

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CONFIG = os.path.join(REPO, "assets", "tiny_stdit.json")
TINY_CHECKPOINT = os.path.join(REPO, "assets", "tiny_stdit.safetensors")


# --- configuration -----------------------------------------------------------------------------


@dataclass
class StditTwinConfig:
    """`StditConfig` (stdit.rs) with its defaults; `from_json` reads a `TinyTrainConfig` file."""

    d_model: int
    n_heads: int
    depth: int
    d_text: int
    in_channels: int = 4
    patch_size: tuple = (1, 2, 2)
    mlp_ratio: float = 4.0
    max_frames: int = 64
    text_max_len: int = 300
    qk_norm: bool = True
    qk_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    frequency_dim: int = 256
    pos_interpolation_scale: float = 1.0
    zero_init_temporal: bool = True
    temporal_pos_embed: bool = False
    pooled_text: bool = False
    cross_qk_norm: bool = False
    pred_sigma: bool = True
    input_sq_size: float = 512.0
    final_t0_norm_modulated: bool = True

    @classmethod
    def from_json(cls, path: str) -> "StditTwinConfig":
        """The `"model"` section of a `TinyTrainConfig` JSON (e.g. assets/tiny_stdit.json)."""
        with open(path) as f:
            model = json.load(f)["model"]
        known = {f.name for f in fields(cls)}
        unknown = set(model) - known
        if unknown:
            raise ValueError(f"{path}: model fields the twin does not know: {sorted(unknown)}")
        if "patch_size" in model:
            model["patch_size"] = tuple(model["patch_size"])
        return cls(**model)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.pred_sigma else self.in_channels

    @property
    def mlp_hidden(self) -> int:
        """`round(d_model · mlp_ratio)` (Rust `f64::round`: halves away from zero)."""
        return int(math.floor(self.d_model * self.mlp_ratio + 0.5))


# --- layers (vidgen-nn) ------------------------------------------------------------------------


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis without affine parameters, biased variance, eps 1e-6
    (block.rs `layer_norm`)."""
    return F.layer_norm(x, (x.shape[-1],), eps=NORM_EPS)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`x·(1 + scale) + shift` per sample (adaln.rs `modulate`); `x` `[B, N, D]`, vectors `[B, D]`."""
    return x * (1 + scale[:, None]) + shift[:, None]


class RmsNorm(nn.Module):
    """Burn's `RmsNorm`: `x / √(mean(x²) + eps) · gamma` over the last axis (QK-norm per head)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = (x.square().mean(-1, keepdim=True) + self.eps).sqrt()
        return x / rms * self.gamma


class Mlp(nn.Module):
    """GELU(tanh) MLP `fc1 → gelu_tanh → fc2` (mlp.rs `Mlp`, timm's `Mlp`)."""

    def __init__(self, d_in: int, hidden: int, d_out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, d_in if d_out is None else d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TimestepEmbedder(nn.Module):
    """timestep.rs `TimestepEmbedder`: sinusoid (`flip_sin_to_cos`, shift 0, max period 10⁴:
    `[cos(t·f), sin(t·f)]`, `f_k = exp(−ln(10⁴)·k/half)`, computed in f64 and rounded once) →
    `linear_1` → SiLU → `linear_2`. Used for both the diffusion time and the frame rate."""

    def __init__(self, frequency_dim: int, d_model: int, max_period: float = 10000.0):
        super().__init__()
        self.frequency_dim = frequency_dim
        half = frequency_dim // 2
        freqs = [math.exp(-math.log(max_period) * k / half) for k in range(half)]
        self.register_buffer("freqs", torch.tensor(freqs, dtype=torch.float64).float(),
                             persistent=False)
        self.linear_1 = nn.Linear(frequency_dim, d_model)
        self.linear_2 = nn.Linear(d_model, d_model)

    def sinusoid(self, t: torch.Tensor) -> torch.Tensor:
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        parts = [args.cos(), args.sin()]
        if self.frequency_dim % 2 == 1:
            parts.append(torch.zeros_like(args[:, :1]))
        return torch.cat(parts, dim=1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(self.sinusoid(t))))


class AdaLnModulation(nn.Module):
    """adaln.rs `AdaLnModulation` (`t_block`): `linear(SiLU(c))`, the packed `[B, n·D]` vector."""

    def __init__(self, d_cond: int, d_model: int, n_chunks: int):
        super().__init__()
        self.linear = nn.Linear(d_cond, n_chunks * d_model)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.linear(F.silu(c))


class ScaleShiftTable(nn.Module):
    """adaln.rs `ScaleShiftTable`: learnt `[n, D]` offsets added to a packed `[B, n·D]` vector;
    returns `[B, n, D]` (row `k` = chunk `k`)."""

    def __init__(self, d_model: int, n_chunks: int):
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(n_chunks, d_model) / d_model**0.5)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        n, d = self.scale_shift_table.shape
        return packed.reshape(packed.shape[0], n, d) + self.scale_shift_table[None]


class PatchEmbed3d(nn.Module):
    """patch.rs `PatchEmbed3d`: Conv3d with kernel = stride = patch, tokens `[B, t·h·w, D]` in
    `(t, h, w)` raster order."""

    def __init__(self, in_channels: int, d_model: int, patch_size: tuple):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv3d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def unpatchify_3d(x: torch.Tensor, grid: tuple, patch: tuple) -> torch.Tensor:
    """patch.rs `unpatchify_3d`: `[B, t·h·w, pt·ph·pw·C]` → `[B, C, t·pt, h·ph, w·pw]`, each
    token's vector read as `(pt, ph, pw, C)`."""
    b, _, width = x.shape
    (t, h, w), (pt, ph, pw) = grid, patch
    c = width // (pt * ph * pw)
    x = x.reshape(b, t, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, c, t * pt, h * ph, w * pw)


def _sincos_rows(dim: int, positions: list[float]) -> list[list[float]]:
    """pos_embed.rs `sincos_rows`: `[sin(p·ω), cos(p·ω)]`, `ω_k = 10⁴^(−k/half)`, in f64."""
    half = dim // 2
    omega = [1.0 / 10000.0 ** (k / half) for k in range(half)]
    return [[math.sin(p * w) for w in omega] + [math.cos(p * w) for w in omega] for p in positions]


def sincos_2d(dim: int, grid: tuple, base_size: float, scale: float) -> torch.Tensor:
    """pos_embed.rs `sincos_2d`: `[gh·gw, dim]`, coordinate `i / (n / base_size) / scale` per axis,
    the first half of the channels from the `w` coordinate, the second from `h`; f64, rounded once."""
    gh, gw = grid

    def axis(n):
        return [i / (n / base_size) / scale for i in range(n)]

    emb_h, emb_w = _sincos_rows(dim // 2, axis(gh)), _sincos_rows(dim // 2, axis(gw))
    rows = [emb_w[j] + emb_h[i] for i in range(gh) for j in range(gw)]
    return torch.tensor(rows, dtype=torch.float64).float()


def sincos_1d(dim: int, positions: list[float]) -> torch.Tensor:
    """pos_embed.rs `sincos_1d`: `[len(positions), dim]`, f64 rounded once."""
    return torch.tensor(_sincos_rows(dim, positions), dtype=torch.float64).float()


class Rope1d(nn.Module):
    """Burn's `RotaryEncoding` as rope.rs `Rope1d` uses it: interleaved pairs `(x_2k, x_2k+1)`
    rotated by `p·θ_k`, `θ_k = 1 / exp(ln(theta)·2k/d)` and the tables in f32 as Burn builds them,
    positions `0..L` along the second-to-last axis. No persistent state (Burn saves none)."""

    def __init__(self, head_dim: int, max_len: int, theta: float):
        super().__init__()
        exponent = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        inv = torch.exp(exponent * torch.tensor(theta, dtype=torch.float32).log()).reciprocal()
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None]  # [P, d/2]
        self.register_buffer("cos", angles.cos().repeat_interleave(2, dim=1), persistent=False)
        self.register_buffer("sin", angles.sin().repeat_interleave(2, dim=1), persistent=False)

    @property
    def max_len(self) -> int:
        return self.cos.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, d = x.shape[-2:]
        pairs = x.reshape(*x.shape[:-1], d // 2, 2)
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(x.shape)
        cos, sin = self.cos[:length].to(x.dtype), self.sin[:length].to(x.dtype)
        return x * cos + rotated * sin


# --- attention (vidgen-attention) --------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """full.rs `MultiHeadAttention`, Open-Sora's names: self-attention `qkv` (`D → 3D`, output
    laid out `[3, H, Dh]`) or cross-attention `q_linear` (`D → D`) + `kv_linear` (`Dc → 2D`,
    `[2, H, Dh]`); optional per-head RMSNorm `q_norm`/`k_norm`; then RoPE; SDPA with scale
    `1/√Dh`; `proj`.

    A query row whose keys are all padding gets a zero context vector (Burn's NaN-safe softmax),
    so the layer returns `proj.bias` there, where PyTorch's SDPA would give NaN."""

    def __init__(self, d_model: int, n_heads: int, d_context: int | None, qk_norm: bool,
                 eps: float):
        super().__init__()
        self.n_heads = n_heads
        head_dim = d_model // n_heads
        if d_context is None:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        else:
            self.q_linear = nn.Linear(d_model, d_model)
            self.kv_linear = nn.Linear(d_context, 2 * d_model)
        if qk_norm:
            self.q_norm = RmsNorm(head_dim, eps)
            self.k_norm = RmsNorm(head_dim, eps)
        else:
            self.q_norm = self.k_norm = None
        self.proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """`[b, l, n·H·Dh]` → `n` tensors `[b, H, l, Dh]` (full.rs `split_heads`)."""
        b, length, width = x.shape
        x = x.reshape(b, length, n, self.n_heads, width // (n * self.n_heads))
        return list(x.permute(2, 0, 3, 1, 4).unbind(0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_padding: torch.Tensor | None = None, rope: Rope1d | None = None):
        """`x` `[b, l, D]`, `context` `[b, lc, Dc]` (cross-attention), `key_padding` `[b, lc]`
        bool, `True` = padding (Burn's convention)."""
        if context is None:
            q, k, v = self._heads(self.qkv(x), 3)
        else:
            (q,) = self._heads(self.q_linear(x), 1)
            k, v = self._heads(self.kv_linear(context), 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rope(q), rope(k)
        mask = empty = None
        if key_padding is not None:
            empty = key_padding.all(dim=1)  # [b]: samples without a single valid key
            if bool(empty.any()):
                key_padding = key_padding & ~empty[:, None]
            else:
                empty = None
            mask = ~key_padding[:, None, None, :]  # SDPA: True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if empty is not None:
            y = y.masked_fill(empty[:, None, None, None], 0.0)
        b, h, length, dh = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, length, h * dh))


class SpatialAttention(nn.Module):
    """spatial_temporal.rs `SpatialAttention`: self-attention within each frame,
    `[B, T·S, D]` → `[B·T, S, D]` and back."""

    def __init__(self, cfg: StditTwinConfig):
        super().__init__()
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, None, cfg.qk_norm,
                                       cfg.qk_norm_eps)

    def forward(self, x: torch.Tensor, frames: int, spatial: int) -> torch.Tensor:
        b, _, d = x.shape
        y = self.attn(x.reshape(b * frames, spatial, d))
        return y.reshape(b, frames * spatial, d)


class TemporalAttention(nn.Module):
    """spatial_temporal.rs `TemporalAttention`: self-attention across the frames at each
    position (`[B, T·S, D]` → `[B·S, T, D]` and back), QK-norm then temporal RoPE."""

    def __init__(self, cfg: StditTwinConfig):
        super().__init__()
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, None, cfg.qk_norm,
                                       cfg.qk_norm_eps)
        self.rope = Rope1d(cfg.head_dim, cfg.max_frames, cfg.rope_theta)

    def forward(self, x: torch.Tensor, frames: int, spatial: int) -> torch.Tensor:
        b, _, d = x.shape
        x = x.reshape(b, frames, spatial, d).transpose(1, 2).reshape(b * spatial, frames, d)
        y = self.attn(x, rope=self.rope)
        return y.reshape(b, spatial, frames, d).transpose(1, 2).reshape(b, frames * spatial, d)


# --- STDiT (vidgen-models) ---------------------------------------------------------------------


class Modulation:
    """block.rs `Modulation`: a block's six vectors `[B, 6, D]` at `t` and, with conditioning
    frames, at timestep 0, chosen per token by `token_mask` (`[B, N, 1]`, `True` = t0)."""

    def __init__(self, table: ScaleShiftTable, t_mlp, t0_mlp, token_mask):
        self.at_t = table(t_mlp)
        self.at_zero = None if t0_mlp is None else table(t0_mlp)
        self.mask = token_mask

    def _select(self, f):
        y = f(self.at_t)
        if self.at_zero is not None and self.mask is not None:
            y = torch.where(self.mask, f(self.at_zero), y)
        return y

    def modulate(self, norm: torch.Tensor, shift: int) -> torch.Tensor:
        return self._select(lambda v: modulate(norm, v[:, shift], v[:, shift + 1]))

    def gate(self, y: torch.Tensor, index: int) -> torch.Tensor:
        return self._select(lambda v: y * v[:, index, None])


class StditBlock(nn.Module):
    """block.rs `StditBlock`: `x += gate_msa·attn(modulate(LN(x), shift_msa, scale_msa))`,
    `x += cross_attn(x, text)` (no norm, no modulation), `x += gate_mlp·mlp(modulate(LN(x),
    shift_mlp, scale_mlp))`; the six vectors are `scale_shift_table + t_block(c)` in the order
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp."""

    def __init__(self, cfg: StditTwinConfig, temporal: bool):
        super().__init__()
        self.attn = TemporalAttention(cfg) if temporal else SpatialAttention(cfg)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.d_model,
                                             cfg.cross_qk_norm, cfg.qk_norm_eps)
        self.mlp = Mlp(cfg.d_model, cfg.mlp_hidden)
        self.scale_shift_table = ScaleShiftTable(cfg.d_model, 6)
        if temporal and cfg.zero_init_temporal:
            for linear in (self.attn.attn.proj, self.cross_attn.proj, self.mlp.fc2):
                nn.init.zeros_(linear.weight)

    def forward(self, x, inputs: dict) -> torch.Tensor:
        m = Modulation(self.scale_shift_table, inputs["t_mlp"], inputs["t0_mlp"],
                       inputs["token_mask"])
        y = self.attn(m.modulate(layer_norm(x), 0), inputs["frames"], inputs["spatial"])
        x = x + m.gate(y, 2)
        x = x + self.cross_attn(x, inputs["text"], key_padding=inputs["text_pad"])
        y = self.mlp(m.modulate(layer_norm(x), 3))
        return x + m.gate(y, 5)


class CaptionEmbedder(nn.Module):
    """block.rs `CaptionEmbedder`: `y_proj` MLP `d_text → D → D` and the learnt null caption
    `y_embedding` `[text_max_len, d_text]` (a trainable parameter in vidgen)."""

    def __init__(self, cfg: StditTwinConfig):
        super().__init__()
        self.y_proj = Mlp(cfg.d_text, cfg.d_model, cfg.d_model)
        self.y_embedding = nn.Parameter(torch.randn(cfg.text_max_len, cfg.d_text)
                                        / cfg.d_text**0.5)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.y_proj(text)

    def null(self, batch: int, length: int) -> torch.Tensor:
        """The null caption's first `length` rows for each of `batch` samples."""
        if length > self.y_embedding.shape[0]:
            raise ValueError(f"len {length} > text_max_len {self.y_embedding.shape[0]}")
        return self.y_embedding[:length][None].expand(batch, length, -1)


class FinalLayer(nn.Module):
    """block.rs `FinalLayer`: `linear(modulate(LN(x), shift, scale))`, `(shift, scale) =
    scale_shift_table + c` (the embedding `c`, not `t_block(c)`); conditioning-frame tokens use
    `c0`, normalising the `t`-modulated tokens first when `t0_norm_modulated` (upstream)."""

    def __init__(self, d_model: int, out: int, t0_norm_modulated: bool):
        super().__init__()
        self.linear = nn.Linear(d_model, out)
        self.scale_shift_table = ScaleShiftTable(d_model, 2)
        self.t0_norm_modulated = t0_norm_modulated

    def _modulated(self, norm, c):
        v = self.scale_shift_table(torch.cat([c, c], dim=1))
        return modulate(norm, v[:, 0], v[:, 1])

    def forward(self, x, c, c0=None, token_mask=None) -> torch.Tensor:
        norm = layer_norm(x)
        y = self._modulated(norm, c)
        if c0 is not None and token_mask is not None:
            base = layer_norm(y) if self.t0_norm_modulated else norm
            y = torch.where(token_mask, self._modulated(base, c0), y)
        return self.linear(y)


class Stdit(nn.Module):
    """stdit.rs `Stdit`: patch embedding + sin-cos positions, `c = t_embedder(t) +
    fps_embedder(fps)`, adaLN-single `t_block`, text projection, `depth` (spatial, temporal)
    block pairs, final layer, unpatchify."""

    def __init__(self, cfg: StditTwinConfig):
        super().__init__()
        if cfg.pooled_text:
            raise NotImplementedError("pooled_text: not part of the twin (the tiny model has it off)")
        self.cfg = cfg
        d = cfg.d_model
        self.x_embedder = PatchEmbed3d(cfg.in_channels, d, cfg.patch_size)
        self.t_embedder = TimestepEmbedder(cfg.frequency_dim, d)
        self.fps_embedder = TimestepEmbedder(cfg.frequency_dim, d)
        self.t_block = AdaLnModulation(d, d, 6)
        self.y_embedder = CaptionEmbedder(cfg)
        self.spatial_blocks = nn.ModuleList(StditBlock(cfg, False) for _ in range(cfg.depth))
        self.temporal_blocks = nn.ModuleList(StditBlock(cfg, True) for _ in range(cfg.depth))
        volume = math.prod(cfg.patch_size)
        self.final_layer = FinalLayer(d, volume * cfg.out_channels, cfg.final_t0_norm_modulated)
        self._positions = {}

    def condition(self, t: torch.Tensor, fps: torch.Tensor):
        """`c = t_embedder(t) + fps_embedder(fps)` and `t_block(c)` (`[B, D]`, `[B, 6D]`)."""
        c = self.t_embedder(t) + self.fps_embedder(fps)
        return c, self.t_block(c)

    def positions(self, grid: tuple, scale: float, dtype) -> torch.Tensor:
        """forward.rs `positions`: the spatial table (`base_size = round(√S)`) plus, with
        `temporal_pos_embed`, the 1D table over token frames: `[1, T, S, D]` (or `[1, 1, S, D]`).
        Constant for a grid and scale, so cached."""
        key = (grid, scale, dtype)
        if key not in self._positions:
            frames, gh, gw = grid
            d, spatial = self.cfg.d_model, gh * gw
            base = max(float(math.floor(math.sqrt(spatial) + 0.5)), 1.0)
            pos = sincos_2d(d, (gh, gw), base, scale).reshape(1, 1, spatial, d)
            if self.cfg.temporal_pos_embed:
                pos = pos + sincos_1d(d, [float(f) for f in range(frames)]).reshape(1, frames, 1, d)
            self._positions[key] = pos.to(dtype)
        return self._positions[key]

    def forward_all(self, x, t, text, fps, text_pad=None, cond_frames=None, pos_scale=None):
        """forward.rs `forward_prepared`: every output channel, `[B, C_out, T, H, W]`.

        `x` `[B, C, T, H, W]` (zero-padded to the patch grid, cropped back), `t`, `fps` `[B]`,
        `text` `[B, L, d_text]`, `text_pad` `[B, L]` bool (`True` = padding), `cond_frames`
        `[B, T]` bool (`True` = conditioning frame, modulated at timestep 0), `pos_scale` the
        divisor of the spatial positions (default `pos_interpolation_scale`)."""
        b, _, t_in, h_in, w_in = x.shape
        patch = self.cfg.patch_size
        if pos_scale is None:
            pos_scale = self.cfg.pos_interpolation_scale
        pads = [(-n) % p for n, p in zip((t_in, h_in, w_in), patch)]
        if any(pads):
            x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        grid = tuple(n // p for n, p in zip(x.shape[2:], patch))
        if grid[0] > self.temporal_blocks[0].attn.rope.max_len:
            raise ValueError(f"{grid[0]} token frames > max_frames")
        frames, spatial = grid[0], grid[1] * grid[2]
        d = self.cfg.d_model

        text = self.y_embedder(text)
        c, t_mlp = self.condition(t, fps)
        c0 = t0_mlp = token_mask = None
        if cond_frames is not None:
            c0, t0_mlp = self.condition(torch.zeros_like(t), fps)
            token_mask = cond_frames[:, :, None, None].expand(b, frames, spatial, 1)
            token_mask = token_mask.reshape(b, frames * spatial, 1)

        tokens = self.x_embedder(x).reshape(b, frames, spatial, d)
        h = (tokens + self.positions(grid, pos_scale, tokens.dtype)).reshape(b, frames * spatial, d)
        inputs = dict(t_mlp=t_mlp, t0_mlp=t0_mlp, token_mask=token_mask, text=text,
                      text_pad=text_pad, frames=frames, spatial=spatial)
        for spatial_block, temporal_block in zip(self.spatial_blocks, self.temporal_blocks):
            h = spatial_block(h, inputs)
            h = temporal_block(h, inputs)
        out = self.final_layer(h, c, c0, token_mask)
        out = unpatchify_3d(out, grid, patch)
        return out[:, :, :t_in, :h_in, :w_in]

    def forward(self, x, t, text, fps, text_pad=None, cond_frames=None):
        """stdit.rs `Stdit::forward`: the velocity (first `C` channels) at the fixed positional
        scale `pos_interpolation_scale`."""
        return self.forward_all(x, t, text, fps, text_pad, cond_frames)[:, : x.shape[1]]


# --- the tiny text-to-video model (tiny.rs, text.rs) -------------------------------------------


class TextEmbedder(nn.Module):
    """text.rs `TextEmbedder`: ids `[N, L]` → `[N, L, d_text]` (one `nn.Embedding` table)."""

    def __init__(self, vocab_size: int, d_text: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_text)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)


def key_padding(lens, length: int, device=None) -> torch.Tensor:
    """`[B, L]` bool, `True` on positions `≥ lens[b]` (vidgen-attention `key_padding_mask`)."""
    lens = torch.as_tensor(lens, device=device)
    return torch.arange(length, device=device)[None, :] >= lens[:, None]


class TextVideoTwin(nn.Module):
    """tiny.rs `TextVideoModel`: the denoiser `model` and the label embedding `text_embedder`
    (checkpoint keys `model.*`, `text_embedder.*`), with its rectified-flow loss."""

    def __init__(self, cfg: StditTwinConfig, vocab_size: int, cfg_dropout: float = 0.1,
                 fps: float = 8.0, logit_mean: float = 1.5, logit_std: float = 1.5):
        super().__init__()
        self.model = Stdit(cfg)
        self.text_embedder = TextEmbedder(vocab_size, cfg.d_text)
        self.cfg_dropout, self.fps = cfg_dropout, fps
        self.logit_mean, self.logit_std = logit_mean, logit_std

    def flow_loss(self, videos, ids, lens, generator=None) -> torch.Tensor:
        """tiny.rs `flow_loss`: per sample noise `ε`, a logit-normal time
        `t = σ(μ + s·z)` (no timestep transform), caption dropout to the null caption with
        probability `cfg_dropout`; `x_t = (1 − t)·x₀ + t·ε`, the model at `1000·t` and fps, and
        the mean over samples of the per-sample mean of `(v − (ε − x₀))²`.

        The draws come from one `generator` for the batch (vidgen seeds one generator per item;
        the distributions are the same)."""
        n = videos.shape[0]
        noise = torch.randn(videos.shape, generator=generator, dtype=videos.dtype)
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        times = torch.sigmoid(self.logit_mean + self.logit_std * z)
        drop = torch.rand(n, generator=generator, dtype=torch.float64) < self.cfg_dropout
        t = times.to(videos.dtype).reshape(n, 1, 1, 1, 1)
        model_input = videos * (1 - t) + noise * t
        model_time = (times * 1000.0).to(videos.dtype)
        target = noise - videos

        text = self.text_embedder(ids)
        length = text.shape[1]
        null = self.model.y_embedder.null(n, length)
        text = torch.where(drop[:, None, None], null, text)
        pad = key_padding(lens, length)
        fps = torch.full((n,), self.fps, dtype=videos.dtype)
        out = self.model(model_input, model_time, text, fps, text_pad=pad)
        per_sample = (out - target).square().reshape(n, -1).mean(dim=1)
        return per_sample.mean()


def load_tiny(config_path: str = TINY_CONFIG, checkpoint_path: str = TINY_CHECKPOINT):
    """The shipped tiny model: config from the JSON, weights loaded with `strict=True`."""
    with open(config_path) as f:
        train = json.load(f)
    cfg = StditTwinConfig.from_json(config_path)
    state = load_file(checkpoint_path)
    vocab = state["text_embedder.embedding.weight"].shape[0]
    twin = TextVideoTwin(cfg, vocab, cfg_dropout=train.get("cfg_dropout", 0.1),
                         fps=train.get("fps", 8.0), logit_mean=train.get("logit_mean", 1.5),
                         logit_std=train.get("logit_std", 1.5))
    if train.get("time_sampling", "logit_normal") != "logit_normal":
        raise NotImplementedError("the twin's flow_loss draws logit-normal times only")
    twin.load_state_dict(state, strict=True)
    return twin, train


def parameter_count(module: nn.Module, checkpoint_path: str | None = TINY_CHECKPOINT,
                    verbose: bool = True) -> int:
    """Number of parameter elements of `module`; asserts that it equals the number of elements
    in the checkpoint (and that the state-dict shapes are the checkpoint's)."""
    count = sum(p.numel() for p in module.parameters())
    if checkpoint_path is not None:
        state = load_file(checkpoint_path)
        in_file = sum(t.numel() for t in state.values())
        mine = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in state.items()}
        assert mine == theirs, "state-dict keys/shapes differ from the checkpoint's"
        assert count == in_file, f"twin has {count} parameters, checkpoint {in_file} elements"
    if verbose:
        print(f"parameters: {count} ({len(list(module.parameters()))} tensors)")
    return count


# --- self-checks -------------------------------------------------------------------------------

UPSTREAM_CASES = os.path.join(REPO, "golden", "fixtures", "opensora_stdit3_cases.safetensors")
UPSTREAM_WEIGHTS = os.path.join(REPO, "golden", "fixtures", "opensora_stdit3_tiny",
                                "model.safetensors")
UPSTREAM_RENAMES = (  # opensora/load.rs: upstream STDiT3 key → ours
    ("embedder.mlp.0.", "embedder.linear_1."),
    ("embedder.mlp.2.", "embedder.linear_2."),
    ("t_block.1.", "t_block.linear."),
    (".attn.qkv.", ".attn.attn.qkv."),
    (".attn.q_norm.weight", ".attn.attn.q_norm.gamma"),
    (".attn.k_norm.weight", ".attn.attn.k_norm.gamma"),
    (".attn.proj.", ".attn.attn.proj."),
    ("scale_shift_table", "scale_shift_table.scale_shift_table"),
)


def check_upstream_fixture(dtype=torch.float64) -> float:
    """Runs the twin, configured as upstream STDiT3 (no temporal sin-cos, no cross QK-norm,
    `pred_sigma`, upstream final-layer t0 branch, positions scaled by the pixel resolution),
    on the cases of golden/gen_opensora_stdit3.py; returns the largest |difference| relative
    to the largest |output|."""
    with open(os.path.join(os.path.dirname(UPSTREAM_WEIGHTS), "config.json")) as f:
        up = json.load(f)
    cfg = StditTwinConfig(
        d_model=up["hidden_size"], n_heads=up["num_heads"], depth=up["depth"],
        d_text=up["caption_channels"], in_channels=up["in_channels"],
        patch_size=tuple(up["patch_size"]), mlp_ratio=up["mlp_ratio"], max_frames=64,
        text_max_len=up["model_max_length"], qk_norm=up["qk_norm"], frequency_dim=256,
        pred_sigma=up["pred_sigma"], input_sq_size=float(up["input_sq_size"]),
        temporal_pos_embed=False, cross_qk_norm=False, final_t0_norm_modulated=True)
    state = {}
    for key, value in load_file(UPSTREAM_WEIGHTS).items():
        if key == "rope.freqs":
            continue
        for old, new in UPSTREAM_RENAMES:
            key = key.replace(old, new)
        state[key] = value
    model = Stdit(cfg)
    model.load_state_dict(state, strict=True)
    model = model.to(dtype).eval()
    cases = load_file(UPSTREAM_CASES)
    names = sorted({k.split(".")[0] for k in cases})
    worst = 0.0
    with torch.no_grad():
        for name in names:
            case = {k.split(".", 1)[1]: v for k, v in cases.items() if k.startswith(name + ".")}
            x, y = case["x"].to(dtype), case["y"].squeeze(1).to(dtype)
            b = x.shape[0]
            mask = case["mask"].expand(b, -1) != 0
            cond = None if "x_mask" not in case else case["x_mask"] == 0
            scale = math.sqrt(float(case["height"][0]) * float(case["width"][0])) / cfg.input_sq_size
            out = model.forward_all(x, case["timestep"].to(dtype), y, case["fps"].to(dtype),
                                    text_pad=~mask, cond_frames=cond, pos_scale=scale)
            want = case["out"].to(dtype)
            diff = (out - want).abs().max().item()
            rel = diff / want.abs().max().item()
            worst = max(worst, rel)
            print(f"upstream case {name}: max |diff| {diff:.3e} (max |out| "
                  f"{want.abs().max().item():.3f})")
    return worst


def main():
    twin, _ = load_tiny()
    count = parameter_count(twin)
    print(f"shipped checkpoint loaded strictly; {count} parameters = checkpoint elements")
    rel = check_upstream_fixture()
    print(f"upstream STDiT3 fixture: worst max|diff| / max|out| = {rel:.2e}")
    assert rel < 1e-5, "twin disagrees with upstream STDiT3"


if __name__ == "__main__":
    main()
