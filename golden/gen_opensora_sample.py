"""Golden fixture for Open-Sora 1.2's rectified-flow sampler, from Open-Sora's own code.

Runs `RFLOW.sample` (`opensora/schedulers/rf/__init__.py`, with `timestep_transform` and
`RFlowScheduler` from `opensora/schedulers/rf/rectified_flow.py`) from the snapshot
`golden/.upstream/Open-Sora` at tag v1.2.0 (commit 17cce908b22283acc3c946816c81f46dd442a453; see
golden/README.md) on the tiny upstream `STDiT3` whose config and weights `gen_opensora_stdit3.py`
writes to `fixtures/opensora_stdit3_tiny/` (run that generator first). The weights are read from
`model.safetensors` with `load_state_dict(strict=True)` and the model runs in float64 on CPU.

Sampler settings: upstream's inference config (`configs/opensora-v1-2/inference/sample.py`:
`scheduler = dict(type="rflow", use_timestep_transform=True, num_sampling_steps=30,
cfg_scale=7.0)`) with 5 steps instead of 30; guidance 7.0; `num_timesteps` 1000 (the default);
no frame mask (`mask=None`), so the sampler draws no random numbers and the output is a function
of the stored initial noise `z`. `additional_args` has the keys that `scripts/inference.py`
passes (`prepare_multi_resolution_info(multi_resolution="STDiT2")`): `height`, `width`,
`num_frames`, `ar`, `fps`, each a [B] tensor of the model dtype (here float64) with the same
value for every sample. Pixel 32 x 48 (latent 4 x 6 for the 8x spatial VAE), 17 pixel frames
(5 latent frames for the 17 -> 5 temporal VAE), 24 fps: resolution ratio sqrt(32 * 48 / 512^2)
and time ratio sqrt(17 // 17 * 5) are both != 1.

Stand-ins:
- the `STDiT3` imports, as `gen_opensora_stdit3.py` lists them (xformers' block-diagonal
  attention as an explicit masked softmax; mmengine registry; `load_checkpoint`; empty parent
  packages), through its `upstream_stdit3()`.
- `opensora.registry.SCHEDULERS`: an mmengine `Registry` (mmengine is not installed);
  registration returns the class unchanged.
- the packages `opensora.schedulers` and `opensora.schedulers.iddpm` are registered empty so that
  their `__init__.py` files (which import every scheduler) do not run; `rectified_flow.py`'s
  import of `_extract_into_tensor` and `mean_flat` (used only in training) is served by the real
  `iddpm/gaussian_diffusion.py` and `iddpm/diffusion_utils.py`, loaded by path.
- the text encoder: upstream's `T5Encoder` runs T5-XXL, which cannot run here. `CaptionEncoder`
  has the two methods the sampler calls: `encode(prompts)` returns the stored caption embeddings
  `dict(y=y [B, 1, N, C_cap], mask=mask [B, N] int64)` (the shapes and dtypes of
  `T5Encoder.encode`), and `null(n)` is `T5Encoder.null` verbatim,
  `self.y_embedder.y_embedding[None].repeat(n, 1, 1)[:, None]`, with `y_embedder` set to the
  model's as `scripts/inference.py` does. The sampler's logic is untouched.

Observation: a forward hook on the model records each call's inputs and output (it changes
nothing); `trajectory[i]` is the latent after step i (the next call's first half of `z_in`, and
`out` after the last step), `velocity[i]` the guided velocity of step i recomputed from the
recorded output as the sampler computes it, and `timesteps` the transformed timesteps the model
was called with (equal for both samples, so stored once per step).

Fixture `fixtures/opensora_sample_cases.safetensors` (float32 as stored; the run is float64 from
these float32 values):
- `z` [B, C, T, H, W] initial noise; `y` [B, 1, N, C_cap] captions; `mask` [B, N] int64 (5 and 3
  valid tokens); `height`, `width`, `num_frames`, `fps`, `ar` [B] float32 (exact; upstream passes
  them as float tensors of the model dtype).
- `timesteps` [steps], `trajectory` [steps, B, C, T, H, W], `velocity` [steps, B, C, T, H, W],
  `out` [B, C, T, H, W] (the sampler's return value, float64 stored as float32).
Metadata: steps, guidance, num_timesteps, upstream tag / commit, package versions.

Run: python golden/gen_opensora_sample.py
"""

