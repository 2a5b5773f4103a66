"""Helpers shared by the golden-fixture generators.

Every fixture is one small .safetensors file under golden/fixtures/ holding inputs, weights, noise
and expected outputs as float32 (or int64), plus metadata: generator, seed, package versions and
case parameters. Rust tests read them through vidgen-testing's `Golden`.
"""

from __future__ import annotations

import importlib.metadata
import os
import random

import numpy as np
import torch
from safetensors.torch import save_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
MAX_BYTES = 256 * 1024
PACKAGES = (
    "torch", "diffusers", "k-diffusion", "torchscale", "safetensors", "numpy", "einops", "timm",
    "vector-quantize-pytorch",
)


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, numpy and torch; returns a torch generator for explicit draws."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[f"version.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def save(name: str, tensors: dict[str, torch.Tensor], generator: str, seed: int, **params) -> None:
    """Writes golden/fixtures/<name>.safetensors; refuses files over 256 KiB."""
    os.makedirs(FIXTURES, exist_ok=True)
    clean = {}
    for key, value in tensors.items():
        value = value.detach().contiguous()
        if value.is_floating_point():
            value = value.to(torch.float32)
        clean[key] = value
    meta = {"generator": generator, "seed": str(seed), **versions()}
    meta.update({k: str(v) for k, v in params.items()})
    path = os.path.join(FIXTURES, f"{name}.safetensors")
    save_file(clean, path, metadata=meta)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        os.remove(path)
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_BYTES}-byte fixture limit")
    print(f"wrote {path} ({size} bytes, {len(clean)} tensors)")


def linear_state(prefix: str, layer: torch.nn.Linear) -> dict[str, torch.Tensor]:
    """A PyTorch Linear's weight ([out, in]) and bias under `prefix.`."""
    out = {f"{prefix}.weight": layer.weight}
    if layer.bias is not None:
        out[f"{prefix}.bias"] = layer.bias
    return out
