"""Golden fixtures for vidgen-schedulers' EDM module, from k-diffusion 0.1.1.post1 and diffusers 0.42.1.

- sched_edm_kdiff: k-diffusion's get_sigmas_karras, and sample_euler / sample_heun trajectories with
  a deterministic fake denoiser, with and without churn. k-diffusion draws the churn noise with
  `torch.randn_like` inside the sampler; we monkeypatch it to hand out stored noise in order and
  record every step through the sampler's `callback`.
- sched_edm_diffusers: EDMEulerScheduler and EulerDiscreteScheduler sigmas, timesteps and full
  noise-free trajectories through diffusers' own loop (scale_model_input, fake model, step), with
  each scheduler's own `to_json_string()` stored in the metadata.

Run: python golden/gen_schedulers_edm.py   (writes golden/fixtures/sched_edm_*.safetensors)
"""

from __future__ import annotations

import json
import math

import torch

import k_diffusion.sampling as ks
from diffusers import EDMEulerScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_euler_discrete import rescale_zero_terminal_snr

from common import save, seed_everything

GEN = "golden/gen_schedulers_edm.py"
SHAPE = (2, 3, 4)


# ---------------------------------------------------------------- k-diffusion


def fake_denoiser(x: torch.Tensor, sigma: torch.Tensor, sd: float = 0.5) -> torch.Tensor:
    """Written identically in the Rust test: x·sd²/(σ²+sd²) + tanh(x)·0.3·σ/(1+σ)."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
    return x * sd**2 / (s**2 + sd**2) + torch.tanh(x) * 0.3 * s / (1 + s)


def run_kdiff(sampler, x, sigmas, churn_noise, **churn):
    """Runs a k-diffusion sampler, feeding `churn_noise[i]` to its i-th randn_like call."""
    calls = iter(range(churn_noise.shape[0]))
    real = ks.torch.randn_like
    ks.torch.randn_like = lambda like: churn_noise[next(calls)].clone()
    xs, dens = [], []

    def callback(info):
        xs.append(info["x"].clone())
        dens.append(info["denoised"].clone())

    try:
        out = sampler(fake_denoiser, x, sigmas, callback=callback, disable=True, **churn)
    finally:
        ks.torch.randn_like = real
    return out, torch.stack(xs), torch.stack(dens)


def kdiff() -> None:
    seed = 11
    gen = seed_everything(seed)
    tensors, params = {}, {}
    for key, (n, smin, smax, rho) in {
        "a": (10, 0.002, 80.0, 7.0),
        "b": (5, 0.1, 10.0, 3.0),
        "c": (1, 0.5, 2.0, 7.0),
    }.items():
        tensors[f"karras_{key}"] = ks.get_sigmas_karras(n, smin, smax, rho)
        params.update({f"karras_{key}.n": n, f"karras_{key}.sigma_min": smin,
                       f"karras_{key}.sigma_max": smax, f"karras_{key}.rho": rho})
    n, smin, smax, rho = 8, 0.02, 20.0, 7.0
    sigmas = ks.get_sigmas_karras(n, smin, smax, rho)
    x0 = torch.randn(SHAPE, generator=gen) * smax
    churn_noise = torch.randn((n, *SHAPE), generator=gen)
    tensors.update({"x_init": x0, "churn_noise": churn_noise})
    churn = dict(s_churn=2.0, s_tmin=0.5, s_tmax=10.0, s_noise=1.003)
    params.update({"traj.n": n, "traj.sigma_min": smin, "traj.sigma_max": smax, "traj.rho": rho,
                   **{f"churn.{k}": v for k, v in churn.items()}})
    for name, sampler in {"euler": ks.sample_euler, "heun": ks.sample_heun}.items():
        with torch.no_grad():
            for tag, kw in {"plain": {}, "churn": churn}.items():
                out, xs, dens = run_kdiff(sampler, x0.clone(), sigmas, churn_noise, **kw)
                tensors[f"{name}_{tag}.out"] = out
                tensors[f"{name}_{tag}.x_hat"] = xs
                tensors[f"{name}_{tag}.denoised"] = dens
    save("sched_edm_kdiff", tensors, GEN, seed, **params)


# ---------------------------------------------------------------- diffusers


def fake_model(x_in: torch.Tensor, t) -> torch.Tensor:
    """Written identically in the Rust test: tanh(x)·0.7 + x·0.1·cos(0.01·t)."""
    return torch.tanh(x_in) * 0.7 + x_in * 0.1 * math.cos(0.01 * float(t))


def diffusers_loop(sched, noise: torch.Tensor):
    x = noise * sched.init_noise_sigma
    xs = [x]
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        x = sched.step(fake_model(x_in, t), t, x).prev_sample
        xs.append(x)
    return torch.stack(xs)


def betas64(cfg) -> torch.Tensor:
    """diffusers' EulerDiscrete betas, evaluated in float64 (diffusers itself uses float32)."""
    n = cfg.num_train_timesteps
    if cfg.trained_betas is not None:
        betas = torch.tensor(cfg.trained_betas, dtype=torch.float64)
    elif cfg.beta_schedule == "linear":
        betas = torch.linspace(cfg.beta_start, cfg.beta_end, n, dtype=torch.float64)
    elif cfg.beta_schedule == "scaled_linear":
        betas = torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, n, dtype=torch.float64) ** 2
    else:  # squaredcos_cap_v2, betas_for_alpha_bar's formula
        abar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)],
                             dtype=torch.float64)
    if cfg.rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


