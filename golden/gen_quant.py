"""Golden fixtures for vidgen-quant.

quant_uniform: eqs. 13-14 in torch float32 (torch.round = half to even), cross-checked here against
torch's fake-quantization kernels (torch.fake_quantize_per_tensor_affine / per_channel_affine),
which agree except where x * (1/S) and x / S round differently; parameters per eq. 15:
S = (beta - alpha) / (2^b - 1) computed in float64 and rounded to float32, Z = round(alpha / S).
The survey writes Q = Int(r/S) - Z; torch writes q = round(r/S) + zp, so zp = -Z.

quant_distill: the survey's eqs. 16-17 in torch (F.kl_div with log_target, as DeiT's
DistillationLoss; F.cross_entropy), with gradients w.r.t. the student logits.
"""

import numpy as np
import torch
import torch.nn.functional as F

from common import save, seed_everything

SEED = 0


def params(x: torch.Tensor, bits: int, symmetric: bool, axis):
    """(S, Z) per channel (axis) or per tensor (axis None), float64 then float32 as in Rust."""
    x64 = x.double()
    if axis is None:
        lo, hi = x64.min().reshape(1), x64.max().reshape(1)
    else:
        dims = [d for d in range(x.dim()) if d != axis]
        lo, hi = x64.amin(dim=dims), x64.amax(dim=dims)
    if symmetric:
        m = torch.maximum(lo.abs(), hi.abs())
        lo, hi = -m, m
    s = ((hi.float().double() - lo.float().double()) / (2**bits - 1)).float()
    z = torch.zeros_like(s, dtype=torch.float64) if symmetric else (lo.float().double() / s.double()).round()
    return s, z


def uniform_cases(gen: torch.Generator) -> dict:
    out = {}
    x = torch.randn(6, 40, generator=gen) * torch.linspace(0.2, 3.0, 6).reshape(6, 1)
    # torch's kernels need zp = -Z in [quant_min, quant_max]: make every row and column straddle 0.
    x[0], x[1] = x[0].abs(), -x[1].abs()
    x[0, 0], x[1, 0] = -x[0, 0], -x[1, 0]
    assert ((x.amin(1) < 0) & (x.amax(1) > 0)).all()
    out["x"] = x
    for bits in (8, 4):
        for symmetric in (False, True):
            qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)
            for axis in (None, 0, 1):
                s, z = params(x, bits, symmetric, axis)
                zp = (-z).to(torch.int32)
                if axis is None:
                    kernel = torch.fake_quantize_per_tensor_affine(x, s.item(), int(zp.item()), qmin, qmax)
                    s_b, z_b = s.reshape(1, 1), z.float().reshape(1, 1)
                else:
                    kernel = torch.fake_quantize_per_channel_affine(x, s, zp, axis, qmin, qmax)
                    view = (-1, 1) if axis == 0 else (1, -1)
                    s_b, z_b = s.reshape(view), z.float().reshape(view)
                # Eqs. 13-14 in float32 with r / S (torch's kernel multiplies by 1/S instead, which
                # can move an element sitting on a rounding tie by one step).
                q = (torch.round(x / s_b) - z_b).clamp(qmin, qmax)
                y = (q + z_b) * s_b
                differ = (y != kernel)
                ties = torch.round(x / s_b) != torch.round(x * (1.0 / s_b))
                assert bool((differ <= ties).all()), "formula and torch kernel differ off ties"
                name = f"b{bits}_{'sym' if symmetric else 'aff'}_{'t' if axis is None else f'c{axis}'}"
                out[f"{name}.scale"] = s
                out[f"{name}.zero_point"] = z.float()
                out[f"{name}.dequant"] = y
                if differ.any():
                    print(f"{name}: {int(differ.sum())} element(s) differ from torch's kernel at 1/S ties")
    return out


def distill_case(gen: torch.Generator, tau: float, lam: float) -> dict:
    b, c = 5, 7
    s = torch.randn(b, c, generator=gen) * 2.0
    t = torch.randn(b, c, generator=gen) * 2.0
    y = torch.randint(0, c, (b,), generator=gen)
    out = {"student": s, "teacher": t, "labels": y.float(), "teacher_argmax": t.argmax(1).float()}

    def soft(s, reduction):
        kl = F.kl_div(F.log_softmax(s / tau, 1), F.log_softmax(t / tau, 1), reduction="sum", log_target=True)
        return kl * tau * tau / (b if reduction == "batch" else b * c)

    losses = {
        "ce": lambda s: F.cross_entropy(s, y),
        "soft": lambda s: soft(s, "batch"),
        "soft_deit": lambda s: soft(s, "element"),
        "global": lambda s: (1 - lam) * F.cross_entropy(s, y) + lam * soft(s, "batch"),
        "hard": lambda s: 0.5 * F.cross_entropy(s, y) + 0.5 * F.cross_entropy(s, t.argmax(1)),
    }
    for name, fn in losses.items():
        s_ = s.clone().requires_grad_(True)
        loss = fn(s_)
        loss.backward()
        out[f"{name}.loss"] = loss.detach().reshape(1)
        out[f"{name}.grad"] = s_.grad
    # Cross-check against the batchmean reduction of torch itself.
    ref = F.kl_div(F.log_softmax(s / tau, 1), F.log_softmax(t / tau, 1), reduction="batchmean", log_target=True)
    assert torch.allclose(ref * tau * tau, out["soft.loss"][0])
    return out


def main() -> None:
    gen = seed_everything(SEED)
    save("quant_uniform", uniform_cases(gen), "gen_quant.py", SEED, shape="6x40")
    tau, lam = 3.0, 0.3
    save("quant_distill", distill_case(gen, tau, lam), "gen_quant.py", SEED, temperature=tau, lam=lam)


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    main()
