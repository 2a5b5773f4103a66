"""Golden fixtures for vidgen-quant.

quant_uniform: scale S and zero point from torch's observers (`MinMaxObserver` per tensor,
`PerChannelMinMaxObserver` per channel; qschemes per_{tensor,channel}_{affine,symmetric}; quint8
codes [0, 2^b - 1] affine, qint8 codes [-2^(b-1), 2^(b-1) - 1] symmetric, b = 8 and 4 through
quant_min / quant_max), and the dequantized values from torch's fake-quantization kernels
(`torch.fake_quantize_per_tensor_affine` / `per_channel_affine`) with those parameters. The survey
writes Q = Int(r/S) - Z; torch writes q = round(r/S) + zp, so the fixture stores Z = -zp.

How the observers relate to the survey's eq. 15 (S = (beta - alpha) / (2^b - 1), Z = Int(alpha/S)),
which vidgen-quant implements (`crates/vidgen-quant/src/uniform.rs`):

* Range: observers widen [min, max] to include 0 (alpha = min(min, 0), beta = max(max, 0)); eq. 15
  takes [min, max] as it is. They agree when every range holds 0, which the fixture's input does
  (every row and every column straddles 0). Ranges without 0 (affine Z outside the code range) have
  no torch reference: torch's kernels require quant_min <= zp <= quant_max. The Rust property test
  covers them.
* Affine: S = (beta - alpha) / (quant_max - quant_min), zp = quant_min - round(alpha / S) clamped to
  the code range: eq. 15 with quant_min = 0.
* Symmetric: S = max|r| / ((quant_max - quant_min) / 2) = 2 max|r| / (2^b - 1), eq. 15 with
  alpha = -max|r|; zp = 0 for qint8.
* Observers clamp S below at float32 eps; eq. 15 has no clamp (vidgen-quant rejects a zero range).
  No range here comes near it.
* Arithmetic: the observer subtracts max - min in float32 before dividing; vidgen-quant subtracts
  in float64 and rounds S once. For arbitrary float32 inputs the two scales can differ by one ulp
  (on a 6x40 Gaussian input: 7 of 40 affine per-column scales, relative 1.1e-7). The fixture's
  input lies on a 2^-12 grid, where the subtraction is exact in float32 and both give the same S
  (S and Z are compared exactly).
* Dequantization: the kernels compute round(r * (1/S) + zp); eqs. 13-14 (and vidgen-quant) use
  round(r / S) - Z. They differ by one step where r/S sits on a rounding tie, which symmetric mode
  has by construction: alpha / S = -(2^b - 1)/2 at the negative end of the range, so a range whose
  max|r| is negative puts an element on -127.5 (8 bits), and float32 r/S and r*(1/S) fall on either
  side of it. The stored `dequant` is the kernel's output, except at those elements, where it is
  eqs. 13-14's (r/S) value; the generator checks that the two differ nowhere else and prints the
  count (metadata `ties`).
* Group-wise (one (S, Z) per run of elements along an axis): torch has no observer for it (only
  per-tensor and per-channel), so `Granularity::PerGroup` has no torch reference here.

quant_distill: the survey's eqs. 16-17 in torch (F.kl_div with log_target, as DeiT's
DistillationLoss; F.cross_entropy), with gradients w.r.t. the student logits.
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

from common import save, seed_everything

SEED = 0
GRID = 2.0**-12


def observer_params(x: torch.Tensor, bits: int, symmetric: bool, axis):
    """(S, zp) of torch's min/max observer: per tensor (axis None) or per channel along axis."""
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)
    kw = dict(dtype=torch.qint8 if symmetric else torch.quint8, quant_min=qmin, quant_max=qmax)
    if axis is None:
        qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        observer = MinMaxObserver(qscheme=qscheme, **kw)
    else:
        qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        observer = PerChannelMinMaxObserver(ch_axis=axis, qscheme=qscheme, **kw)
    observer(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scale, zp = observer.calculate_qparams()
    return scale, zp, qmin, qmax


def uniform_cases(gen: torch.Generator) -> tuple[dict, int]:
    out = {}
    x = torch.randn(6, 40, generator=gen) * torch.linspace(0.2, 3.0, 6).reshape(6, 1)
    # Observers and eq. 15 agree on ranges that hold 0: make every row and column straddle 0.
    x[0], x[1] = x[0].abs(), -x[1].abs()
    x[0, 0], x[1, 0] = -x[0, 0], -x[1, 0]
    # A 2^-12 grid keeps max - min exact in float32 (see the header).
    x = torch.round(x / GRID) * GRID
    assert ((x.amin(1) < 0) & (x.amax(1) > 0)).all() and ((x.amin(0) < 0) & (x.amax(0) > 0)).all()
    out["x"] = x
    ties_total = 0
    for bits in (8, 4):
        for symmetric in (False, True):
            for axis in (None, 0, 1):
                s, zp, qmin, qmax = observer_params(x, bits, symmetric, axis)
                if axis is None:
                    y = torch.fake_quantize_per_tensor_affine(x, s.item(), int(zp.item()), qmin, qmax)
                    s_b, z_b = s.reshape(1, 1), -zp.float().reshape(1, 1)
                else:
                    y = torch.fake_quantize_per_channel_affine(x, s, zp.int(), axis, qmin, qmax)
                    view = (-1, 1) if axis == 0 else (1, -1)
                    s_b, z_b = s.reshape(view), -zp.float().reshape(view)
                # Eqs. 13-14 with r / S, as vidgen-quant computes them: equal to the kernel except
                # where r / S and r * (1 / S) round to different integers (ties; see the header).
                formula = ((torch.round(x / s_b) - z_b).clamp(qmin, qmax) + z_b) * s_b
                ties = torch.round(x / s_b) != torch.round(x * (1.0 / s_b))
                differ = formula != y
                assert bool((differ <= ties).all()), "eqs. 13-14 and torch's kernel differ off ties"
                ties_total += int(differ.sum())
                y = torch.where(differ, formula, y)
                name = f"b{bits}_{'sym' if symmetric else 'aff'}_{'t' if axis is None else f'c{axis}'}"
                out[f"{name}.scale"] = s
                out[f"{name}.zero_point"] = -zp.float()
                out[f"{name}.dequant"] = y
                if differ.any():
                    print(f"{name}: {int(differ.sum())} element(s) at a 1/S tie take eqs. 13-14's value")
    return out, ties_total


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
    tensors, ties = uniform_cases(gen)
    save("quant_uniform", tensors, "gen_quant.py", SEED, shape="6x40", grid=GRID, ties=ties)
    tau, lam = 3.0, 0.3
    save("quant_distill", distill_case(gen, tau, lam), "gen_quant.py", SEED, temperature=tau, lam=lam)


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    main()
