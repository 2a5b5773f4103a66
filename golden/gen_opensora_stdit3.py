"""Golden fixtures for a whole Open-Sora 1.2 STDiT3 forward, from Open-Sora's own code.

Runs `opensora/models/stdit/stdit3.py` (`STDiT3Config`, `STDiT3`, `STDiT3Block`) and the layers it
imports from `opensora/models/layers/blocks.py`, loaded by path from the snapshot
`golden/.upstream/Open-Sora` at tag v1.2.0 (commit 17cce908b22283acc3c946816c81f46dd442a453; see
golden/README.md), on CPU in float64, for a tiny config (hidden 24, 2 heads of 12, depth 2,
MLP 96, caption 16 x 8 tokens, patch (1, 2, 2), 4 -> 8 channels, input_sq_size 32, QK-norm).
Real packages: transformers (`PretrainedConfig`, `PreTrainedModel`), rotary-embedding-torch 0.5.3
(the version Open-Sora v1.2.0 pins), timm (`DropPath`, `Mlp`), einops.

Stand-ins (each for an import that cannot run here or is not needed):
- `xformers.ops` (CUDA kernels; not installable on CPU): `fmha.BlockDiagonalMask.from_seqlens`
  builds the same block-diagonal mask over the packed query / key sequences (query block b of
  length N sees only key block b of length y_lens[b]) and `memory_efficient_attention` computes
  softmax(q k^T / sqrt(head_dim) + bias) v with it, explicitly, in the inputs' dtype. This is the
  only stand-in that computes anything.
- `opensora.registry.MODELS`: an mmengine `Registry` (mmengine is not installed); registration
  returns the function unchanged.
- `opensora.utils.ckpt_utils.load_checkpoint`: that module imports colossalai; only called when
  loading a local checkpoint path, which the generator does not do (raises if called).
- the packages `opensora`, `opensora.models`, `opensora.models.layers`, `opensora.models.stdit`,
  `opensora.acceleration` are registered empty so that their `__init__.py` files (which import
  every model and colossalai) do not run; the real `acceleration/checkpoint.py`,
  `communications.py`, `parallel_states.py` and `layers/blocks.py` are loaded by path.

Weights: every parameter and the `y_embedder.y_embedding` buffer is drawn from a seeded normal
(not upstream's zero init of the temporal projections, fps embedder and final layer, which would
zero whole paths): Linear / Conv weights std min(0.25, 1/sqrt(fan_in)), biases std 0.1,
`scale_shift_table`s std 0.2, QK-norm weights 1 + 0.1 N, `y_embedding` std 1/sqrt(16). `rope.freqs`
(a non-trainable parameter of rotary-embedding-torch) keeps its fixed values theta^(-2k/d).

state_dict() of STDiT3 (saved as is, float32): parameters plus the one persistent buffer
`y_embedder.y_embedding` [model_max_length, caption_channels] (the null caption); `rope.freqs` is
an `nn.Parameter` (requires_grad False) [head_dim / 2]. Not in it: `pos_embed.inv_freq`
(non-persistent buffer), rope's `cached_freqs` / `cached_scales` / `dummy` (non-persistent), the
LayerNorms (no affine). Block keys, N in {0, 1} for `spatial_blocks.N` and `temporal_blocks.N`:
`scale_shift_table` [6, C], `attn.qkv.{weight,bias}` [3C, C], `attn.q_norm.weight`,
`attn.k_norm.weight` [head_dim], `attn.proj.*` [C, C], `cross_attn.q_linear.*` [C, C],
`cross_attn.kv_linear.*` [2C, C], `cross_attn.proj.*` [C, C], `mlp.fc1.*` [4C, C], `mlp.fc2.*`
[C, 4C].

Fixtures (golden/fixtures/):
- `opensora_stdit3_tiny/config.json` (written by transformers' `save_pretrained` of the upstream
  model), `model.safetensors` (f32), `model.f16.safetensors`, `model.bf16.safetensors` (the same
  weights rounded), and `opensora_stdit3_tiny_sharded/` (same config, two shards and the hub's
  `model.safetensors.index.json`). transformers 5 writes the dtype as `"dtype"`; configs saved by
  transformers 4 (as on the hub) call it `"torch_dtype"`. Safetensors metadata: `format: pt`
  (as transformers writes) plus generator, versions and upstream tag / commit.
- `opensora_stdit3_cases.safetensors`: per case `<case>.{x, timestep, y, mask, x_mask, fps,
  height, width, out}` under upstream's forward argument names (`x_mask` only where used; bool
  stored as int64 0/1); `out` is the whole forward output [B, 2C, T, H, W] (noise prediction then
  the sigma channels). Case names are in the metadata key `cases`.
  - `text_mask`: B = 2, T = 3, two captions with 5 and 3 valid tokens, different t and fps.
  - `x_mask`: B = 2, T = 4, per-sample frames marked as conditioning frames, different t.
    Upstream semantics: `x_mask[b, f]` True = frame f is being generated and is modulated by the
    timestep t; False = conditioning frame, modulated by the embedding of timestep 0 (t0, plus the
    same fps embedding) in every block and in the final layer (the sampler sets
    `x_mask = mask * num_timesteps >= t`).
  - `padding`: latent 5 x 7 (not divisible by patch 2): upstream's `PatchEmbed3D` zero-pads W, H
    (and T) at the end up to the patch grid, the model runs on the padded 3 x 4 grid, and
    `unpatchify` crops back to 5 x 7.
  - `cfg`: the sampler's classifier-free-guidance batch: y = [caption; null caption
    (`y_embedder.y_embedding`)], a single mask row [1, N] that `encode_text` repeats to both
    samples, T = 1 (an image).
  Positional-embedding scale = sqrt(height[0] * width[0]) / input_sq_size (pixels of sample 0);
  it is 1 only in `x_mask`.

Upstream computes some steps in float32 even when the model is float64 (timestep and fps
sinusoids, the QK RMSNorm, the self-attention softmax, the 2D position grid); these are its own
casts and are kept. Expected outputs are float64 runs of the float32 weights, stored as float32.

Run: python golden/gen_opensora_stdit3.py
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import types

import torch
from safetensors.torch import load_file, save_file

from common import FIXTURES, MAX_BYTES, save, seed_everything, versions
from upstream import load, snapshot, stub

GEN = "golden/gen_opensora_stdit3.py"
SEED = 0
REPO, TAG = "hpcaitech/Open-Sora", "v1.2.0"
NAME = "opensora_stdit3_tiny"
CFG = dict(
    hidden_size=24,
    depth=2,
    num_heads=2,
    mlp_ratio=4.0,
    in_channels=4,
    patch_size=(1, 2, 2),
    caption_channels=16,
    model_max_length=8,
    input_sq_size=32,
    qk_norm=True,
    pred_sigma=True,
)
EXTRA_PACKAGES = ("transformers", "rotary-embedding-torch", "timm", "einops")


# --- stand-ins -------------------------------------------------------------------------------


class BlockDiagonalMask:
    """xformers' `fmha.BlockDiagonalMask`: query block b (length q_seqlen[b]) attends only to key
    block b (length kv_seqlen[b]) of the packed sequences."""

    def __init__(self, q_seqlen, kv_seqlen):
        self.q_seqlen = [int(n) for n in q_seqlen]
        self.kv_seqlen = [int(n) for n in kv_seqlen]

    @classmethod
    def from_seqlens(cls, q_seqlen, kv_seqlen=None):
        return cls(q_seqlen, q_seqlen if kv_seqlen is None else kv_seqlen)

    def materialize(self, dtype):
        bias = torch.full((sum(self.q_seqlen), sum(self.kv_seqlen)), -math.inf, dtype=dtype)
        q0 = k0 = 0
        for nq, nk in zip(self.q_seqlen, self.kv_seqlen):
            bias[q0 : q0 + nq, k0 : k0 + nk] = 0.0
            q0, k0 = q0 + nq, k0 + nk
        return bias


def memory_efficient_attention(q, k, v, p=0.0, attn_bias=None, scale=None):
    """xformers' `memory_efficient_attention` for [1, M, H, D] inputs (no dropout)."""
    assert p == 0.0
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [1, H, M, D]
    scores = (q * scale) @ k.transpose(-2, -1)
    if attn_bias is not None:
        scores = scores + attn_bias.materialize(scores.dtype)
    out = scores.softmax(dim=-1) @ v
    return out.transpose(1, 2).contiguous()  # xformers returns a contiguous [1, M, H, D]


