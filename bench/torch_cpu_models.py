"""PyTorch side of the same-run CPU comparison with vidgen (`examples/cpu_vs_torch.rs`): whole models
and kernels at the shapes of the Rust rows, on CPU with a fixed thread count.

Run from the repository root inside the golden venv:

    . golden/.venv/bin/activate
    python bench/torch_cpu_models.py [--threads 2] [--runs 10] [--warmup 2] [--rows a,b,...]
                                     [--check DIR]

Each row: `warmup` untimed calls, then `runs` timed calls (`time.perf_counter`); prints one JSON line
`{"row": NAME, "median_ms": .., "min_ms": .., "runs": N}`. Rows:

- `stdit_train_step_b8`: one training step of the shipped tiny STDiT (bench/twins/stdit.py, weights
  from assets/tiny_stdit.safetensors) at batch 8: video `[8, 3, 8, 16, 16]` in `[-1, 1]`, label ids
  `[8, 4]` with lengths 4 (as moving-shapes batches), the rectified-flow loss of `flow_loss`
  (noise, logit-normal times N(1.5, 1.5), caption dropout 0.1 to the null caption, velocity MSE),
  backward, per-tensor gradient-norm clipping at 1 (Burn's `GradientClippingConfig::Norm(1.0)`
  clips each parameter's gradient separately), AdamW with Burn's defaults (β 0.9 / 0.999, ε 1e-5,
  weight decay 1e-4, decoupled) at the constant learning rate 1e-3;
- `stdit_sample_30`: one video `[1, 3, 8, 16, 16]` from "red square moving right" (ids 2, 5, 7, 9),
  30 rectified-flow Euler steps (`σ = linspace(1, 1/1000, 30)`, then 0), classifier-free guidance
  4 as vidgen's `CfgMode::Batched`: one forward on `[uncond; cond]` (batch 2, the null caption with
  the prompt's padding), `v = u + 4·(c − u)`, a finite check of the sample each step, fps 8, under
  `torch.inference_mode()`;
- `ssd_L1024`, `ssd_L4096`, `ssd_L16384`: mamba-ssm's `ssd_minimal_discrete` at
  `[b, L, h, p, n] = [1, L, 8, 64, 64]`, `B`/`C` one per head `[1, L, 8, 64]`, `A = dt·A` uniform in
  `[-0.1, -0.001)`, chunk 256 (the Rust row's inputs; 256 is `Mamba2Config`'s default chunk);
- `attention_L1024`, `attention_L4096`: `F.scaled_dot_product_attention` on f32 `[1, 8, L, 64]`,
  no mask;
- `lingen_train_step_b8`: one training step of the LinGen-style DiT (bench/twins/lingen.py, the
  Rust side's config and weights from `--check DIR`) at batch 8: latents `[8, 3, 8, 16, 16]`, times
  uniform in [0, 1000), text `[8, 4, 32]` without padding, velocity MSE against a fixed target,
  backward, AdamW (Burn's defaults as above, learning rate 1e-3, no clipping);
- `lingen_sample_30`: one `[1, 3, 8, 16, 16]` latent, 30 Euler steps (the σ of `stdit_sample_30`),
  guidance 4 against the zero text, batched `[uncond; cond]`, a finite check per step, under
  `torch.inference_mode()`.

`--check DIR`: DIR is where the Rust example wrote its check files (`--check DIR` there). The STDiT
twin runs on the inputs of `stdit_check.safetensors` (`x`, `t`, `y`, `mask`, `fps`, `out`), the
LinGen twin, loaded strictly from `lingen_config.json` and `lingen_weights.safetensors`, on those
of `lingen_check.safetensors` (`x`, `t`, `y`, `mask`, `out`); one line per model
`{"row": "stdit_check" | "lingen_check", "max_abs_diff": .., "max_abs_out": ..}` (the LinGen line
also gives `"parameters"`) is printed before the rows. The LinGen rows need DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "twins"))
from stdit import key_padding, load_tiny  # noqa: E402
import lingen  # noqa: E402

ROWS = (
    "stdit_train_step_b8",
    "stdit_sample_30",
    "ssd_L1024",
    "ssd_L4096",
    "ssd_L16384",
    "attention_L1024",
    "attention_L4096",
    "lingen_train_step_b8",
    "lingen_sample_30",
)
SSD_CHUNK = 256
PROMPT_IDS = [2, 5, 7, 9]  # "red square moving right" in the tiny tokenizer (data/labels.rs)


def timed(row: str, runs: int, warmup: int, f) -> dict:
    """`warmup` untimed calls of `f`, then `runs` timed ones; prints and returns the row's line."""
    for _ in range(warmup):
        f()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t0) * 1e3)
    line = {"row": row, "median_ms": round(statistics.median(ms), 3),
            "min_ms": round(min(ms), 3), "runs": runs}
    print(json.dumps(line), flush=True)
    return line


