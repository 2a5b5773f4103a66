"""Golden fixtures for vidgen-schedulers' DDPM and DDIM, from diffusers 0.42.1's DDPMScheduler and
DDIMScheduler.

- sched_ddpm_tables: alphas_cumprod per beta schedule (once; DDIM's equal DDPM's, checked here) and
  the inference timesteps of every class x beta schedule x spacing x step count, plus steps_offset
  and zero-SNR cases, and diffusers' trailing-spacing quirk at 61 steps.
- sched_ddpm_traj: full sampling trajectories (every intermediate sample) with a deterministic fake
  denoiser written identically in the Rust test, and the noise of every step. Each case carries the
  scheduler's own `to_json_string()` in its metadata, which the Rust test loads as its config.
- sched_ddpm_training: add_noise and get_velocity.
- sched_ddim_diffusers_exact: DDIM trajectories where diffusers' previous timestep
  `t - num_train_timesteps // num_inference_steps` is not the next entry of its timestep table
  (trailing spacing with n not dividing N; linspace; leading with a steps_offset that keeps the
  last previous timestep >= 0), for vidgen's `PrevTimestep::Diffusers` mode.

Run: python golden/gen_schedulers_ddpm.py              (every fixture)
     python golden/gen_schedulers_ddpm.py diffusers_exact   (only the named ones)
"""

from __future__ import annotations

import math

import torch

import diffusers.schedulers.scheduling_ddpm as ddpm_module
from diffusers import DDIMScheduler, DDPMScheduler

from common import save, seed_everything

GEN = "golden/gen_schedulers_ddpm.py"
N = 1000
SPACINGS = ("linspace", "leading", "trailing")
STEPS = (1, 3, 4, 16, 50)
# DDPMScheduler also accepts "laplace" (not in vidgen's BetaSchedule); DDIMScheduler rejects
# "sigmoid" with NotImplementedError.
DDPM_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "trained")
DDIM_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "trained")
BETA_RANGE = {"scaled_linear": (0.00085, 0.012)}


def trained_betas() -> torch.Tensor:
    # Any increasing betas in (0, 1); float32 is what both diffusers and the fixture hold.
    x = torch.linspace(0.0, 1.0, N, dtype=torch.float64)
    return (1e-4 + 0.03 * x**1.5).to(torch.float32)


def kwargs(schedule: str, betas: torch.Tensor) -> dict:
    start, end = BETA_RANGE.get(schedule, (0.0001, 0.02))
    kw = dict(num_train_timesteps=N, beta_start=start, beta_end=end, beta_schedule=schedule)
    if schedule == "trained":
        kw["trained_betas"] = betas.tolist()
    return kw


def tables() -> None:
    seed = 21
    seed_everything(seed)
    betas = trained_betas()
    out = {"trained_betas": betas}
    for schedule in DDPM_SCHEDULES:
        kw = kwargs(schedule, betas)
        ac = DDPMScheduler(**kw).alphas_cumprod
        out[f"ac.{schedule}"] = ac
        if schedule in DDIM_SCHEDULES:
            assert torch.equal(DDIMScheduler(**kw).alphas_cumprod, ac)
        for zsnr_schedule in ("linear", "scaled_linear"):
            if schedule == zsnr_schedule:
                out[f"ac.{schedule}.zsnr"] = DDPMScheduler(**kw, rescale_betas_zero_snr=True).alphas_cumprod
        for cls, name, schedules in ((DDPMScheduler, "ddpm", DDPM_SCHEDULES), (DDIMScheduler, "ddim", DDIM_SCHEDULES)):
            if schedule not in schedules:
                continue
            for spacing in SPACINGS:
                for steps in STEPS:
                    s = cls(**kw, timestep_spacing=spacing)
                    s.set_timesteps(steps)
                    out[f"ts.{name}.{schedule}.{spacing}.{steps}"] = s.timesteps.to(torch.float32)
                s = cls(**kw, timestep_spacing=spacing, steps_offset=1)
                s.set_timesteps(4)
                out[f"ts.{name}.{schedule}.{spacing}.4.off1"] = s.timesteps.to(torch.float32)
    # All 1000 steps once per spacing.
    for spacing in SPACINGS:
        s = DDPMScheduler(timestep_spacing=spacing)
        s.set_timesteps(N)
        out[f"ts.ddpm.linear.{spacing}.1000"] = s.timesteps.to(torch.float32)
    # diffusers' np.arange(1000, 0, -1000/61) overshoots by one element: 62 timesteps, the last -1.
    s = DDIMScheduler(timestep_spacing="trailing")
    s.set_timesteps(61)
    out["quirk.trailing61"] = s.timesteps.to(torch.float32)
    save("sched_ddpm_tables", out, GEN, seed, num_train_timesteps=N, steps=",".join(map(str, STEPS)))


