"""PyTorch twin of vidgen's LinGen-style DiT, for CPU benchmarks.

Mirrors, operation for operation, the Rust of
- `crates/vidgen-models/src/lingen.rs` and `lingen/block.rs` (`LinGenDit`, `MateBlock`: adaLN ·
  RMSNorm → MA-branch + TE-branch under one gate → cross-attention → adaLN · RMSNorm → SwiGLU),
- `crates/vidgen-ssm`: `mamba2.rs` and `mamba2/norm.rs` (Mamba2 with its gated RMSNorm; the SSD scan
  is mamba-ssm's own `ssd_minimal_discrete`, see `load_ssd_minimal_discrete`), `bidirectional.rs`,
  `scan_order.rs` (snake permutations, `RotaryMajorScan`) and `scan_order/review.rs` (review tokens:
  the token grid average-pooled over non-overlapping windows, partial windows averaging what they
  hold),
- `crates/vidgen-attention`: `window.rs` and `window/{bias,mask,partition,tesa}.rs` (TESA: Swin
  window attention over 3D windows with relative position bias, shifted by half a window on odd
  layers, zero padding masked as keys; windows shrink to inputs smaller than them),
- the layers shared with the STDiT twin (`stdit.py`: patch embedding, timestep embedder, adaLN,
  cross-attention, RMSNorm) and `vidgen-nn`'s `FactorizedPosEmbed` and `SwiGluMlp`.

Parameter names and shapes are those `save_checkpoint` writes (burn-store's `BurnToPyTorchAdapter`),
so `LinGenTwin(config).load_state_dict(load_file(weights), strict=True)` loads a checkpoint of the
Rust model as it is; the configuration is `LinGenConfig`'s JSON (`LinGenConfig::save`).
Attention runs through `torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from stdit import (AdaLnModulation, MultiHeadAttention, PatchEmbed3d, RmsNorm, TimestepEmbedder,
                   modulate, unpatchify_3d)


# --- configuration -----------------------------------------------------------------------------


@dataclass
class LinGenTwinConfig:
    """`LinGenConfig` (lingen.rs) with its defaults; `from_json` reads `LinGenConfig::save`'s file."""

    in_channels: int
    d_model: int
    depth: int
    n_heads: int
    d_text: int
    patch_size: tuple = (1, 2, 2)
    max_grid: tuple = (16, 64, 64)
    mlp_hidden_dim: int | None = None
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    mamba_head_dim: int = 64
    chunk_size: int = 64
    bi_merge: str = "Sum"
    tesa_window: tuple = (8, 4, 4)
    review_pool: tuple | None = (4, 8, 8)
    norm_eps: float = 1e-6
    adaln_zero_init: bool = True

    @classmethod
    def from_json(cls, path: str) -> "LinGenTwinConfig":
        with open(path) as f:
            raw = json.load(f)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: fields the twin does not know: {sorted(unknown)}")
        cfg = cls(**raw)
        if cfg.bi_merge not in ("Sum", "Mean"):
            raise ValueError(f"{path}: bi_merge {cfg.bi_merge!r}: the twin implements Sum and Mean")
        return cfg

    def mlp_hidden(self) -> int:
        """`LinGenConfig::mlp_hidden`: `⌈8·d/3⌉` rounded up to a multiple of 8 unless set."""
        if self.mlp_hidden_dim is not None:
            return self.mlp_hidden_dim
        third = -(-8 * self.d_model // 3)
        return -(-third // 8) * 8

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def mamba_heads(self) -> int:
        return self.d_inner // self.mamba_head_dim


# --- the SSD scan: mamba-ssm's own reference -----------------------------------------------------


def load_ssd_minimal_discrete():
    """mamba-ssm's `ssd_minimal_discrete` (Listing 1 of the Mamba-2 paper). The plain import fails
    on a machine without CUDA (the package `__init__` needs the extension `selective_scan_cuda`), so
    the functions `segsum` and `ssd_minimal_discrete` are then executed from the installed
    `mamba_ssm/modules/ssd_minimal.py` by themselves, as golden/gen_ssm_mamba2.py does. Returns the
    function and where it came from."""
    try:
        from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete

        return ssd_minimal_discrete, "mamba_ssm.modules.ssd_minimal (import)"
    except ImportError:
        pass
    from einops import rearrange, repeat

    spec = importlib.util.find_spec("mamba_ssm")
    if spec is None:
        raise SystemExit("mamba_ssm is not installed (golden/README.md: pip install --no-deps ...)")
    path = os.path.join(os.path.dirname(spec.origin), "modules", "ssd_minimal.py")
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    names = {"segsum", "ssd_minimal_discrete"}
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {n.name for n in wanted} == names, f"{path}: missing {names}"
    scope = {"torch": torch, "F": F, "rearrange": rearrange, "repeat": repeat}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), scope)
    return scope["ssd_minimal_discrete"], f"{path} (functions exec'd without the package)"