EULER_CASES = {
    "lin_eps": (10, dict(timestep_spacing="linspace")),
    "lead_v": (10, dict(timestep_spacing="leading", steps_offset=1, beta_schedule="scaled_linear",
                        beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction")),
    "trail_sample": (7, dict(timestep_spacing="trailing", prediction_type="sample")),
    "karras_eps": (9, dict(use_karras_sigmas=True, beta_schedule="scaled_linear", beta_start=0.00085,
                           beta_end=0.012)),
    "karras_v_min": (6, dict(use_karras_sigmas=True, sigma_min=0.1, sigma_max=12.0, prediction_type="v_prediction",
                             final_sigmas_type="sigma_min", timestep_spacing="leading")),
    "cos_zsnr_v": (8, dict(beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True,
                           timestep_spacing="trailing", prediction_type="v_prediction",
                           timestep_type="continuous")),
    "trail_karras_sample": (5, dict(timestep_spacing="trailing", use_karras_sigmas=True, prediction_type="sample")),
}

EDM_CASES = {
    "edm_eps": (8, dict()),
    "edm_v": (6, dict(prediction_type="v_prediction", sigma_data=1.0, sigma_min=0.01, sigma_max=50.0, rho=5.0,
                      final_sigmas_type="sigma_min")),
    "edm_exp": (7, dict(sigma_schedule="exponential", sigma_max=20.0)),
}


def diffusers_cases() -> None:
    seed = 12
    gen = seed_everything(seed)
    tensors, params = {}, {}
    noise = torch.randn(SHAPE, generator=gen)
    tensors["noise"] = noise
    for key, (n, kw) in EULER_CASES.items():
        sched = EulerDiscreteScheduler(**kw)
        cfg_json = sched.to_json_string()
        sched.set_timesteps(n)
        tensors[f"{key}.sigmas"] = sched.sigmas
        tensors[f"{key}.timesteps"] = sched.timesteps
        tensors[f"{key}.init_noise_sigma"] = torch.tensor([float(sched.init_noise_sigma)])
        with torch.no_grad():
            tensors[f"{key}.traj"] = diffusers_loop(sched, noise)
        # The same set_timesteps, run on float64 alphas_cumprod: isolates diffusers' float32 betas.
        ref = EulerDiscreteScheduler(**kw)
        ac = torch.cumprod(1.0 - betas64(ref.config), dim=0)
        if ref.config.rescale_betas_zero_snr:
            ac[-1] = 2**-24
        ref.alphas_cumprod = ac
        ref.set_timesteps(n)
        tensors[f"{key}.sigmas64"] = ref.sigmas
        tensors[f"{key}.timesteps64"] = ref.timesteps
        params[f"{key}.config"] = cfg_json
        params[f"{key}.steps"] = n
    for key, (n, kw) in EDM_CASES.items():
        sched = EDMEulerScheduler(**kw)
        cfg_json = sched.to_json_string()
        sched.set_timesteps(n)
        tensors[f"{key}.sigmas"] = sched.sigmas
        tensors[f"{key}.timesteps"] = sched.timesteps
        tensors[f"{key}.init_noise_sigma"] = torch.tensor([float(sched.init_noise_sigma)])
        with torch.no_grad():
            tensors[f"{key}.traj"] = diffusers_loop(sched, noise)
        params[f"{key}.config"] = cfg_json
        params[f"{key}.steps"] = n
    params["cases.euler"] = json.dumps(list(EULER_CASES))
    params["cases.edm"] = json.dumps(list(EDM_CASES))
    save("sched_edm_diffusers", tensors, GEN, seed, **params)


if __name__ == "__main__":
    kdiff()
    diffusers_cases()
