"""Golden fixtures for vidgen-schedulers' rectified flow and classifier-free guidance.

References:
- diffusers 0.42.1 `FlowMatchEulerDiscreteScheduler` (`set_timesteps`, `step`) and the pipelines'
  `calculate_shift` (flux; read from its source) for `mu` from a sequence length;
- diffusers `training_utils.compute_density_for_timestep_sampling("logit_normal", ...)` for the
  logit-normal time sampling (SD3), and the SD3 training scripts' `x_t = (1 - s) x0 + s eps`,
  target `eps - x0`;
- the Open-Sora 1.2 resolution- and length-aware timestep transform, evaluated directly from its
  formula below (Open-Sora's code is not a dependency);
- diffusers `rescale_noise_cfg` (guiders/guider_utils.py, identical to the stable-diffusion pipeline's)
  after plain CFG for the guidance fixture.

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


# Open-Sora 1.2 transform cases: latent shape [B, C, T, H, W], VAE factors, base values, scale.
TRANSFORM_CASES = {
    # an image through a causal 8x / 4x VAE: 256x256 pixels, 1 frame
    "image": dict(shape=(2, 4, 1, 32, 32), spatial=8, temporal=4, causal=True, base_res=512 * 512, base_frames=1, scale=1.0),
    # 17 frames of 360x640 through the same VAE
    "video": dict(shape=(2, 4, 5, 45, 80), spatial=8, temporal=4, causal=True, base_res=512 * 512, base_frames=1, scale=1.0),
    # non-causal VAE (T = F / 4), other bases and a scale
    "plain_vae": dict(shape=(2, 16, 6, 30, 40), spatial=16, temporal=4, causal=False, base_res=256 * 256, base_frames=4, scale=0.5),
}


def open_sora_ratio(c: dict) -> float:
    """r = sqrt(H W / base_resolution) * sqrt(F / base_frames) * scale, H, W, F in pixels/frames."""
    _, _, t, h, w = c["shape"]
    frames = 1 + (t - 1) * c["temporal"] if c["causal"] else t * c["temporal"]
    height, width = h * c["spatial"], w * c["spatial"]
    return math.sqrt(height * width / c["base_res"]) * math.sqrt(frames / c["base_frames"]) * c["scale"]


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
    # Open-Sora 1.2 transform t' = r t / (1 + (r - 1) t) on a grid of times
    t = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(13, generator=gen, dtype=torch.float64)]).double()
    tensors["transform.t"] = t
    for case, c in TRANSFORM_CASES.items():
        r = open_sora_ratio(c)
        tensors[f"transform.{case}.r"] = torch.tensor([r], dtype=torch.float64)
        tensors[f"transform.{case}.t"] = r * t / (1 + (r - 1) * t)
        for k, v in c.items():
            params[f"transform.{case}.{k}"] = ",".join(map(str, v)) if isinstance(v, tuple) else v
    params["transform.cases"] = ",".join(TRANSFORM_CASES)
    # training batch as in diffusers' SD3 / Flux training scripts
    x0 = torch.randn(3, 2, 4, generator=gen)
    noise = torch.randn(3, 2, 4, generator=gen)
    sig = torch.tensor([0.0, 0.3, 0.95])
    s = sig[:, None, None]
    tensors.update({"batch.x0": x0, "batch.noise": noise, "batch.t": sig})
    tensors["batch.x_t"] = (1.0 - s) * x0 + s * noise
    tensors["batch.target"] = noise - x0
    save("sched_flow_training", tensors, GEN, seed, **params)


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
