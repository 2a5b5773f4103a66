"""Golden fixtures for vidgen-vae's Open-Sora 1.2 video VAE pipeline (`OpenSoraVae`).

Runs Open-Sora's own `VideoAutoencoderPipeline` and `VideoAutoencoderKL`
(`opensora/models/vae/vae.py`), `VAE_Temporal` (`vae_temporal.py`), `DiagonalGaussianDistribution`
(`utils.py`) and `build_module` (`opensora/registry.py`), loaded by path from the snapshot
`golden/.upstream/Open-Sora` at tag v1.2.0 (see golden/README.md; `upstream.py` checks the tag,
and the commit goes into the metadata), with diffusers' own `AutoencoderKL` as the 2D VAE.

Configuration (not a re-implementation): `VideoAutoencoderKL` builds its 2D VAE with
`AutoencoderKL.from_pretrained(...)`, which would download the SDXL VAE. Here
`AutoencoderKL.from_pretrained` is replaced by a function that constructs diffusers'
`AutoencoderKL(**VAE_2D)` from the tiny config below, so the pipeline runs the real diffusers
class with tiny sizes. The temporal VAE is upstream's `VAE_Temporal` with tiny keyword arguments
(`VAE_TEMPORAL`). `micro_frame_size` = 17 and `micro_batch_size` = 3 as in `OpenSoraVAE_V1_2`
(micro batch 4 there), `shift`/`scale` the published values.

Stand-ins:
- `mmengine.registry.Registry` (mmengine is not installed): a dict-backed registry whose
  `register_module()` records the class or function under its name and whose `build(cfg)` calls
  `registry[cfg.pop("type")](**cfg)`, which is what mmengine does for these configs. The real
  `opensora/registry.py` (`build_module`) is loaded on top of it.
- `opensora.utils.ckpt_utils.load_checkpoint`: that module imports colossalai at import time; it
  is only called when a checkpoint path is given, which the generator never does (raises).
- the packages `opensora`, `opensora.models`, `opensora.models.vae` are registered as empty
  modules so that their `__init__.py` files (which import every Open-Sora model) do not run.
- posterior noise: diffusers' `DiagonalGaussianDistribution.sample` draws with `randn_tensor`,
  Open-Sora's with `torch.randn`; both are redirected to read stored noise in call order
  (`mean + std * noise` is still computed by the upstream code). With zero noise the pipeline's
  `encode` returns the normalised posterior mean, which is what vidgen's `encode` computes.

Computed in float64 from the float32 weights and inputs (stored as float32).

Fixtures:
- `opensora_vae_tiny.safetensors`: the pipeline's `state_dict()` in the published key layout
  (`scale`, `shift` [1,4,1,1,1], `spatial_vae.module.*`, `temporal_vae.*`);
- `opensora_vae_tiny.json`: `VideoAutoencoderPipelineConfig.to_dict()` as JSON, with the tiny
  diffusers `AutoencoderKL` keys written into `vae_2d` (vidgen reads a 2D VAE config from there;
  upstream only reads `from_pretrained`) and `vae_temporal` holding the `VAE_Temporal` kwargs;
- `opensora_vae_cases.safetensors`: per case `<case>.x` [B,3,T,H,W] in [-1, 1], `<case>.z`
  (`encode` with zero noise: normalised posterior mean), `<case>.x_rec` (`decode(z, T)`),
  `<case>.spatial_noise` [B,4,T,h,w], `<case>.temporal_noise` [B,4,T',h,w] and `<case>.z_sample`
  (`encode` with that noise). Cases: T = 20 (17 + 3, B = 2) and T = 35 (17 + 17 + 1, B = 1).
"""

from __future__ import annotations

import json
import os
import sys
import types

import torch
import transformers

import diffusers
import diffusers.models.autoencoders.vae as diffusers_vae

from common import FIXTURES, save, seed_everything
from upstream import load, snapshot, stub

GEN = "golden/gen_opensora_vae.py"
SEED = 7
REPO, TAG = "hpcaitech/Open-Sora", "v1.2.0"
VAE_2D = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[4, 8],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=2,
    sample_size=16,
)
VAE_TEMPORAL = dict(
    type="VAE_Temporal",
    in_out_channels=4,
    latent_embed_dim=4,
    embed_dim=4,
    filters=4,
    num_res_blocks=1,
    channel_multipliers=[1, 1, 2, 2],
    temporal_downsample=[False, True, True],
    num_groups=2,
)
PIPELINE = dict(
    vae_2d=dict(type="VideoAutoencoderKL", from_pretrained="tiny", micro_batch_size=3),
    vae_temporal=VAE_TEMPORAL,
    micro_frame_size=17,
    shift=[-0.10, 0.34, 0.27, 0.98],
    scale=[3.85, 2.32, 2.33, 3.06],
)
CASES = {"t20": (2, 20), "t35": (1, 35)}
H = W = 4


class _Registry:
    """Stand-in for mmengine's `Registry`: name → class or function, `build` calls it."""

    def __init__(self, *args, **kwargs):
        self.entries = {}

    def register_module(self, name=None, **kwargs):
        def register(obj):
            self.entries[name or obj.__name__] = obj
            return obj

        return register

    def build(self, cfg):
        cfg = dict(cfg)
        return self.entries[cfg.pop("type")](**cfg)


