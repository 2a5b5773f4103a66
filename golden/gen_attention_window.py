"""Golden fixtures for vidgen-attention's window attention (Swin 2D, Video Swin 3D).

Runs the upstream code itself, loaded by path from two snapshots (see golden/README.md; commits
pinned below, checked by `upstream.py` and recorded in the metadata):

- microsoft/Swin-Transformer `models/swin_transformer.py`: `SwinTransformerBlock` (its shift
  mask, cyclic shift, `window_partition`, `WindowAttention`, `window_reverse`, reverse shift) and
  `WindowAttention` on its own.
- SwinTransformer/Video-Swin-Transformer `mmaction/models/backbones/swin_transformer.py`:
  `get_window_size`, `compute_mask`, and `SwinTransformerBlock3D.forward_part1` (get_window_size,
  pad, roll, `window_partition`, `WindowAttention3D`, `window_reverse`, roll back, crop).

Blocks are built with `norm_layer=nn.Identity`, so `norm1` passes its input through and the
recorded branch is the window attention alone (vidgen's `WindowAttention` has no norm or MLP).
What the attention receives (windows, mask) is recorded with a forward pre-hook on the block's
`attn`. For the 2D block, the attention branch's output is its first `drop_path` call (an
`nn.Identity` at drop rate 0), recorded with a forward hook; for the 3D block it is what
`forward_part1` returns. The padded size (`padded`) is computed as `BasicLayer.forward` computes
it before calling `compute_mask` (ceil to a multiple of the effective window) and checked against
the number of windows `forward_part1` produced.

Cases:
- 2D `a`: square window 4, shift 2 on 8x8, through microsoft's `SwinTransformerBlock`;
  cross-checked against timm 0.6.13's `SwinTransformerBlock` (same weights, whole block).
- 2D `b`: window (4, 3), shift (2, 1) on 8x6. Microsoft's block (and timm 0.6.13's) take a single
  int window, so this case runs through Video Swin's `SwinTransformerBlock3D` with a one-frame
  window (1, 4, 3) on a one-frame input, whose relative position index equals the 2D one. Its
  attention is cross-checked against microsoft's `WindowAttention` built with the tuple window
  (4, 3), which that class accepts, on the same windows, mask and weights.
- 3D `pad`, `clamp`: windows and mask fed to `WindowAttention3D` for sizes no window divides
  and for T smaller than the window (`get_window_size` shrinks it and drops its shift).
- 3D `attn`: the output of `forward_part1` for a shifted window on a divisible size (Video Swin
  attends to padding, which vidgen masks, so outputs are compared where no padding exists).

Relative position bias tables are drawn from a unit normal after construction (upstream
initialises them with std 0.02), so the bias visibly moves the scores; linear layers keep their
seeded default initialisation.

Stand-ins for import-time dependencies of Video Swin's file that are not needed to build or run
the block:
- `mmcv.runner.load_checkpoint`: mmcv is not installed; only `SwinTransformer3D.init_weights`
  with a pretrained path calls it, so the stand-in raises if called.
- `mmaction.utils.get_root_logger`: only used by `init_weights`; the stand-in returns a standard
  `logging` logger.
- `mmaction.models.builder.BACKBONES`: an mmcv `Registry`; the stand-in's `register_module()`
  returns the decorated class unchanged.
- the packages `mmaction`, `mmaction.models`, `mmaction.models.backbones` are registered as empty
  modules so that their `__init__.py` files (which import every mmaction model and mmcv) do not
  run.
timm (`DropPath`, `trunc_normal_`, `to_2tuple`) and einops are the real, pinned packages.
Microsoft's file also tries to import its optional fused CUDA window kernel
(`kernels.window_process`); that import fails here, upstream falls back to `None` and prints a
warning, and the blocks use the default unfused path.

Run: python golden/gen_attention_window.py   (writes golden/fixtures/attn_window_*.safetensors)
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from common import linear_state, save, seed_everything
from upstream import load, snapshot, stub

GEN = "golden/gen_attention_window.py"
SWIN = (
    "microsoft/Swin-Transformer",
    "Swin-Transformer",
    "f82860bfb5225915aca09c3227159ee9e1df874d",
)
VIDEO_SWIN = (
    "SwinTransformer/Video-Swin-Transformer",
    "Video-Swin-Transformer",
    "db018fb8896251711791386bbd2127562fd8d6a6",
)
DIM, HEADS = 8, 2


class _Registry:
    """Stand-in for mmcv's `Registry`: registration is a no-op."""

    def register_module(self, name=None, **kwargs):
        return lambda obj: obj


