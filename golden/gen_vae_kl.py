"""Golden fixtures for vidgen-vae's 2D KL autoencoder, from diffusers' own `AutoencoderKL`.

For each case this writes two files:
- `vae_kl_<case>_weights.safetensors`: the model's state dict exactly as diffusers saves it (the
  file vidgen-vae's loader reads, so the golden test doubles as the load test);
- `vae_kl_<case>_io.safetensors`: input, noise, posterior mean/logvar/std, sample, KL, scaled
  latent, decoded output and full forward output, with the config in the metadata.

Weights are diffusers' random init with the GroupNorm affines and all biases perturbed, so every
parameter matters.

Run: python golden/gen_vae_kl.py   (writes golden/fixtures/vae_kl_*.safetensors)
"""

from __future__ import annotations

import torch

from diffusers import AutoencoderKL

from common import save, seed_everything

GEN = "golden/gen_vae_kl.py"

CASES = {
    # Two levels, mid-block attention, quant convs: the brief's tiny config.
    "a": dict(
        seed=11,
        shape=(2, 3, 16, 16),
        config=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(8, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=16,
            scaling_factor=0.18215,
            shift_factor=None,
            use_quant_conv=True,
            use_post_quant_conv=True,
            mid_block_add_attention=True,
        ),
    ),
    # Three levels, two resnets per level (shortcut convs in both directions), no attention, no
    # quant convs, shift factor (SD3/FLUX style), non-square input, odd channel counts.
    "b": dict(
        seed=12,
        shape=(1, 2, 16, 8),
        config=dict(
            in_channels=2,
            out_channels=1,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(4, 8, 8),
            layers_per_block=2,
            latent_channels=3,
            norm_num_groups=2,
            sample_size=16,
            scaling_factor=1.5305,
            shift_factor=0.0609,
            use_quant_conv=False,
            use_post_quant_conv=False,
            mid_block_add_attention=False,
        ),
    ),
}


def perturb(model: torch.nn.Module, g: torch.Generator) -> None:
    """GroupNorm weights ~ 1 + 0.2·N(0,1), every bias ~ 0.2·N(0,1) (diffusers inits them to 1 / 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("bias"):
                p.copy_(0.2 * noise)
            elif p.ndim == 1:
                p.copy_(1.0 + 0.2 * noise)


def case(name: str, seed: int, shape: tuple[int, ...], config: dict) -> None:
    g = seed_everything(seed)
    model = AutoencoderKL(**config).eval()
    perturb(model, g)
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        posterior = model.encode(x).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=g)
        sample = posterior.mean + posterior.std * noise  # DiagonalGaussianDistribution.sample
        kl = posterior.kl()
        shift = config["shift_factor"] or 0.0
        scaled = (sample - shift) * config["scaling_factor"]
        decoded = model.decode(sample).sample
        forward = model(x).sample  # mode() then decode
    weights = {k: v for k, v in model.state_dict().items()}
    save(f"vae_kl_{name}_weights", weights, GEN, seed)
    tensors = {
        "input": x,
        "noise": noise,
        "mean": posterior.mean,
        "logvar": posterior.logvar,
        "std": posterior.std,
        "sample": sample,
        "kl": kl,
        "scaled": scaled,
        "decoded": decoded,
        "forward": forward,
    }
    params = {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in config.items()}
    save(f"vae_kl_{name}_io", tensors, GEN, seed, **params)


def main() -> None:
    for name, spec in CASES.items():
        case(name, **spec)


if __name__ == "__main__":
    main()