class _Registry:
    """Stand-in for mmengine's `Registry`: registration is a no-op."""

    def register_module(self, name=None, **kwargs):
        return lambda obj: obj


def _no_checkpoint(*args, **kwargs):
    raise RuntimeError("load_checkpoint is a stand-in here: no checkpoints are loaded")


def upstream_stdit3():
    """Loads `stdit3.py` and the modules it imports from the snapshot."""
    root, commit = snapshot("Open-Sora", TAG)
    fmha = types.SimpleNamespace(BlockDiagonalMask=BlockDiagonalMask)
    stub("xformers.ops", fmha=fmha, memory_efficient_attention=memory_efficient_attention)
    stub("opensora.registry", MODELS=_Registry())
    stub("opensora.utils.ckpt_utils", load_checkpoint=_no_checkpoint)
    stub("opensora.acceleration")
    stub("opensora.models.layers")
    stub("opensora.models.stdit")
    for rel in ("checkpoint", "communications", "parallel_states"):
        load(root, f"opensora/acceleration/{rel}.py", f"opensora.acceleration.{rel}")
    load(root, "opensora/models/layers/blocks.py", "opensora.models.layers.blocks")
    module = load(root, "opensora/models/stdit/stdit3.py", "opensora.models.stdit.stdit3")
    return module, commit