def fake_model(x: torch.Tensor, t: int, variance_type: str | None) -> torch.Tensor:
    """The deterministic stand-in denoiser; the Rust test writes the same function. The learned
    variance types get C more channels: `v in (-1, 1)` for learned_range, a positive variance for
    learned."""
    out = torch.tanh(0.5 * x) * math.cos(t / 300) + 0.1 * torch.sin(x)
    if variance_type == "learned_range":
        out = torch.cat([out, torch.tanh(0.7 * x)], dim=1)
    elif variance_type == "learned":
        out = torch.cat([out, 0.05 * (1 + torch.tanh(0.7 * x))], dim=1)
    return out


TRAJ_SHAPE = (2, 3, 4)
# name -> (class, config kwargs, steps, eta). Default clip_sample is True in both classes.
TRAJ_CASES = {
    "ddpm_small_eps": (DDPMScheduler, dict(variance_type="fixed_small", clip_sample=False), 8, None),
    "ddpm_small_log_eps": (
        DDPMScheduler,
        dict(variance_type="fixed_small_log", clip_sample=False, steps_offset=1),
        5,
        None,
    ),
    "ddpm_large_v": (
        DDPMScheduler,
        dict(
            variance_type="fixed_large",
            prediction_type="v_prediction",
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            timestep_spacing="trailing",
        ),
        6,
        None,
    ),
    "ddpm_learned_range_eps": (
        DDPMScheduler,
        dict(variance_type="learned_range", beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace"),
        5,
        None,
    ),
    "ddpm_learned_v": (
        DDPMScheduler,
        dict(variance_type="learned", prediction_type="v_prediction", clip_sample=False, timestep_spacing="trailing"),
        4,
        None,
    ),
    "ddpm_clip_sample": (
        DDPMScheduler,
        dict(prediction_type="sample", clip_sample=True, clip_sample_range=0.8),
        6,
        None,
    ),
    "ddpm_threshold": (
        DDPMScheduler,
        dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.5, clip_sample=False),
        7,
        None,
    ),
    "ddim_eta0_eps": (DDIMScheduler, dict(clip_sample=False), 10, 0.0),
    "ddim_eta1_v_zsnr": (
        DDIMScheduler,
        dict(
            prediction_type="v_prediction",
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            rescale_betas_zero_snr=True,
            timestep_spacing="trailing",
            clip_sample=False,
        ),
        5,
        1.0,
    ),
    "ddim_eta1_sample_clip": (
        DDIMScheduler,
        dict(prediction_type="sample", set_alpha_to_one=False, steps_offset=1, clip_sample_range=0.9),
        4,
        1.0,
    ),
    "ddim_eta05_threshold": (
        DDIMScheduler,
        dict(thresholding=True, dynamic_thresholding_ratio=0.8, sample_max_value=2.0, clip_sample=False),
        6,
        0.5,
    ),
}


