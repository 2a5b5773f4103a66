"""Golden fixtures for vidgen-schedulers' rectified flow and classifier-free guidance.

References:
- diffusers 0.42.1 `FlowMatchEulerDiscreteScheduler` (`set_timesteps`, `step`) and the pipelines'
  `calculate_shift` (flux; read from its source) for `mu` from a sequence length;
- diffusers `training_utils.compute_density_for_timestep_sampling("logit_normal", ...)` for the
  logit-normal time sampling (SD3), and the SD3 training scripts' `x_t = (1 - s) x0 + s eps`,
  target `eps - x0`;
- Open-Sora 1.2's own `timestep_transform` (hpcaitech/Open-Sora at tag v1.2.0, file
  `opensora/schedulers/rf/rectified_flow.py`, loaded by path from the snapshot in
  `golden/.upstream/Open-Sora`; tag and commit are recorded in the fixture metadata), called with
  pixel `height`, `width`, `num_frames` as its sampler passes them;
- our pixel-frames variant of that transform (the frame term is the pixel frame count instead of
  Open-Sora's `num_frames // 17 * 5`): it has no upstream reference and is evaluated from its
  formula in `pixel_frames_ratio` below;
- diffusers `rescale_noise_cfg` (guiders/guider_utils.py, identical to the stable-diffusion pipeline's)
  after plain CFG for the guidance fixture.

Stand-ins (import-time only; `timestep_transform` uses none of them):
- `opensora`, `opensora.schedulers` and `opensora.schedulers.rf`: empty packages instead of their
  `__init__.py`, which import every scheduler (and the samplers' tqdm) and their registries (mmengine);
- `opensora.schedulers.iddpm.gaussian_diffusion`: `rectified_flow.py` imports `_extract_into_tensor`
  and `mean_flat` from it for its training loss; the stand-ins raise if called.

Run: python golden/gen_schedulers_flow.py
  (writes golden/fixtures/sched_flow_{tables,trajectories,training}.safetensors and
   golden/fixtures/sched_guidance.safetensors)
"""

from __future__ import annotations

import ast
import math
import os

import diffusers
import torch

from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.guiders.guider_utils import rescale_noise_cfg  # same as the SD pipeline's copy
from diffusers.training_utils import compute_density_for_timestep_sampling

from common import save, seed_everything
from upstream import load, snapshot, stub

GEN = "golden/gen_schedulers_flow.py"
STEPS = (1, 4, 50)

# case -> (scheduler kwargs, mu given, image sequence length for calculate_shift)
TABLE_CASES = {
    "shift1": (dict(), None, None),
    "shift3": (dict(shift=3.0), None, None),
    "dyn_exp_mu": (dict(use_dynamic_shifting=True), 0.8, None),
    "dyn_lin_mu": (dict(use_dynamic_shifting=True, time_shift_type="linear"), 3.0, None),
    "dyn_exp_seq": (dict(use_dynamic_shifting=True), None, 1024),
    "dyn_lin_seq": (
        dict(use_dynamic_shifting=True, time_shift_type="linear", base_shift=0.95, max_shift=2.05),
        None,
        3000,
    ),
    "terminal": (dict(shift=3.0, shift_terminal=0.1), None, None),
    # LTX-Video's scheduler settings
    "dyn_exp_terminal": (
        dict(
            use_dynamic_shifting=True,
            base_shift=0.95,
            max_shift=2.05,
            base_image_seq_len=1024,
            max_image_seq_len=4096,
            shift_terminal=0.1,
        ),
        None,
        2048,
    ),
    "karras": (dict(shift=3.0, use_karras_sigmas=True), None, None),
    "exponential": (dict(shift=3.0, use_exponential_sigmas=True), None, None),
    "invert": (dict(shift=3.0, invert_sigmas=True), None, None),
}


def diffusers_function(relative_path: str, name: str):
    """A top-level function of an installed diffusers module, taken from its source without importing the
    module (the pipeline modules import `transformers`, which the golden venv does not have)."""
    path = os.path.join(os.path.dirname(diffusers.__file__), relative_path)
    with open(path) as f:
        tree = ast.parse(f.read())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope: dict = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), scope)
    return scope[name]


