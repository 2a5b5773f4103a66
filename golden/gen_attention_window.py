"""Golden fixtures for vidgen-attention's window attention.

2D: microsoft/Swin-Transformer (`models/swin_transformer.py`): `window_partition`, `window_reverse`,
`WindowAttention` (relative position bias) and the shifted-window attention mask and cyclic shift of
`SwinTransformerBlock`, written out below after the reference (window sizes per axis, so a
non-square window runs through the same code). The square case is cross-checked against timm's
copy of Swin (`timm.models.swin_transformer`).

3D: SwinTransformer/Video-Swin-Transformer (`mmaction/models/backbones/swin_transformer.py`):
`window_partition`, `window_reverse`, `get_window_size`, `compute_mask`, `WindowAttention3D` and
the pad / roll / partition flow of `SwinTransformerBlock3D.forward_part1`, written out below.

Run: python golden/gen_attention_window.py   (writes golden/fixtures/attn_window_*.safetensors)
"""

from __future__ import annotations

from functools import reduce
from operator import mul

import torch
import torch.nn.functional as F
from torch import nn

from common import linear_state, save, seed_everything

GEN = "golden/gen_attention_window.py"


# ---------------------------------------------------------------- Swin (2D), per-axis windows
def window_partition_2d(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws[0], ws[0], w // ws[1], ws[1], c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws[0], ws[1], c)


def window_reverse_2d(windows, ws, h, w):
    b = int(windows.shape[0] / (h * w / ws[0] / ws[1]))
    x = windows.view(b, h // ws[0], w // ws[1], ws[0], ws[1], -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class WindowAttention2d(nn.Module):
    """Swin's WindowAttention (qk_scale=None, no dropout)."""

    def __init__(self, dim, ws, num_heads, qkv_bias=True):
        super().__init__()
        self.dim, self.ws, self.num_heads = dim, ws, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * ws[0] - 1) * (2 * ws[1] - 1), num_heads))
        coords = torch.stack(torch.meshgrid([torch.arange(ws[0]), torch.arange(ws[1])], indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws[0] - 1
        rel[:, :, 1] += ws[1] - 1
        rel[:, :, 0] *= 2 * ws[1] - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


def swin_shift_mask(h, w, ws, ss):
    """SwinTransformerBlock's attn_mask (additive 0 / -100), per-axis window and shift."""
    img_mask = torch.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -ws[0]), slice(-ws[0], -ss[0]), slice(-ss[0], None)):
        for wsl in (slice(0, -ws[1]), slice(-ws[1], -ss[1]), slice(-ss[1], None)):
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition_2d(img_mask, ws).view(-1, ws[0] * ws[1])
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, float(-100.0)).masked_fill(m == 0, float(0.0))


def swin_block_attention(attn, x, ws, ss):
    """The attention part of SwinTransformerBlock.forward: roll, partition, W-MSA, reverse, roll."""
    b, h, w, c = x.shape
    mask = swin_shift_mask(h, w, ws, ss) if max(ss) > 0 else None
    shifted = torch.roll(x, shifts=(-ss[0], -ss[1]), dims=(1, 2)) if max(ss) > 0 else x
    windows = window_partition_2d(shifted, ws).view(-1, ws[0] * ws[1], c)
    out = attn(windows, mask=mask).view(-1, ws[0], ws[1], c)
    out = window_reverse_2d(out, ws, h, w)
    if max(ss) > 0:
        out = torch.roll(out, shifts=(ss[0], ss[1]), dims=(1, 2))
    return out, windows, mask


def swin2d() -> None:
    seed = 11
    seed_everything(seed)
    tensors, params = {}, {}
    cases = {"a": dict(h=8, w=8, ws=(4, 4), ss=(2, 2)), "b": dict(h=8, w=6, ws=(4, 3), ss=(2, 1))}
    dim, heads, batch = 8, 2, 2
    for key, cfg in cases.items():
        attn = WindowAttention2d(dim, cfg["ws"], heads)
        x = torch.randn(batch, cfg["h"], cfg["w"], dim)
        with torch.no_grad():
            out, windows, mask = swin_block_attention(attn, x, cfg["ws"], cfg["ss"])
        if key == "a":
            timm_cross_check(attn, windows, mask)
        tensors.update({
            f"{key}.x": x, f"{key}.out": out, f"{key}.windows": windows, f"{key}.attn_mask": mask,
            f"{key}.relative_position_bias_table": attn.relative_position_bias_table,
            f"{key}.relative_position_index": attn.relative_position_index.to(torch.int64),
            **linear_state(f"{key}.qkv", attn.qkv), **linear_state(f"{key}.proj", attn.proj),
        })
        params.update({f"{key}.{k}": v for k, v in cfg.items()})
    save("attn_window_swin2d", tensors, GEN, seed, d_model=dim, n_heads=heads, **params)


def timm_cross_check(attn, windows, mask) -> None:
    """Our transcription must equal timm's Swin WindowAttention on the same weights."""
    from timm.models.swin_transformer import WindowAttention as TimmWindowAttention

    ref = TimmWindowAttention(attn.dim, attn.num_heads, window_size=attn.ws)
    ref.load_state_dict(attn.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ref(windows, mask), attn(windows, mask))