# --- STDiT ---------------------------------------------------------------------------------------


def clip_grad_norm_per_tensor_(params, max_norm: float) -> None:
    """Burn's `GradientClipping::Norm`: each gradient tensor scaled by
    `min(1, max_norm / (‖g‖₂ + tiny))` on its own (not one global norm as `clip_grad_norm_`)."""
    tiny = torch.finfo(torch.float32).tiny
    for p in params:
        if p.grad is not None:
            p.grad.mul_((max_norm / (torch.linalg.vector_norm(p.grad) + tiny)).clamp(max=1.0))


def train_step_row(runs: int, warmup: int) -> None:
    twin, config = load_tiny()
    twin.train()
    batch = config.get("batch_size", 8)
    data = config["data"]
    frames, size = data["frames"], data["size"]
    vocab = twin.text_embedder.embedding.num_embeddings
    gen = torch.Generator().manual_seed(0)
    videos = torch.rand(batch, 3, frames, size, size, generator=gen) * 2 - 1
    ids = torch.randint(2, vocab, (batch, 4), generator=gen)  # 4-word labels, no padding
    lens = [4] * batch
    params = list(twin.parameters())
    optim = torch.optim.AdamW(params, lr=config.get("learning_rate", 1e-3), betas=(0.9, 0.999),
                              eps=1e-5, weight_decay=1e-4)

    def step():
        optim.zero_grad(set_to_none=True)
        loss = twin.flow_loss(videos, ids, lens, generator=gen)
        loss.backward()
        clip_grad_norm_per_tensor_(params, 1.0)
        optim.step()

    timed("stdit_train_step_b8", runs, warmup, step)


def flow_sigmas(steps: int, num_train_timesteps: int = 1000) -> list[float]:
    """`RectifiedFlowConfig::default()` (shift 1, no dynamic shift) over `steps`: `σ_i =
    linspace(N, 1, steps)/N` (f64, last value exact), then the terminal 0."""
    a, b = 1.0 * num_train_timesteps, 1.0
    step = (b - a) / (steps - 1)
    values = [a + step * i for i in range(steps)]
    values[-1] = b
    return [v / num_train_timesteps for v in values] + [0.0]


def euler_cfg(velocity, x: torch.Tensor, sigmas: list[float], guidance: float) -> torch.Tensor:
    """Rectified-flow Euler steps over `sigmas` with batched classifier-free guidance:
    `velocity(x2, t)` runs on `[x; x]` at model time `σ·1000` and returns `[uncond; cond]`,
    `v = u + guidance·(c − u)`, `x += (σ_{i+1} − σ_i)·v`; a finite check of the sample each step
    (vidgen's `FiniteCheck::EveryStep`)."""
    n = x.shape[0]
    for i in range(len(sigmas) - 1):
        out = velocity(torch.cat([x, x]), torch.full((2 * n,), sigmas[i] * 1000.0))
        uncond, cond = out[:n], out[n:]
        x = x + (uncond + (cond - uncond) * guidance) * (sigmas[i + 1] - sigmas[i])
        if not bool(torch.isfinite((x * 0.0).sum())):
            raise FloatingPointError(f"non-finite sample at step {i}")
    return x


def sample_row(runs: int, warmup: int, steps: int = 30, guidance: float = 4.0) -> None:
    twin, config = load_tiny()
    twin.eval()
    model = twin.model
    data = config["data"]
    shape = (1, 3, data["frames"], data["size"], data["size"])
    fps = config.get("fps", 8.0)
    sigmas = flow_sigmas(steps)
    ids = torch.tensor([PROMPT_IDS])
    lens = [len(PROMPT_IDS)]
    gen = torch.Generator()

    def sample():
        gen.manual_seed(0)
        text = twin.text_embedder(ids)
        n, length, _ = text.shape
        pad = key_padding(lens, length)
        both = torch.cat([model.y_embedder.null(n, length), text])  # [uncond; cond]
        both_pad = torch.cat([pad, pad])
        fps_both = torch.full((2 * n,), fps)
        x = torch.randn(shape, generator=gen)
        return euler_cfg(lambda x2, t: model(x2, t, both, fps_both, text_pad=both_pad), x,
                         sigmas, guidance)

    with torch.inference_mode():
        timed("stdit_sample_30", runs, warmup, sample)