SSD_MINIMAL, SSD_SOURCE = load_ssd_minimal_discrete()


def ssd_chunked(x, a, b, c, chunk: int) -> torch.Tensor:
    """`ssd::ssd_chunked` without initial state: `ssd_minimal_discrete` on sequences padded at the
    end to a chunk multiple (`x`, `b`, `c` with zeros, `a` with 0, i.e. no decay), output cropped.
    The scan is causal, so the padding changes nothing before it."""
    length = x.shape[1]
    pad = (-length) % chunk
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, 0, 0, pad))
        c = F.pad(c, (0, 0, 0, 0, 0, pad))
    y, _ = SSD_MINIMAL(x, a, b, c, chunk)
    return y[:, :length]


# --- vidgen-nn layers not in the STDiT twin --------------------------------------------------------


class FactorizedPosEmbed(nn.Module):
    """pos_embed.rs `FactorizedPosEmbed`: `pos_t[t] + pos_h[h] + pos_w[w]` per token, raster order."""

    def __init__(self, d_model: int, max_grid: tuple):
        super().__init__()
        self.pos_t = nn.Parameter(torch.randn(max_grid[0], d_model) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(max_grid[1], d_model) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(max_grid[2], d_model) * 0.02)

    def forward(self, grid: tuple) -> torch.Tensor:
        t, h, w = grid
        d = self.pos_t.shape[1]
        pos = (self.pos_t[:t, None, None] + self.pos_h[None, :h, None]
               + self.pos_w[None, None, :w])
        return pos.reshape(t * h * w, d)