# ---------------------------------------------------------------- Video Swin (3D)
def window_partition_3d(x, ws):
    b, d, h, w, c = x.shape
    x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).contiguous().view(-1, reduce(mul, ws), c)


def window_reverse_3d(windows, ws, b, d, h, w):
    x = windows.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).contiguous().view(b, d, h, w, -1)


def get_window_size(x_size, window_size, shift_size):
    use_ws, use_ss = list(window_size), list(shift_size)
    for i in range(len(x_size)):
        if x_size[i] <= window_size[i]:
            use_ws[i] = x_size[i]
            use_ss[i] = 0
    return tuple(use_ws), tuple(use_ss)


def compute_mask(d, h, w, ws, ss):
    img_mask = torch.zeros((1, d, h, w, 1))
    cnt = 0
    for ds in (slice(-ws[0]), slice(-ws[0], -ss[0]), slice(-ss[0], None)):
        for hs in (slice(-ws[1]), slice(-ws[1], -ss[1]), slice(-ss[1], None)):
            for wsl in (slice(-ws[2]), slice(-ws[2], -ss[2]), slice(-ss[2], None)):
                img_mask[:, ds, hs, wsl, :] = cnt
                cnt += 1
    mw = window_partition_3d(img_mask, ws).squeeze(-1)
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, float(-100.0)).masked_fill(m == 0, float(0.0))


class WindowAttention3D(nn.Module):
    """Video Swin's WindowAttention3D (qk_scale=None, no dropout)."""

    def __init__(self, dim, ws, num_heads, qkv_bias=True):
        super().__init__()
        self.ws, self.num_heads = ws, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * ws[0] - 1) * (2 * ws[1] - 1) * (2 * ws[2] - 1), num_heads))
        coords = torch.stack(torch.meshgrid(
            [torch.arange(ws[0]), torch.arange(ws[1]), torch.arange(ws[2])], indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        for i in range(3):
            rel[:, :, i] += ws[i] - 1
        rel[:, :, 0] *= (2 * ws[1] - 1) * (2 * ws[2] - 1)
        rel[:, :, 1] *= 2 * ws[2] - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))


def video_swin_prepare(x, window_size, shift_size):
    """BasicLayer's mask + SwinTransformerBlock3D.forward_part1 up to the partition."""
    b, d, h, w, c = x.shape
    ws, ss = get_window_size((d, h, w), window_size, shift_size)
    dp, hp, wp = (-(-n // m) * m for n, m in zip((d, h, w), ws))
    mask = compute_mask(dp, hp, wp, ws, ss)
    x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h, 0, dp - d))
    if any(i > 0 for i in ss):
        x = torch.roll(x, shifts=(-ss[0], -ss[1], -ss[2]), dims=(1, 2, 3))
    else:
        mask = None
    return window_partition_3d(x, ws), mask, ws, ss, (dp, hp, wp)


def swin3d() -> None:
    seed = 12
    seed_everything(seed)
    tensors, params = {}, {}
    cases = {
        # sizes not divisible by the window: padding, 3D shift mask on the padded size
        "pad": dict(size=(3, 5, 6), ws=(2, 4, 4), ss=(1, 2, 2)),
        # T smaller than the window: get_window_size shrinks it and drops its shift
        "clamp": dict(size=(2, 5, 6), ws=(4, 4, 4), ss=(2, 2, 2)),
    }
    for key, cfg in cases.items():
        x = torch.randn(1, *cfg["size"], 2)
        windows, mask, ws, ss, padded = video_swin_prepare(x, cfg["ws"], cfg["ss"])
        tensors.update({
            f"{key}.x": x, f"{key}.windows": windows, f"{key}.attn_mask": mask,
            f"{key}.effective_window": torch.tensor(ws, dtype=torch.int64),
            f"{key}.effective_shift": torch.tensor(ss, dtype=torch.int64),
            f"{key}.padded": torch.tensor(padded, dtype=torch.int64),
        })
        params.update({f"{key}.{k}": v for k, v in cfg.items()})

    # Full shifted 3D window attention on a divisible size (Video Swin attends to padding, which
    # we mask, so outputs are compared where no padding exists).
    dim, heads, ws, ss = 8, 2, (2, 4, 4), (1, 2, 2)
    attn = WindowAttention3D(dim, ws, heads)
    x = torch.randn(2, 4, 8, 8, dim)
    with torch.no_grad():
        windows, mask, ws_e, ss_e, (dp, hp, wp) = video_swin_prepare(x, ws, ss)
        out = attn(windows, mask).view(-1, *(ws_e + (dim,)))
        out = window_reverse_3d(out, ws_e, x.shape[0], dp, hp, wp)
        out = torch.roll(out, shifts=ss_e, dims=(1, 2, 3))
    tensors.update({
        "attn.x": x, "attn.out": out,
        "attn.relative_position_bias_table": attn.relative_position_bias_table,
        "attn.relative_position_index": attn.relative_position_index.to(torch.int64),
        **linear_state("attn.qkv", attn.qkv), **linear_state("attn.proj", attn.proj),
    })
    save("attn_window_swin3d", tensors, GEN, seed, d_model=dim, n_heads=heads,
         attn_window=ws, attn_shift=ss, **params)


if __name__ == "__main__":
    swin2d()
    swin3d()
