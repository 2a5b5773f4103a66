"""Golden fixtures for vidgen-vae's causal temporal autoencoder (Open-Sora 1.2, report sec. 3.1).

Runs Open-Sora's own `opensora/models/vae/vae_temporal.py` (`CausalConv3d`, `ResBlock`, `Encoder`,
`Decoder`, `VAE_Temporal`) and its `opensora/models/vae/utils.py` (`DiagonalGaussianDistribution`),
loaded by path from the snapshot `golden/.upstream/Open-Sora` at tag v1.2.0 (see golden/README.md;
`upstream.py` checks the tag, and the commit goes into the metadata). A tiny `VAE_Temporal` is
built through the upstream constructor: in/out 4, latent 4, embed 4, filters 4, 1 res block,
multipliers (1, 1, 2, 2), temporal downsample (False, True, True) (4x in time), 2 groups.

Stand-ins for imports of `vae_temporal.py` that are not needed to build or run the model:
- `opensora.registry.MODELS`: an mmengine `Registry` (mmengine is not installed); the stand-in's
  `register_module(...)` returns the decorated class or function unchanged.
- `opensora.utils.ckpt_utils.load_checkpoint`: that module imports colossalai at import time; it is
  only called by `VAE_Temporal_SD(from_pretrained=...)`, which the generator does not use, so the
  stand-in raises if called.
- the packages `opensora`, `opensora.models`, `opensora.models.vae` are registered as empty modules
  so that their `__init__.py` files, which import every Open-Sora model and its dependencies, do
  not run; `vae_temporal.py`'s relative `from .utils import ...` then finds the real `utils.py`.

Outputs (`norm=clip`) are upstream's `VAE_Temporal.encode(x)` (front-pads the clip with zero
frames to a multiple of the time factor; `moments` = posterior mean and clamped logvar) and
`VAE_Temporal.decode(posterior.mode(), num_frames)` (drops the padded frames again), for
T = 9, 6, 1.

`norm=frame` is vidgen's causal, streamable variant with per-frame GroupNorm statistics; Open-Sora
has no counterpart. Its expected values come from the same upstream modules and weights with every
`nn.GroupNorm` replaced by `PerFrameGroupNorm` below, which applies that same torch GroupNorm to
each frame separately.

Computed in float64 from the float32 weights and inputs (stored as float32), so that the
comparison measures only the Rust side's float32 rounding.

Fixture: vae_c3d_temporal.safetensors (weights under their Open-Sora keys; inputs `in.*`;
outputs `out.<norm>.<case>.{moments,recon}`).
"""

import copy

import torch
import torch.nn as nn

from common import save, seed_everything
from upstream import load, snapshot, stub

SEED = 0
REPO, TAG = "hpcaitech/Open-Sora", "v1.2.0"
CFG = dict(
    in_out_channels=4,
    latent_embed_dim=4,
    embed_dim=4,
    filters=4,
    num_res_blocks=1,
    channel_multipliers=(1, 1, 2, 2),
    temporal_downsample=(False, True, True),
    num_groups=2,
    activation_fn="swish",
)


class _Registry:
    """Stand-in for mmengine's `Registry`: registration is a no-op."""

    def register_module(self, name=None, **kwargs):
        return lambda obj: obj


def _no_checkpoint(*args, **kwargs):
    raise RuntimeError("load_checkpoint is a stand-in here: no checkpoints are loaded")


def upstream_vae_temporal():
    """Loads `vae_temporal.py` (and the real `utils.py`) from the snapshot."""
    root, commit = snapshot("Open-Sora", TAG)
    stub("opensora.registry", MODELS=_Registry())
    stub("opensora.utils.ckpt_utils", load_checkpoint=_no_checkpoint)
    stub("opensora.models.vae")
    load(root, "opensora/models/vae/utils.py", "opensora.models.vae.utils")
    module = load(root, "opensora/models/vae/vae_temporal.py", "opensora.models.vae.vae_temporal")
    return module, commit


class PerFrameGroupNorm(nn.Module):
    """Applies a wrapped `nn.GroupNorm` to every frame of `[B, C, T, H, W]` on its own.

    Statistics are taken over each frame's `(C / groups, H, W)` instead of the whole clip's
    `(C / groups, T, H, W)`, so frame t never sees frames after it.
    """

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        b, c, t, h, w = x.shape
        y = self.norm(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def per_frame(model: nn.Module) -> nn.Module:
    """A copy of `model` with every `nn.GroupNorm` wrapped in `PerFrameGroupNorm`."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.GroupNorm):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, PerFrameGroupNorm(module))
    return model


def main():
    vae_temporal, commit = upstream_vae_temporal()
    g = seed_everything(SEED)
    model = vae_temporal.VAE_Temporal(**CFG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Randomise GroupNorm affine too, so gamma/beta loading is exercised.
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim > 1 else 0.2)
                    + (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0))
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    models = {"clip": model.double(), "frame": per_frame(model).double()}
    embed = CFG["embed_dim"]
    cases = {"t9": 9, "t6": 6, "t1": 1}
    with torch.no_grad():
        for case, t in cases.items():
            x = torch.randn(1, CFG["in_out_channels"], t, 3, 4, generator=g)
            tensors[f"in.{case}"] = x
            for norm, m in models.items():
                posterior = m.encode(x.double())
                assert posterior.mean.shape[1] == embed
                tensors[f"out.{norm}.{case}.moments"] = torch.cat(
                    [posterior.mean, posterior.logvar], dim=1)
                tensors[f"out.{norm}.{case}.recon"] = m.decode(posterior.mode(), num_frames=t)
    save("vae_c3d_temporal", tensors, "gen_vae_causal3d.py", SEED,
         **{"upstream": REPO, "upstream.tag": TAG, "upstream.commit": commit,
            "upstream.file": "opensora/models/vae/vae_temporal.py", "compute_dtype": "float64"},
         **{f"cfg.{k}": v for k, v in CFG.items()})


if __name__ == "__main__":
    main()