calculate_shift = diffusers_function("pipelines/flux/pipeline_flux.py", "calculate_shift")


def mu_for(sched: FlowMatchEulerDiscreteScheduler, mu, seq_len):
    if seq_len is None:
        return mu
    c = sched.config
    return calculate_shift(seq_len, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)


def tables() -> None:
    tensors, params = {}, {}
    for case, (kw, mu, seq_len) in TABLE_CASES.items():
        sched = FlowMatchEulerDiscreteScheduler(**kw)
        params[f"{case}.config"] = sched.to_json_string()
        mu = mu_for(sched, mu, seq_len)
        if mu is not None:
            params[f"{case}.mu"] = repr(float(mu))
        if seq_len is not None:
            params[f"{case}.seq_len"] = seq_len
        for n in STEPS:
            sched.set_timesteps(n, mu=mu)
            tensors[f"{case}.{n}.sigmas"] = sched.sigmas
            tensors[f"{case}.{n}.timesteps"] = sched.timesteps
    params["cases"] = ",".join(TABLE_CASES)
    params["steps"] = ",".join(map(str, STEPS))
    save("sched_flow_tables", tensors, GEN, 0, **params)


def fake_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The deterministic stand-in model, written identically in the Rust test."""
    return torch.tanh(x) * (0.5 + t / 1000.0) - 0.2 * x


# case -> (scheduler kwargs, steps, image sequence length or None)
TRAJECTORY_CASES = {
    "shift1": (dict(), 10, None),
    "shift3": (dict(shift=3.0), 10, None),
    "dynamic": (dict(use_dynamic_shifting=True), 10, 1024),
    "stochastic": (dict(shift=3.0, stochastic_sampling=True), 6, None),
}


def trajectories() -> None:
    seed = 11
    gen = seed_everything(seed)
    x_init = torch.randn(2, 3, 4, generator=gen)
    tensors, params = {"x_init": x_init}, {}
    for case, (kw, n, seq_len) in TRAJECTORY_CASES.items():
        sched = FlowMatchEulerDiscreteScheduler(**kw)
        params[f"{case}.config"] = sched.to_json_string()
        params[f"{case}.steps"] = n
        mu = mu_for(sched, None, seq_len)
        if mu is not None:
            params[f"{case}.mu"] = repr(float(mu))
        sched.set_timesteps(n, mu=mu)
        # The stochastic step draws `randn_tensor(shape, generator)`: a twin generator with the same
        # seed replays those draws so the fixture can carry them.
        step_gen = torch.Generator().manual_seed(100 + n)
        twin = torch.Generator().manual_seed(100 + n)
        x, samples, noises = x_init.clone(), [x_init.clone()], []
        for t in sched.timesteps:
            v = fake_velocity(x, t)
            if sched.config.stochastic_sampling:
                noises.append(torch.randn(x.shape, generator=twin))
            x = sched.step(v, t, x, generator=step_gen).prev_sample
            samples.append(x.clone())
        tensors[f"{case}.samples"] = torch.stack(samples)
        if noises:
            tensors[f"{case}.noise"] = torch.stack(noises)
    params["cases"] = ",".join(TRAJECTORY_CASES)
    save("sched_flow_trajectories", tensors, GEN, seed, **params)


def open_sora_timestep_transform():
    """Open-Sora 1.2's `timestep_transform`, and the snapshot's (tag, commit)."""
    tag = "v1.2.0"
    root, commit = snapshot("Open-Sora", tag)

    def unused(*args, **kwargs):
        raise NotImplementedError("stand-in: not used by timestep_transform")

    stub("opensora.schedulers.rf")
    stub("opensora.schedulers.iddpm.gaussian_diffusion", _extract_into_tensor=unused, mean_flat=unused)
    module = load(root, "opensora/schedulers/rf/rectified_flow.py", "opensora.schedulers.rf.rectified_flow")
    return module.timestep_transform, tag, commit


# Open-Sora transform cases: pixel height, width, num_frames (what its sampler passes), the
# function's base_resolution, base_num_frames, scale and num_timesteps, and where given a latent
# shape [B, C, T, H, W] (or [B, C, H, W]) with VAE factors whose pixel extent is that height,
# width and num_frames (checked on the Rust side through `transform_ratio`).
OPEN_SORA_CASES = {
    # an image: frame term 1
    "image": dict(height=256, width=256, num_frames=1, shape=(2, 4, 1, 32, 32), spatial=8, temporal=4, causal=True),
    "image_4d": dict(height=512, width=512, num_frames=1, shape=(2, 4, 64, 64), spatial=8, temporal=4, causal=True),
    # 17 frames: frame term 5
    "f17": dict(height=360, width=640, num_frames=17, shape=(2, 4, 5, 45, 80), spatial=8, temporal=4, causal=True),
    # not multiples of 17: 20 -> 5, 34 -> 10 (other bases and a scale)
    "f20": dict(height=192, width=192, num_frames=20, shape=(2, 4, 5, 24, 24), spatial=8, temporal=4, causal=False),
    "f34": dict(height=480, width=640, num_frames=34, shape=(1, 4, 17, 30, 40), spatial=16, temporal=2, causal=False,
                base_resolution=256 * 256, base_num_frames=4, scale=0.5),
    # 51 frames: frame term 15; timesteps in [0, 1000] as in Open-Sora's training and sampling
    "f51": dict(height=720, width=1280, num_frames=51, num_timesteps=1000),
    "f102": dict(height=480, width=854, num_frames=102, base_resolution=256 * 256, base_num_frames=4, scale=2.0,
                 num_timesteps=1000),
    # 2 to 16 frames: frame term 16 // 17 * 5 = 0, ratio 0: t' = 0, and 0 / 0 = NaN at t = 1
    "f16": dict(height=256, width=256, num_frames=16, shape=(2, 4, 4, 32, 32), spatial=8, temporal=4, causal=False),
    "f2": dict(height=256, width=256, num_frames=2, scale=3.0),
}
OPEN_SORA_DEFAULTS = dict(base_resolution=512 * 512, base_num_frames=1, scale=1.0, num_timesteps=1)

# Pixel-frames variant cases: latent shape [B, C, T, H, W], VAE factors, base values, scale.
PIXEL_FRAMES_CASES = {
    # an image through a causal 8x / 4x VAE: 256x256 pixels, 1 frame
    "image": dict(shape=(2, 4, 1, 32, 32), spatial=8, temporal=4, causal=True, base_res=512 * 512, base_frames=1, scale=1.0),
    # 17 frames of 360x640 through the same VAE
    "video": dict(shape=(2, 4, 5, 45, 80), spatial=8, temporal=4, causal=True, base_res=512 * 512, base_frames=1, scale=1.0),
    # non-causal VAE (T = F / 4), other bases and a scale
    "plain_vae": dict(shape=(2, 16, 6, 30, 40), spatial=16, temporal=4, causal=False, base_res=256 * 256, base_frames=4, scale=0.5),
}


def pixel_frames_ratio(c: dict) -> float:
    """Our variant: r = sqrt(H W / base_resolution) * sqrt(F / base_frames) * scale, H, W, F in pixels
    and pixel frames (F = 1 + (T - 1) * temporal for a causal VAE, else T * temporal)."""
    _, _, t, h, w = c["shape"]
    frames = 1 + (t - 1) * c["temporal"] if c["causal"] else t * c["temporal"]
    height, width = h * c["spatial"], w * c["spatial"]
    return math.sqrt(height * width / c["base_res"]) * math.sqrt(frames / c["base_frames"]) * c["scale"]


def meta_value(v):
    return ",".join(map(str, v)) if isinstance(v, tuple) else v


def training() -> None:
    seed = 21
    gen = seed_everything(seed)
    tensors, params = {}, {}
    n = 16
    # logit-normal times from diffusers' own SD3 helper, with the standard normal draws replayed
    for key, (m, s) in {"ln_a": (0.0, 1.0), "ln_b": (0.5, 0.8)}.items():
        g = torch.Generator().manual_seed(seed + len(tensors))
        twin = torch.Generator().manual_seed(seed + len(tensors))
        u = compute_density_for_timestep_sampling("logit_normal", n, logit_mean=m, logit_std=s, generator=g)
        z = torch.normal(mean=0.0, std=1.0, size=(n,), generator=twin)
        tensors[f"{key}.z"], tensors[f"{key}.t"] = z, u
        params[f"{key}.mean"], params[f"{key}.std"] = m, s
    # the transform on a grid of times t in [0, 1]
    # (rounded to the fixture's float32 first, so that both sides transform the same times)
    t = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(13, generator=gen, dtype=torch.float64)]).float().double()
    tensors["transform.t"] = t
    # Open-Sora's own function, float64 per-sample tensors as its sampler builds them (there in the
    # model dtype); its output is in timestep units (t' * num_timesteps)
    timestep_transform, tag, commit = open_sora_timestep_transform()
    for case, c in OPEN_SORA_CASES.items():
        c = {**OPEN_SORA_DEFAULTS, **c}
        n_t = c["num_timesteps"]
        kwargs = {k: torch.full_like(t, float(c[k])) for k in ("height", "width", "num_frames")}
        out = timestep_transform(
            t * n_t, kwargs, base_resolution=c["base_resolution"], base_num_frames=c["base_num_frames"],
            scale=c["scale"], num_timesteps=n_t,
        )
        tensors[f"open_sora.{case}.t"] = out
        for k, v in c.items():
            params[f"open_sora.{case}.{k}"] = meta_value(v)
    params["open_sora.cases"] = ",".join(OPEN_SORA_CASES)
    # our pixel-frames variant, from its formula: t' = r t / (1 + (r - 1) t)
    for case, c in PIXEL_FRAMES_CASES.items():
        r = pixel_frames_ratio(c)
        tensors[f"pixel_frames.{case}.r"] = torch.tensor([r], dtype=torch.float64)
        tensors[f"pixel_frames.{case}.t"] = r * t / (1 + (r - 1) * t)
        for k, v in c.items():
            params[f"pixel_frames.{case}.{k}"] = meta_value(v)
    params["pixel_frames.cases"] = ",".join(PIXEL_FRAMES_CASES)
    # training batch as in diffusers' SD3 / Flux training scripts
    x0 = torch.randn(3, 2, 4, generator=gen)
    noise = torch.randn(3, 2, 4, generator=gen)
    sig = torch.tensor([0.0, 0.3, 0.95])
    s = sig[:, None, None]
    tensors.update({"batch.x0": x0, "batch.noise": noise, "batch.t": sig})
    tensors["batch.x_t"] = (1.0 - s) * x0 + s * noise
    tensors["batch.target"] = noise - x0
    save("sched_flow_training", tensors, GEN, seed, upstream_tag=tag, upstream_commit=commit, **params)


def guidance() -> None:
    seed = 31
    gen = seed_everything(seed)
    # per-sample scales differ so that a per-sample std matters
    scale = torch.tensor([1.0, 3.0])[:, None, None, None]
    cond = torch.randn(2, 4, 3, 5, generator=gen) * scale + 0.3
    uncond = torch.randn(2, 4, 3, 5, generator=gen) * scale
    w = 7.5
    tensors = {"cond": cond, "uncond": uncond}
    for r in (0.0, 0.7, 1.0):
        cfg = uncond + w * (cond - uncond)
        tensors[f"rescale_{r}"] = rescale_noise_cfg(cfg, cond, guidance_rescale=r)
    save("sched_guidance", tensors, GEN, seed, guidance_scale=w, rescales="0.0,0.7,1.0")


if __name__ == "__main__":
    tables()
    trajectories()
    training()
    guidance()