def check_row(directory: str) -> None:
    """Both twins on the Rust side's inputs against its outputs."""
    twin, _ = load_tiny()
    twin.eval()
    case = load_file(os.path.join(directory, "stdit_check.safetensors"))
    with torch.no_grad():
        out = twin.model(case["x"], case["t"], case["y"], case["fps"],
                         text_pad=case["mask"] == 0)
    line = {"row": "stdit_check", "max_abs_diff": (out - case["out"]).abs().max().item(),
            "max_abs_out": case["out"].abs().max().item()}
    print(json.dumps(line), flush=True)

    twin = load_lingen(directory)
    case = load_file(os.path.join(directory, "lingen_check.safetensors"))
    with torch.no_grad():
        out = twin(case["x"], case["t"], case["y"], text_pad=case["mask"] == 0)
    line = {"row": "lingen_check", "max_abs_diff": (out - case["out"]).abs().max().item(),
            "max_abs_out": case["out"].abs().max().item(),
            "parameters": sum(p.numel() for p in twin.parameters())}
    print(json.dumps(line), flush=True)


# --- LinGen-style DiT ----------------------------------------------------------------------------


def load_lingen(directory: str | None) -> lingen.LinGenTwin:
    """The twin of the Rust rows' model: `lingen_config.json` and `lingen_weights.safetensors` of
    the check directory, loaded strictly."""
    if directory is None:
        raise SystemExit("the lingen rows need --check DIR (the Rust side's config and weights)")
    return lingen.load(os.path.join(directory, "lingen_config.json"),
                       os.path.join(directory, "lingen_weights.safetensors"))


def lingen_train_step_row(runs: int, warmup: int, directory: str | None) -> None:
    twin = load_lingen(directory)
    twin.train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 8, 16, 16, generator=gen)
    target = torch.randn(8, 3, 8, 16, 16, generator=gen)
    t = torch.rand(8, generator=gen) * 1000.0
    text = torch.randn(8, 4, 32, generator=gen)
    optim = torch.optim.AdamW(twin.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-5,
                              weight_decay=1e-4)

    def step():
        optim.zero_grad(set_to_none=True)
        loss = (twin(x, t, text) - target).square().mean()
        loss.backward()
        optim.step()

    timed("lingen_train_step_b8", runs, warmup, step)


def lingen_sample_row(runs: int, warmup: int, directory: str | None, steps: int = 30,
                      guidance: float = 4.0) -> None:
    twin = load_lingen(directory)
    twin.eval()
    sigmas = flow_sigmas(steps)
    gen = torch.Generator()
    text = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(2))
    both = torch.cat([torch.zeros_like(text), text])  # [uncond; cond]

    def sample():
        gen.manual_seed(0)
        x = torch.randn(1, 3, 8, 16, 16, generator=gen)
        return euler_cfg(lambda x2, t: twin(x2, t, both), x, sigmas, guidance)

    with torch.inference_mode():
        timed("lingen_sample_30", runs, warmup, sample)


# --- SSD and attention kernels -------------------------------------------------------------------


def ssd_row(length: int, runs: int, warmup: int, ssd) -> None:
    h, p, n = 8, 64, 64
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, length, h, p, generator=gen)
    a = -0.1 + (0.1 - 0.001) * torch.rand(1, length, h, generator=gen)  # dt·A < 0
    b = torch.randn(1, length, h, n, generator=gen)
    c = torch.randn(1, length, h, n, generator=gen)
    with torch.inference_mode():
        timed(f"ssd_L{length}", runs, warmup, lambda: ssd(x, a, b, c, SSD_CHUNK))


def attention_row(length: int, runs: int, warmup: int) -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 8, length, 64, generator=gen) for _ in range(3))
    with torch.inference_mode():
        timed(f"attention_L{length}", runs, warmup,
              lambda: F.scaled_dot_product_attention(q, k, v))


# --- main ----------------------------------------------------------------------------------------


def parse_rows(value: str) -> list[str]:
    rows = [r for r in value.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown rows {unknown} (rows: {', '.join(ROWS)})")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per row (Rust: 2)")
    parser.add_argument("--rows", type=parse_rows, default=list(ROWS),
                        help="comma-separated subset of: " + ", ".join(ROWS))
    parser.add_argument("--check", metavar="DIR",
                        help="compare the twins with the Rust forwards written to DIR first")
    args = parser.parse_args()
    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--runs and --threads must be positive, --warmup non-negative")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)

    if args.check:
        check_row(args.check)
    ssd = None
    for row in args.rows:
        if row == "stdit_train_step_b8":
            train_step_row(args.runs, args.warmup)
        elif row == "stdit_sample_30":
            sample_row(args.runs, args.warmup)
        elif row == "lingen_train_step_b8":
            lingen_train_step_row(args.runs, args.warmup, args.check)
        elif row == "lingen_sample_30":
            lingen_sample_row(args.runs, args.warmup, args.check)
        elif row.startswith("ssd_L"):
            if ssd is None:
                ssd, source = lingen.SSD_MINIMAL, lingen.SSD_SOURCE
                print(f"ssd_minimal_discrete from {source}", file=sys.stderr)
            ssd_row(int(row[len("ssd_L"):]), args.runs, args.warmup, ssd)
        else:
            attention_row(int(row[len("attention_L"):]), args.runs, args.warmup)


if __name__ == "__main__":
    main()
