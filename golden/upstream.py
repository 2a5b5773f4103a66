"""Snapshots of upstream repositories that are not on PyPI (Open-Sora, Video Swin, ...).

A generator that must run upstream code which no package ships loads the upstream files by path
from a git checkout under `golden/.upstream/<name>` (ignored by git, never committed):

    git clone <hpcaitech/Open-Sora on GitHub> golden/.upstream/Open-Sora
    git -C golden/.upstream/Open-Sora checkout v1.2.0

`snapshot(name, tag)` checks that the checkout is at the tag the fixtures were made from and
returns its path and commit, which the generator records in the fixture metadata. `load(...)`
imports one upstream file as a module, with stand-ins for the imports that cannot run here
(CUDA-only kernels, registries, heavy optional packages); each generator lists and justifies its
stand-ins in its header.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types

UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".upstream")


def _git(path: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", path, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def snapshot(name: str, tag: str) -> tuple[str, str]:
    """Path and commit of the checkout `golden/.upstream/<name>`, which must be at `tag`.

    `tag` is a tag or a commit hash (for repositories without release tags).
    """
    path = os.path.join(UPSTREAM, name)
    if not os.path.isdir(path):
        raise SystemExit(
            f"{path} is missing: clone the upstream repository {name} there and check out {tag} "
            "(see golden/README.md)"
        )
    head = _git(path, "rev-parse", "HEAD")
    want = _git(path, "rev-parse", f"{tag}^{{commit}}")
    if head != want:
        raise SystemExit(f"{path} is at {head}, not at {tag} ({want}): git checkout {tag}")
    return path, head


def stub(module_name: str, **attrs) -> types.ModuleType:
    """Registers an empty module (and its parents) in `sys.modules`, with the given attributes."""
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            if i > 1:
                setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[name])
    module = sys.modules[module_name]
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def load(root: str, relpath: str, module_name: str) -> types.ModuleType:
    """Imports `root/relpath` as `module_name` (registered in `sys.modules`)."""
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(root, relpath))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
