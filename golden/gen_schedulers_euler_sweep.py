"""Golden sweep of diffusers 0.42.1's EulerDiscreteScheduler schedule tables.

- sched_euler_sweep: for every beta schedule (linear, scaled_linear with Stable Diffusion's
  0.00085..0.012, squaredcos_cap_v2) x timestep_spacing (linspace, leading with steps_offset 1,
  trailing) x use_karras_sigmas (false, true) x num_inference_steps (1, 4, 50), with 1000 training
  timesteps:
  - `<case>.sigmas` / `<case>.timesteps`: diffusers' own `set_timesteps` (betas and alphas_cumprod
    in float32, as diffusers builds them);
  - `<case>.sigmas64` / `<case>.timesteps64`: the same diffusers `set_timesteps` code, run after
    replacing the scheduler's `alphas_cumprod` by a float64 table (betas evaluated in float64 by
    this script), which isolates diffusers' float32 betas from the schedule logic;
  - metadata `<case>.config` (the scheduler's own `to_json_string()`) and `<case>.steps`.
  Plus `ac.<schedule>`: diffusers' float32 alphas_cumprod table per beta schedule, and metadata
  `cases` (JSON list of case keys) and `schedules`.

Run: python golden/gen_schedulers_euler_sweep.py   (writes golden/fixtures/sched_euler_sweep.safetensors)
"""

from __future__ import annotations

import json
import math

import torch
from diffusers import EulerDiscreteScheduler

from common import save, seed_everything

GEN = "golden/gen_schedulers_euler_sweep.py"
N = 1000
SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SPACINGS = ("linspace", "leading", "trailing")
STEPS = (1, 4, 50)
BETA_RANGE = {"scaled_linear": (0.00085, 0.012)}


def config(schedule: str, spacing: str, karras: bool) -> dict:
    start, end = BETA_RANGE.get(schedule, (0.0001, 0.02))
    kw = dict(num_train_timesteps=N, beta_start=start, beta_end=end, beta_schedule=schedule,
              timestep_spacing=spacing, use_karras_sigmas=karras)
    if spacing == "leading":
        kw["steps_offset"] = 1
    return kw


def f64_betas(schedule: str, start: float, end: float, n: int) -> torch.Tensor:
    """The betas diffusers' EulerDiscreteScheduler defines, evaluated in float64 throughout."""
    if schedule == "linear":
        return torch.linspace(start, end, n, dtype=torch.float64)
    if schedule == "scaled_linear":
        return torch.linspace(math.sqrt(start), math.sqrt(end), n, dtype=torch.float64).square()

    def alpha_bar(t: float) -> float:  # Nichol & Dhariwal's cosine schedule
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    ratios = [alpha_bar((i + 1) / n) / alpha_bar(i / n) for i in range(n)]
    return torch.tensor([min(1.0 - r, 0.999) for r in ratios], dtype=torch.float64)


def rerun_f64(kw: dict, steps: int) -> EulerDiscreteScheduler:
    """diffusers' own set_timesteps on a float64 alphas_cumprod table."""
    sched = EulerDiscreteScheduler(**kw)
    cfg = sched.config
    betas = f64_betas(cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps)
    sched.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    sched.set_timesteps(steps)
    return sched


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())


def main() -> None:
    seed = 31
    seed_everything(seed)  # nothing random here; kept for the metadata convention
    tensors, params, cases = {}, {}, []
    worst = {"sigmas": 0.0, "timesteps": 0.0}
    for schedule in SCHEDULES:
        tensors[f"ac.{schedule}"] = EulerDiscreteScheduler(**config(schedule, "linspace", False)).alphas_cumprod
        for spacing in SPACINGS:
            for karras in (False, True):
                for steps in STEPS:
                    key = f"{schedule}.{spacing}.{'karras' if karras else 'plain'}.{steps}"
                    kw = config(schedule, spacing, karras)
                    sched = EulerDiscreteScheduler(**kw)
                    params[f"{key}.config"] = sched.to_json_string()
                    params[f"{key}.steps"] = steps
                    sched.set_timesteps(steps)
                    ref = rerun_f64(kw, steps)
                    assert ref.sigmas.dtype == torch.float32 and len(ref.sigmas) == steps + 1
                    tensors[f"{key}.sigmas"] = sched.sigmas
                    tensors[f"{key}.timesteps"] = sched.timesteps
                    tensors[f"{key}.sigmas64"] = ref.sigmas
                    tensors[f"{key}.timesteps64"] = ref.timesteps
                    worst["sigmas"] = max(worst["sigmas"], max_rel(sched.sigmas[:-1], ref.sigmas[:-1]))
                    nz = ref.timesteps != 0
                    if nz.any():
                        worst["timesteps"] = max(worst["timesteps"],
                                                 max_rel(sched.timesteps[nz], ref.timesteps[nz]))
                    cases.append(key)
    print(f"{len(cases)} cases; stock (f32 betas) vs f64 rerun, max rel: {worst}")
    params["cases"] = json.dumps(cases)
    params["schedules"] = json.dumps(list(SCHEDULES))
    save("sched_euler_sweep", tensors, GEN, seed, **params)


if __name__ == "__main__":
    main()