def _no_checkpoint(*args, **kwargs):
    raise RuntimeError("load_checkpoint is a stand-in here: no checkpoints are loaded")


def upstream_swin():
    """microsoft/Swin-Transformer `models/swin_transformer.py`, and its snapshot's metadata."""
    repo, name, commit = SWIN
    root, head = snapshot(name, commit)
    module = load(root, "models/swin_transformer.py", "swin_transformer")
    return module, {"upstream_swin_repo": repo, "upstream_swin_commit": head}


def upstream_video_swin():
    """Video-Swin-Transformer's backbone file, and its snapshot's metadata."""
    repo, name, commit = VIDEO_SWIN
    root, head = snapshot(name, commit)
    stub("mmcv.runner", load_checkpoint=_no_checkpoint)
    stub("mmaction.utils", get_root_logger=lambda *a, **k: logging.getLogger("mmaction"))
    stub("mmaction.models.builder", BACKBONES=_Registry())
    stub("mmaction.models.backbones")
    module = load(
        root, "mmaction/models/backbones/swin_transformer.py",
        "mmaction.models.backbones.swin_transformer",
    )
    return module, {"upstream_video_swin_repo": repo, "upstream_video_swin_commit": head}


def randomize_bias_table(attn: nn.Module) -> None:
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()


def record_attention_input(block: nn.Module) -> dict:
    """Records the windows and mask that `block.attn` receives (first call)."""
    seen = {}

    def hook(module, args, kwargs):
        seen.setdefault("windows", args[0].clone())
        mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
        seen.setdefault("mask", None if mask is None else mask.clone())

    block.attn.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def attention_state(key: str, attn: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{key}.relative_position_bias_table": attn.relative_position_bias_table,
        f"{key}.relative_position_index": attn.relative_position_index.to(torch.int64),
        **linear_state(f"{key}.qkv", attn.qkv), **linear_state(f"{key}.proj", attn.proj),
    }


def padded_size(size, window):
    """`BasicLayer.forward`'s `Dp, Hp, Wp`: each axis rounded up to a multiple of the window."""
    return tuple(int(math.ceil(n / w)) * w for n, w in zip(size, window))