class SwiGlu(nn.Module):
    """Burn's `SwiGlu`: `silu(linear_inner(x)) · linear_outer(x)`."""

    def __init__(self, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.linear_inner = nn.Linear(d_in, d_out, bias=bias)
        self.linear_outer = nn.Linear(d_in, d_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.linear_inner(x)) * self.linear_outer(x)


class SwiGluMlp(nn.Module):
    """mlp.rs `SwiGluMlp` (no biases by default): `linear_down(swiglu(x))`."""

    def __init__(self, d_model: int, hidden: int, bias: bool = False):
        super().__init__()
        self.swiglu = SwiGlu(d_model, hidden, bias)
        self.linear_down = nn.Linear(hidden, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_down(self.swiglu(x))


# --- Mamba2 (vidgen-ssm) -----------------------------------------------------------------------


class GatedRmsNorm(nn.Module):
    """norm.rs `GatedRmsNorm` (mamba-ssm's `RMSNormGated`, gate before the norm, one group):
    `rmsnorm(x · silu(z)) · weight`, eps 1e-5."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x * F.silu(z)
        shape = x.shape
        g = x.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        g = g * torch.rsqrt(g.square().mean(-1, keepdim=True) + self.eps)
        return g.reshape(shape) * self.weight


class Mamba2(nn.Module):
    """mamba2.rs `Mamba2` with `LinGenConfig::mamba_config` (one group, no projection biases, conv
    bias, `dt_limit` (0, ∞), gate before the norm):

        [z, xBC, dt] = in_proj(u);  xBC = silu(causal depthwise conv1d(xBC))
        y = SSD(x·dt, dt·A, B, C) + D·x,  A = −exp(a_log),  dt = softplus(dt + dt_bias)
        out = out_proj(gated_rmsnorm(y, z))
    """

    def __init__(self, cfg: LinGenTwinConfig):
        super().__init__()
        d, di, n, h = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.mamba_heads
        conv = di + 2 * n
        self.d_inner, self.d_state, self.n_heads = di, n, h
        self.head_dim, self.chunk = cfg.mamba_head_dim, cfg.chunk_size
        self.in_proj = nn.Linear(d, 2 * di + 2 * n + h, bias=False)
        self.conv1d = nn.Conv1d(conv, conv, cfg.d_conv, groups=conv, padding=cfg.d_conv - 1)
        self.dt_bias = nn.Parameter(torch.zeros(h))
        self.a_log = nn.Parameter(torch.zeros(h))
        self.d = nn.Parameter(torch.ones(h))
        self.norm = GatedRmsNorm(di, di)
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        bs, length, _ = u.shape
        di, n, h, p = self.d_inner, self.d_state, self.n_heads, self.head_dim
        z, xbc, dt = self.in_proj(u).split([di, di + 2 * n, h], dim=-1)
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
        x, b, c = xbc.split([di, n, n], dim=-1)
        x = x.reshape(bs, length, h, p)
        b = b[:, :, None].expand(bs, length, h, n)
        c = c[:, :, None].expand(bs, length, h, n)
        dt = F.softplus(dt + self.dt_bias)
        a = dt * -torch.exp(self.a_log)
        y = ssd_chunked(x * dt[..., None], a, b, c, self.chunk)
        y = (y + x * self.d[:, None]).reshape(bs, length, di)
        return self.out_proj(self.norm(y, z))


class BiMamba2(nn.Module):
    """bidirectional.rs `BiMamba2` (merge `Sum` or `Mean`): two directions with their own weights."""

    def __init__(self, cfg: LinGenTwinConfig):
        super().__init__()
        self.mamba_fwd, self.mamba_bwd = Mamba2(cfg), Mamba2(cfg)
        self.mean = cfg.bi_merge == "Mean"

    def merge(self, y_f: torch.Tensor, y_b: torch.Tensor) -> torch.Tensor:
        return (y_f + y_b) * 0.5 if self.mean else y_f + y_b


def snake_permutation(axes: tuple, grid: tuple) -> torch.Tensor:
    """scan_order.rs `ScanOrder::permutation` of a snake order over `axes` (slowest first; axis
    0/1/2 = T/H/W): scan position `i` holds raster token `perm[i]`, consecutive tokens are grid
    neighbours (each inner axis flips direction whenever the axes around it advance)."""
    n = [grid[a] for a in axes]
    raster_strides = (grid[1] * grid[2], grid[2], 1)
    stride = [raster_strides[a] for a in axes]
    j0 = torch.arange(n[0])[:, None, None]
    j1 = torch.arange(n[1])[None, :, None]
    j2 = torch.arange(n[2])[None, None, :]
    a1 = torch.where(j0 % 2 == 1, n[1] - 1 - j1, j1)
    a2 = torch.where((j0 * n[1] + j1) % 2 == 1, n[2] - 1 - j2, j2)
    return (j0 * stride[0] + a1 * stride[1] + a2 * stride[2]).reshape(-1)


ROTARY_MAJOR_AXES = ((0, 1, 2), (2, 0, 1), (1, 2, 0))
"""`RotaryMajorScan::for_layer(k)`: snake orders over (T, H, W), (W, T, H), (H, W, T), k mod 3."""


def review_tokens(x: torch.Tensor, grid: tuple, pool: tuple) -> torch.Tensor:
    """review.rs `ReviewTokens::summarize`: `[B, t·h·w, C]` average-pooled over non-overlapping
    `pool` windows (partial edge windows average what they hold: `ceil_mode`, no padding) →
    `[B, ⌈t/pt⌉·⌈h/ph⌉·⌈w/pw⌉, C]` in raster order of the pooled grid."""
    b, _, c = x.shape
    v = x.reshape(b, *grid, c).permute(0, 4, 1, 2, 3)
    pooled = F.avg_pool3d(v, kernel_size=pool, stride=pool, ceil_mode=True)
    return pooled.flatten(2).transpose(1, 2)


# --- TESA (vidgen-attention window attention) ------------------------------------------------------


def window_geometry(size: tuple, window: tuple, shift: tuple):
    """mask.rs `WindowGeometry::new`: a window (and its shift) shrinks to an axis no longer than it;
    the input is padded to a window multiple."""
    win = tuple(size[a] if size[a] <= window[a] else window[a] for a in range(3))
    sh = tuple(0 if size[a] <= window[a] else shift[a] for a in range(3))
    padded = tuple(-(-size[a] // win[a]) * win[a] for a in range(3))
    return win, sh, padded


def relative_position_index(effective: tuple, table_window: tuple) -> torch.Tensor:
    """bias.rs `relative_position_index`: `[N, N]` rows of the `(2Wt−1)(2Wh−1)(2Ww−1)` table for
    the tokens of an `effective` window, offsets measured in the table's (`table_window`) strides."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in effective], indexing="ij"))
    coords = coords.reshape(3, -1)
    rel = coords[:, :, None] - coords[:, None, :] + torch.tensor(table_window)[:, None, None] - 1
    mh, mw = 2 * table_window[1] - 1, 2 * table_window[2] - 1
    return rel[0] * mh * mw + rel[1] * mw + rel[2]


def partition(x: torch.Tensor, window: tuple) -> torch.Tensor:
    """partition.rs `window_partition_3d`: `[B, T, H, W, C]` → `[B·nW, Wt·Wh·Ww, C]`, batch-major,
    windows and the tokens inside them in raster order."""
    b, t, h, w, c = x.shape
    wt, wh, ww = window
    x = x.reshape(b, t // wt, wt, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, wt * wh * ww, c)


def unpartition(windows: torch.Tensor, window: tuple, size: tuple) -> torch.Tensor:
    """partition.rs `window_reverse_3d`, the inverse of `partition`."""
    (wt, wh, ww), (t, h, w) = window, size
    c = windows.shape[-1]
    x = windows.reshape(-1, t // wt, h // wh, w // ww, wt, wh, ww, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(-1, t, h, w, c)


def window_mask(size: tuple, win: tuple, shift: tuple, padded: tuple) -> torch.Tensor | None:
    """mask.rs `WindowGeometry::window_mask`: `[nW, N, N]`, `True` = blocked: key and query in
    different shifted regions (Swin's slices `[0, P−M)`, `[P−M, P−s)`, `[P−s, P)` per axis), or a
    padded key for a real query. `None` without shift and padding."""
    if all(s == 0 for s in shift) and tuple(padded) == tuple(size):
        return None
    region, pad = [], []
    for a in range(3):
        p = torch.arange(padded[a])
        n, m, s = padded[a], win[a], shift[a]
        r = torch.zeros_like(p) if s == 0 else (p >= n - m).long() + (p >= n - s).long()
        region.append(r)
        pad.append((p + s) % n >= size[a])
    shape = tuple(padded)
    labels = ((region[0][:, None, None] * 3 + region[1][None, :, None]) * 3
              + region[2][None, None, :]).expand(shape)
    is_pad = pad[0][:, None, None] | pad[1][None, :, None] | pad[2][None, None, :]
    labels = partition(labels[None, ..., None].float(), win)[..., 0]  # [nW, N]
    is_pad = partition(is_pad[None, ..., None].float(), win)[..., 0] > 0.5
    different = labels[:, :, None] != labels[:, None, :]
    return different | (is_pad[:, None, :] & ~is_pad[:, :, None])


class WindowAttention(nn.Module):
    """window.rs `WindowAttention` with `TesaConfig`'s layer `k` (shift ⌊W/2⌋ on odd layers, `qkv`
    bias, scale `1/√Dh`): pad, roll by −shift, partition, per window
    `softmax(QKᵀ·scale + bias + mask)·V` (SDPA with an additive float mask), `proj`, reverse,
    roll back, crop."""

    def __init__(self, d_model: int, n_heads: int, window: tuple, layer: int):
        super().__init__()
        self.n_heads, self.window = n_heads, tuple(window)
        self.shift = tuple(w // 2 for w in window) if layer % 2 == 1 else (0, 0, 0)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(rows, n_heads) * 0.02)
        self._plans = {}

    def plan(self, size: tuple, device, dtype):
        key = (tuple(size), device, dtype)
        if key not in self._plans:
            win, shift, padded = window_geometry(size, self.window, self.shift)
            index = relative_position_index(win, self.window).to(device)
            mask = window_mask(size, win, shift, padded)
            if mask is not None:
                mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
            self._plans[key] = (win, shift, padded, index, mask)
        return self._plans[key]

    def forward(self, x: torch.Tensor, grid: tuple) -> torch.Tensor:
        """`x` `[B, t·h·w, C]` in raster order of `grid` → same."""
        b, length, c = x.shape
        win, shift, padded, index, mask = self.plan(grid, x.device, x.dtype)
        v = x.reshape(b, *grid, c)
        v = F.pad(v, (0, 0, 0, padded[2] - grid[2], 0, padded[1] - grid[1],
                      0, padded[0] - grid[0]))
        if any(shift):
            v = torch.roll(v, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = partition(v, win)
        bw, n, _ = windows.shape
        hd = c // self.n_heads
        q, k, val = self.qkv(windows).reshape(bw, n, 3, self.n_heads, hd).permute(2, 0, 3, 1, 4)
        n_heads = self.n_heads
        bias = self.relative_position_bias_table[index.reshape(-1)].reshape(n, n, n_heads)
        bias = bias.permute(2, 0, 1)[None]  # [1, heads, N, N]
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias.reshape(1, 1, n_heads, n, n) + mask[None, :, None]).expand(
                bw // nw, nw, n_heads, n, n).reshape(bw, n_heads, n, n)
        out = F.scaled_dot_product_attention(q, k, val, attn_mask=bias)
        out = self.proj(out.transpose(1, 2).reshape(bw, n, c))
        y = unpartition(out, win, padded)
        if any(shift):
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
        return y[:, :grid[0], :grid[1], :grid[2]].reshape(b, length, c)


# --- the model -----------------------------------------------------------------------------------


class MateBlock(nn.Module):
    """block.rs `MateBlock` (fast path):

        [s1, c1, g1, s2, c2, g2] = adaLN(t_emb)
        h = modulate(rmsnorm1(x), s1, c1)
        x = x + g1 · (MA(h) + TE(h))
        x = x + cross_attn(x, text)
        x = x + g2 · swiglu(modulate(rmsnorm2(x), s2, c2))
    """

    def __init__(self, cfg: LinGenTwinConfig, layer: int):
        super().__init__()
        d = cfg.d_model
        self.norm1 = RmsNorm(d, cfg.norm_eps)
        self.bimamba = BiMamba2(cfg)
        self.tesa = WindowAttention(d, cfg.n_heads, cfg.tesa_window, layer)
        self.cross_attn = MultiHeadAttention(d, cfg.n_heads, cfg.d_text, False, cfg.norm_eps)
        self.norm2 = RmsNorm(d, cfg.norm_eps)
        self.mlp = SwiGluMlp(d, cfg.mlp_hidden())
        self.adaln = AdaLnModulation(d, d, 6)
        self.scan_axes = ROTARY_MAJOR_AXES[layer % 3]
        self.review_pool = None if cfg.review_pool is None else tuple(cfg.review_pool)
        self._perms = {}

    def permutation(self, grid: tuple, device):
        key = (tuple(grid), device)
        if key not in self._perms:
            perm = snake_permutation(self.scan_axes, grid).to(device)
            self._perms[key] = (perm, torch.argsort(perm))
        return self._perms[key]

    def ma_branch(self, h: torch.Tensor, grid: tuple) -> torch.Tensor:
        """block.rs `ma_branch`: scan order, review tokens prepended to the forward and to the
        reversed scan, both Mamba2 directions, review outputs dropped, merge, raster order."""
        perm, inverse = self.permutation(grid, h.device)
        scanned = h[:, perm]
        bi = self.bimamba
        if self.review_pool is None:
            y_f = bi.mamba_fwd(scanned)
            y_b = bi.mamba_bwd(scanned.flip(1)).flip(1)
        else:
            summary = review_tokens(h, grid, self.review_pool)
            r, n = summary.shape[1], scanned.shape[1]
            y_f = bi.mamba_fwd(torch.cat([summary, scanned], 1))[:, r:]
            y_b = bi.mamba_bwd(torch.cat([summary, scanned.flip(1)], 1))[:, r:].flip(1)
            assert y_f.shape[1] == n
        return bi.merge(y_f, y_b)[:, inverse]

    def forward(self, x, cond, text, grid, text_pad=None):
        m = self.adaln(cond).chunk(6, dim=1)
        h = modulate(self.norm1(x), m[0], m[1])
        x = x + (self.ma_branch(h, grid) + self.tesa(h, grid)) * m[2][:, None]
        x = x + self.cross_attn(x, text, key_padding=text_pad)
        h = modulate(self.norm2(x), m[3], m[4])
        return x + self.mlp(h) * m[5][:, None]


class LinGenTwin(nn.Module):
    """lingen.rs `LinGenDit`: patch embedding + factorized positions, timestep embedding, the MATE
    blocks (block `k` scans in `RotaryMajorScan::for_layer(k)`), RMSNorm · adaLN, linear,
    unpatchify. `forward(x [B, C, T, H, W], t [B] (flow time × 1000), text [B, L, d_text],
    text_pad [B, L] bool, True = padded)` → velocity `[B, C, T, H, W]`."""

    def __init__(self, cfg: LinGenTwinConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.patch_size = tuple(cfg.patch_size)
        self.x_embedder = PatchEmbed3d(cfg.in_channels, d, self.patch_size)
        self.pos_embed = FactorizedPosEmbed(d, cfg.max_grid)
        self.t_embedder = TimestepEmbedder(256, d)
        self.blocks = nn.ModuleList(MateBlock(cfg, k) for k in range(cfg.depth))
        self.final_norm = RmsNorm(d, cfg.norm_eps)
        self.final_adaln = AdaLnModulation(d, d, 2)
        out = self.patch_size[0] * self.patch_size[1] * self.patch_size[2] * cfg.in_channels
        self.final_linear = nn.Linear(d, out)

    def forward(self, x, t, text, text_pad=None):
        _, _, tt, hh, ww = x.shape
        grid = (tt // self.patch_size[0], hh // self.patch_size[1], ww // self.patch_size[2])
        h = self.x_embedder(x) + self.pos_embed(grid)[None]
        cond = self.t_embedder(t)
        for block in self.blocks:
            h = block(h, cond, text, grid, text_pad)
        shift, scale = self.final_adaln(cond).chunk(2, dim=1)
        h = modulate(self.final_norm(h), shift, scale)
        return unpatchify_3d(self.final_linear(h), grid, self.patch_size)


def load(config_path: str, weights_path: str) -> LinGenTwin:
    """The twin of a Rust `LinGenDit` from its config JSON and `save_checkpoint` file (strict)."""
    from safetensors.torch import load_file

    twin = LinGenTwin(LinGenTwinConfig.from_json(config_path))
    twin.load_state_dict(load_file(weights_path), strict=True)
    return twin