# --- weights ---------------------------------------------------------------------------------


def randomise(model: torch.nn.Module, g: torch.Generator) -> None:
    """Redraws every parameter (but rope.freqs) and the null caption from a seeded normal."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "rope.freqs":
                continue
            if name.endswith("scale_shift_table"):
                std, mean = 0.2, 0.0
            elif name.endswith("q_norm.weight") or name.endswith("k_norm.weight"):
                std, mean = 0.1, 1.0
            elif name.endswith(".bias"):
                std, mean = 0.1, 0.0
            else:
                fan_in = p[0].numel()
                std, mean = min(0.25, fan_in**-0.5), 0.0
            p.copy_(torch.randn(p.shape, generator=g) * std + mean)
        y = model.y_embedder.y_embedding
        y.copy_(torch.randn(y.shape, generator=g) * y.shape[1] ** -0.5)


# --- checkpoint files ------------------------------------------------------------------------


def save_checked(path: str, tensors: dict, metadata: dict) -> int:
    save_file(tensors, path, metadata=metadata)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        os.remove(path)
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_BYTES}-byte fixture limit")
    print(f"wrote {path} ({size} bytes, {len(tensors)} tensors)")
    return size


def write_config(model, directory: str) -> None:
    """config.json exactly as upstream's `save_pretrained` writes it (weights are written
    separately, so a temporary directory is used)."""
    tmp = directory + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(tmp, "config.json"), os.path.join(directory, "config.json"))
    shutil.rmtree(tmp)
    print(f"wrote {os.path.join(directory, 'config.json')}")


def write_checkpoints(model, state: dict, meta: dict) -> None:
    tiny = os.path.join(FIXTURES, NAME)
    sharded = os.path.join(FIXTURES, NAME + "_sharded")
    for d in (tiny, sharded):
        shutil.rmtree(d, ignore_errors=True)
    write_config(model, tiny)
    os.makedirs(sharded)
    shutil.copy(os.path.join(tiny, "config.json"), os.path.join(sharded, "config.json"))

    meta = {"format": "pt", **meta}
    save_checked(os.path.join(tiny, "model.safetensors"), state, meta)
    for suffix, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        half = {k: v.to(dtype) for k, v in state.items()}
        save_checked(os.path.join(tiny, f"model.{suffix}.safetensors"), half,
                     {**meta, "dtype": str(dtype)})

    # Hub sharding: keys in state-dict order, split where the running size passes half.
    total = sum(v.numel() * v.element_size() for v in state.values())
    shards, running = ({}, {}), 0
    for key, value in state.items():
        shards[0 if running < total / 2 else 1][key] = value
        running += value.numel() * value.element_size()
    names = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map = {}
    for fname, shard in zip(names, shards):
        save_checked(os.path.join(sharded, fname), shard, meta)
        weight_map.update({k: fname for k in shard})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {os.path.join(sharded, 'model.safetensors.index.json')} (total_size {total})")


# --- cases -----------------------------------------------------------------------------------


def make_cases(g: torch.Generator, y_null: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    c_in, n_tok, c_cap = CFG["in_channels"], CFG["model_max_length"], CFG["caption_channels"]

    def x(b, t, h, w):
        return torch.randn(b, c_in, t, h, w, generator=g)

    def y(b):
        return torch.randn(b, 1, n_tok, c_cap, generator=g)

    def prefix_mask(lengths):
        return torch.tensor([[1] * n + [0] * (n_tok - n) for n in lengths], dtype=torch.int64)

    def f(*values):
        return torch.tensor(values, dtype=torch.float32)

    cases = {
        "text_mask": dict(
            x=x(2, 3, 4, 6), timestep=f(873.25, 312.5), y=y(2), mask=prefix_mask([5, 3]),
            fps=f(24.0, 12.0), height=f(32.0, 32.0), width=f(48.0, 48.0),
        ),
        "x_mask": dict(
            x=x(2, 4, 4, 4), timestep=f(700.0, 250.0), y=y(2), mask=prefix_mask([8, 6]),
            x_mask=torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0]], dtype=torch.int64),
            fps=f(8.0, 8.0), height=f(32.0, 32.0), width=f(32.0, 32.0),
        ),
        "padding": dict(
            x=x(2, 2, 5, 7), timestep=f(999.0, 41.0), y=y(2), mask=prefix_mask([8, 2]),
            fps=f(30.0, 6.0), height=f(40.0, 40.0), width=f(56.0, 56.0),
        ),
        "cfg": dict(
            x=x(1, 1, 4, 4).repeat(2, 1, 1, 1, 1), timestep=f(512.0, 512.0),
            y=torch.cat([y(1), y_null[None, None]], 0), mask=prefix_mask([4]),
            fps=f(16.0, 16.0), height=f(64.0, 64.0), width=f(64.0, 64.0),
        ),
    }
    return cases


def forward(model, case: dict[str, torch.Tensor]) -> torch.Tensor:
    args = {k: (v.double() if v.is_floating_point() else v) for k, v in case.items()}
    if "x_mask" in args:
        args["x_mask"] = args["x_mask"].bool()
    with torch.no_grad():
        return model(**args)


def main():
    stdit3, commit = upstream_stdit3()
    g = seed_everything(SEED)
    config = stdit3.STDiT3Config(**CFG)
    model = stdit3.STDiT3(config).eval()
    randomise(model, g)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in state.values())
    buffers = sorted(k for k, _ in model.named_buffers() if k in state)
    print("state_dict:", len(state), "tensors; buffers saved:", buffers)

    vers = {**versions(), **{f"version.{p}": importlib.metadata.version(p) for p in EXTRA_PACKAGES}}
    meta = {"generator": GEN, "seed": str(SEED), **vers, "upstream": REPO, "upstream.tag": TAG,
            "upstream.commit": commit, "upstream.file": "opensora/models/stdit/stdit3.py",
            "buffers": ",".join(buffers)}
    write_checkpoints(model, state, meta)

    cases = make_cases(g, state["y_embedder.y_embedding"])
    model = model.double()
    tensors = {}
    for name, case in cases.items():
        out = forward(model, case)
        b, c, t, h, w = case["x"].shape
        assert out.shape == (b, 2 * c, t, h, w), out.shape
        assert torch.isfinite(out).all()
        case["out"] = out
        tensors.update({f"{name}.{k}": v for k, v in case.items()})

    # Reload the written checkpoint into a fresh upstream model and rerun: identical outputs.
    seed_everything(SEED + 1)
    fresh = stdit3.STDiT3(stdit3.STDiT3Config(**CFG)).eval()
    loaded = load_file(os.path.join(FIXTURES, NAME, "model.safetensors"))
    fresh.load_state_dict(loaded, strict=True)
    fresh = fresh.double()
    for name, case in cases.items():
        again = forward(fresh, {k: v for k, v in case.items() if k != "out"})
        assert torch.equal(again, case["out"]), f"{name}: reloaded model differs"
    print("reload check: outputs identical")

    save("opensora_stdit3_cases", tensors, GEN, SEED,
         **{k: v for k, v in meta.items() if k not in ("generator", "seed")},
         cases=",".join(cases), checkpoint=f"{NAME}/model.safetensors", compute_dtype="float64",
         **{f"cfg.{k}": v for k, v in CFG.items()})


if __name__ == "__main__":
    main()