from __future__ import annotations

import importlib.metadata
import os

import torch
from safetensors.torch import load_file

from common import FIXTURES, save, seed_everything, versions
from gen_opensora_stdit3 import CFG, EXTRA_PACKAGES, NAME, REPO, TAG, _Registry, upstream_stdit3
from upstream import load, stub

GEN = "golden/gen_opensora_sample.py"
SEED = 0
STEPS = 5
GUIDANCE = 7.0
NUM_TIMESTEPS = 1000
B, T, H, W = 2, 5, 4, 6
HEIGHT, WIDTH, NUM_FRAMES, FPS = 32, 48, 17, 24
CAPTION_LENGTHS = (5, 3)


class CaptionEncoder:
    """Stands in for `T5Encoder`: stored caption embeddings, upstream's null caption."""

    def __init__(self, y: torch.Tensor, mask: torch.Tensor, y_embedder):
        self.y, self.mask = y, mask
        self.y_embedder = y_embedder

    def encode(self, prompts):
        assert len(prompts) == self.y.shape[0]
        return dict(y=self.y, mask=self.mask)

    def null(self, n):
        null_y = self.y_embedder.y_embedding[None].repeat(n, 1, 1)[:, None]
        return null_y


def upstream_rflow():
    """Loads `opensora/schedulers/rf` (and the iddpm helpers it imports) from the snapshot."""
    stdit3, commit = upstream_stdit3()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".upstream", "Open-Sora")
    stub("opensora.registry", SCHEDULERS=_Registry())
    stub("opensora.schedulers.iddpm")
    for rel in ("diffusion_utils", "gaussian_diffusion"):
        load(root, f"opensora/schedulers/iddpm/{rel}.py", f"opensora.schedulers.iddpm.{rel}")
    stub("opensora.schedulers.rf")
    rectified_flow = load(root, "opensora/schedulers/rf/rectified_flow.py",
                          "opensora.schedulers.rf.rectified_flow")
    rf = load(root, "opensora/schedulers/rf/__init__.py", "opensora.schedulers.rf")
    assert rf.timestep_transform is rectified_flow.timestep_transform
    return stdit3, rf, rectified_flow, commit


def load_model(stdit3):
    path = os.path.join(FIXTURES, NAME, "model.safetensors")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: run golden/gen_opensora_stdit3.py first")
    config = stdit3.STDiT3Config(**CFG)
    model = stdit3.STDiT3(config).eval()
    model.load_state_dict(load_file(path), strict=True)
    return model.double()