def _no_checkpoint(*args, **kwargs):
    raise RuntimeError("load_checkpoint is a stand-in here: no checkpoints are loaded")


class _Noise:
    """Hands out stored noise in call order (stand-in for the random draws)."""

    def __init__(self):
        self.queue = []

    def take(self, shape, dtype):
        block = self.queue.pop(0)
        assert tuple(block.shape) == tuple(shape), (block.shape, shape)
        return block.to(dtype)


SPATIAL, TEMPORAL = _Noise(), _Noise()


def upstream_pipeline():
    """Loads the upstream files from the snapshot; returns (vae module, commit)."""
    root, commit = snapshot("Open-Sora", TAG)
    stub("mmengine.registry", Registry=_Registry)
    stub("opensora.utils.ckpt_utils", load_checkpoint=_no_checkpoint)
    stub("opensora.models.vae")
    load(root, "opensora/registry.py", "opensora.registry")
    utils = load(root, "opensora/models/vae/utils.py", "opensora.models.vae.utils")
    # Open-Sora's posterior draws `torch.randn(shape)`: read stored noise instead.
    proxy = types.ModuleType("torch_with_stored_noise")
    proxy.__dict__.update(torch.__dict__)
    proxy.randn = lambda shape, *a, **k: TEMPORAL.take(shape, torch.float64)
    utils.torch = proxy
    load(root, "opensora/models/vae/vae_temporal.py", "opensora.models.vae.vae_temporal")
    # diffusers' posterior draws with `randn_tensor`: read stored noise instead.
    diffusers_vae.randn_tensor = lambda shape, generator=None, device=None, dtype=None: (
        SPATIAL.take(shape, dtype)
    )
    # `AutoencoderKL.from_pretrained(...)` → diffusers' AutoencoderKL built from the tiny config.
    diffusers.models.AutoencoderKL.from_pretrained = classmethod(
        lambda cls, *a, **k: cls(**VAE_2D)
    )
    vae = load(root, "opensora/models/vae/vae.py", "opensora.models.vae.vae")
    return vae, commit


def randomise(model, g):
    """Random weights (GroupNorm affines and biases too) so that every parameter matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if p.ndim > 1 else 0.1
            base = 1.0 if (p.ndim == 1 and "norm" in name and name.endswith("weight")) else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * scale + base)


def encode(model, x, spatial_noise, temporal_noise, micro):
    """`model.encode(x)` with the given noise fed to the posteriors in call order."""
    b, c, t, h, w = spatial_noise.shape
    frames = spatial_noise.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    SPATIAL.queue = list(frames.split(micro, dim=0))
    lat = [model.temporal_vae.get_latent_size([n, None, None])[0]
           for n in [len(range(i, min(i + 17, t))) for i in range(0, t, 17)]]
    TEMPORAL.queue = list(temporal_noise.split(lat, dim=2))
    z = model.encode(x)
    assert not SPATIAL.queue and not TEMPORAL.queue
    return z


def main():
    vae, commit = upstream_pipeline()
    g = seed_everything(SEED)
    config = vae.VideoAutoencoderPipelineConfig(**PIPELINE)
    model = vae.VideoAutoencoderPipeline(config).eval()
    assert isinstance(model.spatial_vae.module, diffusers.AutoencoderKL)
    assert model.micro_z_frame_size == 5
    randomise(model, g)
    state = {k: v.clone().float() for k, v in model.state_dict().items()}
    assert state["scale"].shape == (1, 4, 1, 1, 1) and state["shift"].shape == (1, 4, 1, 1, 1)
    model = model.double()

    tensors = {}
    micro = PIPELINE["vae_2d"]["micro_batch_size"]
    with torch.no_grad():
        for case, (b, t) in CASES.items():
            x = (torch.rand(b, 3, t, H, W, generator=g) * 2 - 1).double()
            h, w = H // 2, W // 2
            tl = model.get_latent_size([t, H, W])[0]
            sn = torch.randn(b, 4, t, h, w, generator=g).double()
            tn = torch.randn(b, 4, tl, h, w, generator=g).double()
            z = encode(model, x, torch.zeros_like(sn), torch.zeros_like(tn), micro)
            assert z.shape == (b, 4, tl, h, w), z.shape
            z_sample = encode(model, x, sn, tn, micro)
            x_rec = model.decode(z, num_frames=t)
            assert x_rec.shape == x.shape
            tensors.update({
                f"{case}.x": x, f"{case}.z": z, f"{case}.x_rec": x_rec,
                f"{case}.spatial_noise": sn, f"{case}.temporal_noise": tn,
                f"{case}.z_sample": z_sample,
            })

    meta = {"upstream": REPO, "upstream.tag": TAG, "upstream.commit": commit,
            "upstream.file": "opensora/models/vae/vae.py", "compute_dtype": "float64",
            "micro_frame_size": 17, "micro_batch_size": micro,
            "version.transformers": transformers.__version__}
    save("opensora_vae_tiny", state, GEN, SEED, **meta)
    save("opensora_vae_cases", tensors, GEN, SEED, **meta,
         **{f"case.{k}": f"B={b} T={t} H={H} W={W}" for k, (b, t) in CASES.items()})
    cfg = config.to_dict()
    cfg["vae_2d"] = {**cfg["vae_2d"], **VAE_2D}
    path = os.path.join(FIXTURES, "opensora_vae_tiny.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