def trajectory(name: str, cls, kw: dict, steps: int, eta, tensors: dict, params: dict) -> None:
    scheduler = cls(num_train_timesteps=N, **kw)
    scheduler.set_timesteps(steps)
    variance_type = kw.get("variance_type")
    x = torch.randn(*TRAJ_SHAPE)
    noise = torch.randn(steps, *TRAJ_SHAPE)
    tensors[f"{name}.x_T"] = x
    tensors[f"{name}.noise"] = noise
    samples = []
    for i, t in enumerate(scheduler.timesteps.tolist()):
        out = fake_model(x, t, variance_type)
        if cls is DDPMScheduler:
            # DDPMScheduler.step draws its own noise with randn_tensor; hand it the stored one.
            ddpm_module.randn_tensor = lambda shape, generator=None, device=None, dtype=None, i=i: noise[i].clone()
            x = scheduler.step(out, t, x).prev_sample
        else:
            x = scheduler.step(out, t, x, eta=eta, variance_noise=noise[i].clone()).prev_sample
        samples.append(x)
    tensors[f"{name}.traj"] = torch.stack(samples)
    tensors[f"{name}.timesteps"] = scheduler.timesteps.to(torch.float32)
    params[f"{name}.config"] = scheduler.to_json_string()
    params[f"{name}.steps"] = steps
    if eta is not None:
        params[f"{name}.eta"] = eta


def trajectories() -> None:
    seed = 22
    seed_everything(seed)
    tensors, params = {}, {}
    for name, (cls, kw, steps, eta) in TRAJ_CASES.items():
        trajectory(name, cls, kw, steps, eta, tensors, params)
    params["cases"] = ",".join(TRAJ_CASES)
    save("sched_ddpm_traj", tensors, GEN, seed, **params)


def training() -> None:
    seed = 23
    seed_everything(seed)
    x0 = torch.randn(4, 2, 3)
    noise = torch.randn(4, 2, 3)
    timesteps = torch.tensor([0, 1, 500, 999])
    tensors = {"x0": x0, "noise": noise, "timesteps": timesteps.to(torch.float32)}
    cases = {
        "linear": DDPMScheduler(),
        "scaled_linear_zsnr": DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True
        ),
    }
    for name, s in cases.items():
        tensors[f"{name}.add_noise"] = s.add_noise(x0, noise, timesteps)
        tensors[f"{name}.velocity"] = s.get_velocity(x0, noise, timesteps)
    save("sched_ddpm_training", tensors, GEN, seed, cases=",".join(cases))


ZSNR_V = dict(
    prediction_type="v_prediction",
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    clip_sample=False,
)
# name -> (config kwargs, steps, eta). In each, some step's diffusers previous timestep is not the
# next table entry: trailing 9 steps: 555 -> 444 (table: 443); linspace 4 steps
# [999, 666, 333, 0]: 999 -> 749, 666 -> 416, 333 -> 83, and 0 -> -250 < 0, so final_alpha_cumprod
# (alphas_cumprod[0], set_alpha_to_one=False); leading 9 steps + offset 111 [999, ..., 111]: the
# last step goes to 0 >= 0, so alphas_cumprod[0] although set_alpha_to_one=True.
DIFFUSERS_EXACT_CASES = {
    "ddim_trailing9_zsnr_v": (ZSNR_V, 9, 0.0),
    "ddim_trailing9_zsnr_v_eta1": (ZSNR_V, 9, 1.0),
    "ddim_linspace4_eps_noone_eta05": (
        dict(timestep_spacing="linspace", set_alpha_to_one=False, clip_sample=False),
        4,
        0.5,
    ),
    "ddim_leading9_off111_eps": (dict(steps_offset=111, clip_sample=False), 9, 0.0),
}


def diffusers_exact() -> None:
    seed = 24
    seed_everything(seed)
    tensors, params = {}, {}
    for name, (kw, steps, eta) in DIFFUSERS_EXACT_CASES.items():
        trajectory(name, DDIMScheduler, kw, steps, eta, tensors, params)
    params["cases"] = ",".join(DIFFUSERS_EXACT_CASES)
    save("sched_ddim_diffusers_exact", tensors, GEN, seed, **params)


GENERATORS = {
    "tables": tables,
    "trajectories": trajectories,
    "training": training,
    "diffusers_exact": diffusers_exact,
}

if __name__ == "__main__":
    import sys

    torch.set_grad_enabled(False)
    for name in sys.argv[1:] or GENERATORS:
        GENERATORS[name]()