def main():
    stdit3, rf, rectified_flow, commit = upstream_rflow()
    model = load_model(stdit3)
    c_in, n_tok, c_cap = CFG["in_channels"], CFG["model_max_length"], CFG["caption_channels"]

    g = seed_everything(SEED)
    z = torch.randn(B, c_in, T, H, W, generator=g)
    y = torch.randn(B, 1, n_tok, c_cap, generator=g)
    mask = torch.tensor([[1] * n + [0] * (n_tok - n) for n in CAPTION_LENGTHS], dtype=torch.int64)
    prompts = [f"caption {i}" for i in range(B)]

    def per_sample(value):
        return torch.tensor([value], dtype=torch.float64).repeat(B)

    additional_args = dict(
        height=per_sample(HEIGHT), width=per_sample(WIDTH), num_frames=per_sample(NUM_FRAMES),
        ar=per_sample(HEIGHT / WIDTH), fps=per_sample(FPS),
    )

    calls = []

    def record(module, args, kwargs, output):
        calls.append(dict(z_in=args[0].clone(), t=args[1].clone(), kwargs=kwargs,
                          out=output.clone()))

    hook = model.register_forward_hook(record, with_kwargs=True)
    scheduler = rf.RFLOW(num_sampling_steps=STEPS, num_timesteps=NUM_TIMESTEPS,
                         cfg_scale=GUIDANCE, use_timestep_transform=True)
    encoder = CaptionEncoder(y.double(), mask, model.y_embedder)
    rng_before = torch.get_rng_state()
    with torch.no_grad():
        out = scheduler.sample(model, encoder, z=z.double(), prompts=prompts, device="cpu",
                               additional_args=additional_args, mask=None,
                               guidance_scale=GUIDANCE, progress=False)
    hook.remove()
    assert torch.equal(torch.get_rng_state(), rng_before), "the sampler drew random numbers"
    assert out.dtype == torch.float64 and out.shape == z.shape
    assert len(calls) == STEPS

    # What the model saw: [cond; uncond] batches, the caption mask repeated by the model itself.
    y_null = model.y_embedder.y_embedding[None].repeat(B, 1, 1)[:, None]
    for call in calls:
        assert torch.equal(call["kwargs"]["y"], torch.cat([y.double(), y_null], 0))
        assert torch.equal(call["kwargs"]["mask"], mask)
        assert torch.equal(call["z_in"][:B], call["z_in"][B:])
        assert torch.equal(call["t"][:B], call["t"][B:])
        assert set(call["kwargs"]) == {"y", "mask", "height", "width", "num_frames", "ar", "fps"}
        assert call["out"].dtype == torch.float32 and call["out"].shape[1] == 2 * c_in

    t_model = torch.stack([call["t"][:B] for call in calls])  # [steps, B]
    assert t_model.dtype == torch.float64 and torch.equal(t_model[:, :1].expand(-1, B), t_model)
    # The same list from the upstream expressions: float32 raw timesteps, then the transform.
    raw = [(1.0 - i / STEPS) * NUM_TIMESTEPS for i in range(STEPS)]
    again = torch.stack([
        rectified_flow.timestep_transform(torch.tensor([t] * B), additional_args,
                                          num_timesteps=NUM_TIMESTEPS)
        for t in raw
    ])
    assert torch.equal(again, t_model)
    timesteps = t_model[:, 0]

    trajectory = torch.stack([call["z_in"][:B] for call in calls[1:]] + [out])
    assert torch.equal(calls[0]["z_in"][:B], z.double())
    velocity = []
    for call in calls:
        pred = call["out"].chunk(2, dim=1)[0]
        cond, uncond = pred.chunk(2, dim=0)
        velocity.append(uncond + GUIDANCE * (cond - uncond))
    velocity = torch.stack(velocity)  # float32, as the sampler holds it
    # The Euler update, rebuilt from the recorded values: bit-identical to the sampler's.
    prev = z.double()
    for i in range(STEPS):
        dt = (t_model[i] - t_model[i + 1]) if i < STEPS - 1 else t_model[i]
        prev = prev + velocity[i] * (dt / NUM_TIMESTEPS)[:, None, None, None, None]
        assert torch.equal(prev, trajectory[i]), f"step {i}"

    # Upstream's inference script passes an all-ones frame mask when nothing is conditioned on;
    # that run (x_mask all True, no frame re-noised) gives the same latent.
    with torch.no_grad():
        ones = scheduler.sample(model, encoder, z=z.double(), prompts=prompts, device="cpu",
                                additional_args=additional_args, mask=torch.ones(B, T),
                                guidance_scale=GUIDANCE, progress=False)
    assert torch.equal(ones, out), (ones - out).abs().max()

    print("timesteps:", timesteps.tolist())
    print("out: mean %.4f std %.4f" % (out.mean().item(), out.std().item()))

    tensors = dict(
        z=z, y=y, mask=mask, **{k: v.float() for k, v in additional_args.items()},
        timesteps=timesteps, trajectory=trajectory, velocity=velocity, out=out,
    )
    vers = {**versions(), **{f"version.{p}": importlib.metadata.version(p)
                             for p in (*EXTRA_PACKAGES, "tqdm")}}
    save("opensora_sample_cases", tensors, GEN, SEED, **vers,
         upstream=REPO, **{"upstream.tag": TAG, "upstream.commit": commit,
                           "upstream.file": "opensora/schedulers/rf/__init__.py"},
         checkpoint=f"{NAME}/model.safetensors", compute_dtype="float64",
         steps=STEPS, guidance=GUIDANCE, num_timesteps=NUM_TIMESTEPS,
         use_timestep_transform=True, use_discrete_timesteps=False, frame_mask="None",
         caption_lengths=",".join(map(str, CAPTION_LENGTHS)),
         raw_timesteps=",".join(repr(t) for t in raw))


if __name__ == "__main__":
    main()