def video_swin_part1(vs, block, x, window, shift):
    """`BasicLayer.forward`'s mask, then `block.forward_part1`.

    Returns (out, windows, mask, effective window, effective shift, padded size).
    """
    b, d, h, w, _ = x.shape
    ws, ss = vs.get_window_size((d, h, w), window, shift)
    padded = padded_size((d, h, w), ws)
    mask = vs.compute_mask(*padded, ws, ss, x.device)
    seen = record_attention_input(block)
    with torch.no_grad():
        out = block.forward_part1(x, mask)
    n_windows = b * math.prod(p // s for p, s in zip(padded, ws))
    assert seen["windows"].shape[0] == n_windows, (seen["windows"].shape, padded, ws)
    return out, seen["windows"], seen["mask"], ws, ss, padded


# ---------------------------------------------------------------- Swin (2D)
def swin2d_square(swin, x, ws, ss):
    """Case `a`: microsoft's SwinTransformerBlock, cross-checked against timm 0.6.13's."""
    b, h, w, c = x.shape
    block = swin.SwinTransformerBlock(
        c, (h, w), HEADS, window_size=ws, shift_size=ss, norm_layer=nn.Identity).eval()
    randomize_bias_table(block.attn)
    seen = record_attention_input(block)
    branch = []
    block.drop_path.register_forward_hook(lambda m, args, out: branch.append(out.clone()))
    with torch.no_grad():
        full = block(x.view(b, h * w, c))
    out = branch[0].view(b, h, w, c)

    from timm.models.swin_transformer import SwinTransformerBlock as TimmBlock

    ref = TimmBlock(c, (h, w), HEADS, window_size=ws, shift_size=ss, norm_layer=nn.Identity).eval()
    ref.load_state_dict(block.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ref(x.view(b, h * w, c)), full, rtol=0, atol=0)
    return block.attn, out, seen["windows"], seen["mask"]


def swin2d_rect(swin, vs, x, ws, ss):
    """Case `b`: Video Swin's block, one-frame window; microsoft's WindowAttention cross-check."""
    c = x.shape[-1]
    block = vs.SwinTransformerBlock3D(
        c, HEADS, window_size=(1, *ws), shift_size=(0, *ss), norm_layer=nn.Identity).eval()
    randomize_bias_table(block.attn)
    attn_out = []
    block.attn.register_forward_hook(lambda m, args, out: attn_out.append(out.clone()))
    out, windows, mask, ws_e, ss_e, _ = video_swin_part1(
        vs, block, x.unsqueeze(1), (1, *ws), (0, *ss))
    assert ws_e == (1, *ws) and ss_e == (0, *ss), (ws_e, ss_e)

    ref = swin.WindowAttention(c, tuple(ws), HEADS).eval()
    assert torch.equal(ref.relative_position_index, block.attn.relative_position_index)
    ref.load_state_dict(block.attn.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ref(windows, mask=mask), attn_out[0], rtol=0, atol=0)
    return block.attn, out.squeeze(1), windows, mask


def swin2d(swin, swin_meta, vs, vs_meta) -> None:
    seed = 11
    seed_everything(seed)
    tensors, params = {}, {}
    cases = {"a": dict(h=8, w=8, ws=(4, 4), ss=(2, 2)), "b": dict(h=8, w=6, ws=(4, 3), ss=(2, 1))}
    batch = 2
    for key, cfg in cases.items():
        x = torch.randn(batch, cfg["h"], cfg["w"], DIM)
        if key == "a":
            attn, out, windows, mask = swin2d_square(swin, x, cfg["ws"][0], cfg["ss"][0])
        else:
            attn, out, windows, mask = swin2d_rect(swin, vs, x, cfg["ws"], cfg["ss"])
        tensors.update({
            f"{key}.x": x, f"{key}.out": out, f"{key}.windows": windows, f"{key}.attn_mask": mask,
            **attention_state(key, attn),
        })
        params.update({f"{key}.{k}": v for k, v in cfg.items()})
    params["a.reference"] = (
        "Swin-Transformer SwinTransformerBlock (timm SwinTransformerBlock cross-check)")
    params["b.reference"] = (
        "Video-Swin-Transformer SwinTransformerBlock3D.forward_part1, window (1, 4, 3) "
        "(Swin-Transformer WindowAttention cross-check)")
    save("attn_window_swin2d", tensors, GEN, seed, d_model=DIM, n_heads=HEADS,
         **swin_meta, **vs_meta, **params)


# ---------------------------------------------------------------- Video Swin (3D)
def swin3d(vs, vs_meta) -> None:
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
        block = vs.SwinTransformerBlock3D(
            2, 1, window_size=cfg["ws"], shift_size=cfg["ss"], norm_layer=nn.Identity).eval()
        _, windows, mask, ws, ss, padded = video_swin_part1(vs, block, x, cfg["ws"], cfg["ss"])
        tensors.update({
            f"{key}.x": x, f"{key}.windows": windows, f"{key}.attn_mask": mask,
            f"{key}.effective_window": torch.tensor(ws, dtype=torch.int64),
            f"{key}.effective_shift": torch.tensor(ss, dtype=torch.int64),
            f"{key}.padded": torch.tensor(padded, dtype=torch.int64),
        })
        params.update({f"{key}.{k}": v for k, v in cfg.items()})

    ws, ss = (2, 4, 4), (1, 2, 2)
    block = vs.SwinTransformerBlock3D(
        DIM, HEADS, window_size=ws, shift_size=ss, norm_layer=nn.Identity).eval()
    randomize_bias_table(block.attn)
    x = torch.randn(2, 4, 8, 8, DIM)
    out, *_ = video_swin_part1(vs, block, x, ws, ss)
    tensors.update({"attn.x": x, "attn.out": out, **attention_state("attn", block.attn)})
    save("attn_window_swin3d", tensors, GEN, seed, d_model=DIM, n_heads=HEADS,
         attn_window=ws, attn_shift=ss, **vs_meta, **params)


if __name__ == "__main__":
    swin_module, swin_meta = upstream_swin()
    video_swin_module, video_swin_meta = upstream_video_swin()
    swin2d(swin_module, swin_meta, video_swin_module, video_swin_meta)
    swin3d(video_swin_module, video_swin_meta)
