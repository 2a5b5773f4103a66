"""PyTorch equivalents of `examples/gpu_bench.rs`, timed the same way and printed in the same format.

Run it in the same device call as the Rust program, with the same size options (see
`bench/run_gpu.sh`, which joins both outputs into ratios):

    python3 bench/torch_gpu_bench.py [--device cuda] [--lens 1024,2048] [--heads 8] ...

Cases (names and sizes match the Rust program's):
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention` on `[B, H, L, Dh]` (PyTorch picks
  its flash / memory-efficient kernel), f32; `sdpa_causal` with `is_causal=True`; `sdpa_bf16` /
  `sdpa_f16` on bf16 / f16 inputs; `sdpa_bf16_tc` / `sdpa_f16_tc` the same calls again, under
  the names of the Rust program's tensor-core kernel cases, so that their ratios join;
- `matmul` / `matmul_bf16`: `[N, N] @ [N, N]` (`--matmul-n`), the roofline;
- `ssd_chunked`: the SSD chunked scan of Mamba2 (Listing 1; mamba_ssm's `ssd_minimal_discrete`)
  in plain torch ops, with one group of `B`/`C` shared by all heads, as the Rust case;
- `retention_parallel` / `retention_step`: RetNet multi-scale retention (torchscale 0.3.0's
  `MultiScaleRetention` and `RetNetRelPos`, re-expressed in torch ops, bias-free projections,
  value width 2·d_model, swish gate, group RMS norm): the parallel form over `L` tokens, and one
  recurrent step from a state at position `p` (the state's values do not change the cost).

Each case runs `--warmup` untimed calls, then `--iters` timed calls, each between two device
synchronisations; lines `RESULT<TAB>torch<TAB>case<TAB>size<TAB>median_ms<TAB>min_ms<TAB>iters`.
Before timing, the chunked SSD is checked against its per-step recurrence and the retention
parallel form against the recurrent one at a tiny size, so a broken equivalent fails loudly.
"""

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

CASES = (
    "sdpa",
    "sdpa_causal",
    "sdpa_bf16",
    "sdpa_f16",
    "sdpa_bf16_tc",
    "sdpa_f16_tc",
    "matmul",
    "matmul_bf16",
    "ssd_chunked",
    "retention_parallel",
    "retention_step",
)
SDPA_CASES = {
    "sdpa": (torch.float32, False),
    "sdpa_causal": (torch.float32, True),
    "sdpa_bf16": (torch.bfloat16, False),
    "sdpa_f16": (torch.float16, False),
    "sdpa_bf16_tc": (torch.bfloat16, False),
    "sdpa_f16_tc": (torch.float16, False),
}
# Cases only the Rust program has; accepted in --only and skipped here.
RUST_ONLY = (
    "attention_burn_fused",
    "spatial_temporal",
    "window_tesa",
    "vae_decode_full",
    "vae_decode_streamed",
)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn, device, warmup, iters):
    """Median and minimum wall time in ms of `fn()` between device syncs, after warm-up."""
    for _ in range(warmup):
        out = fn()
        sync(device)
        del out
    times = []
    for _ in range(iters):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
        del out
    return statistics.median(times), min(times)


def report(case, size, timing, iters):
    median, best = timing
    print(f"RESULT\ttorch\t{case}\t{size}\t{median:.4f}\t{best:.4f}\t{iters}", flush=True)


# --- SSD (Mamba2 Listing 1) -------------------------------------------------------------------


def segsum(x):
    """Stable segment sums: out[..., i, j] = sum_{j < k <= i} x[..., k], -inf above the diagonal."""
    t = x.size(-1)
    x = x.unsqueeze(-1).expand(*x.shape, t)
    strict = torch.tril(torch.ones(t, t, device=x.device, dtype=torch.bool), diagonal=-1)
    sums = torch.cumsum(x.masked_fill(~strict, 0), dim=-2)
    lower = torch.tril(torch.ones(t, t, device=x.device, dtype=torch.bool), diagonal=0)
    return sums.masked_fill(~lower, -torch.inf)


def ssd_chunked(x, a, b, c, chunk):
    """Chunked SSD. x: [B, L, H, P] (already times dt), a: [B, L, H] (dt·A), b, c: [B, L, N] (one
    group shared by the heads); L divisible by `chunk`. Returns y [B, L, H, P]."""
    bs, length, h, p = x.shape
    n_chunks = length // chunk
    x = x.reshape(bs, n_chunks, chunk, h, p)
    b = b.reshape(bs, n_chunks, chunk, -1)
    c = c.reshape(bs, n_chunks, chunk, -1)
    a = a.reshape(bs, n_chunks, chunk, h).permute(0, 3, 1, 2)  # [B, H, C, l]
    a_cumsum = torch.cumsum(a, dim=-1)
    # 1. intra-chunk outputs (diagonal blocks)
    decay = torch.exp(segsum(a))  # [B, H, C, l, s]
    scores = torch.einsum("bcln,bcsn->bcls", c, b)
    y_diag = torch.einsum("bcls,bhcls,bcshp->bclhp", scores, decay, x)
    # 2. per-chunk states
    decay_states = torch.exp(a_cumsum[..., -1:] - a_cumsum)
    states = torch.einsum("bcln,bhcl,bclhp->bchpn", b, decay_states, x)
    # 3. inter-chunk recurrence of the states
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(a_cumsum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    # 4. state -> output per chunk
    y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", c, states, torch.exp(a_cumsum))
    return (y_diag + y_off).reshape(bs, length, h, p)


def ssd_recurrence(x, a, b, c):
    """The per-step recurrence h_t = exp(a_t)·h_{t-1} + x_t ⊗ b_t, y_t = h_t·c_t."""
    bs, length, h, p = x.shape
    state = x.new_zeros(bs, h, p, b.shape[-1])
    ys = []
    for t in range(length):
        state = state * torch.exp(a[:, t])[:, :, None, None] + torch.einsum(
            "bhp,bn->bhpn", x[:, t], b[:, t]
        )
        ys.append(torch.einsum("bhpn,bn->bhp", state, c[:, t]))
    return torch.stack(ys, dim=1)


def ssd_inputs(batch, length, heads, head_dim, d_state, device, gen):
    x = torch.randn(batch, length, heads, head_dim, device=device, generator=gen)
    a = -0.5 * torch.rand(batch, length, heads, device=device, generator=gen)
    b = torch.randn(batch, length, d_state, device=device, generator=gen)
    c = torch.randn(batch, length, d_state, device=device, generator=gen)
    return x, a, b, c


# --- Multi-scale retention (torchscale 0.3.0) -------------------------------------------------


def rotate_every_two(x):
    return torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)


class Retention(torch.nn.Module):
    """torchscale's MultiScaleRetention with its RetNetRelPos tables computed per call."""

    def __init__(self, d_model, heads, eps=1e-6):
        super().__init__()
        value_dim = 2 * d_model
        self.h, self.dk, self.dv, self.eps = heads, d_model // heads, value_dim // heads, eps
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)  # noqa: E731
        self.q, self.k = lin(d_model, d_model), lin(d_model, d_model)
        self.v, self.g = lin(d_model, value_dim), lin(d_model, value_dim)
        self.out = lin(value_dim, d_model)
        angle = 1.0 / (10000 ** torch.linspace(0, 1, self.dk // 2))
        self.register_buffer("angle", angle.unsqueeze(-1).repeat(1, 2).flatten())
        self.register_buffer("decay", torch.log(1 - 2 ** (-5 - torch.arange(heads).float())))

    def project(self, x, positions):
        bs, length, _ = x.shape
        split = lambda t, d: t.view(bs, length, self.h, d).transpose(1, 2)  # noqa: E731
        q = split(self.q(x), self.dk)
        k = split(self.k(x) * self.dk**-0.5, self.dk)
        sin = torch.sin(positions[:, None] * self.angle[None, :])
        cos = torch.cos(positions[:, None] * self.angle[None, :])
        shift = lambda t: t * cos + rotate_every_two(t) * sin  # noqa: E731
        return shift(q), shift(k), self.v(x), self.g(x)

    def finish(self, o, g):
        """o: [B, L, H, dv] -> group RMS norm, swish gate, output projection."""
        bs, length = o.shape[:2]
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.out(F.silu(g) * o.reshape(bs, length, self.h * self.dv))

    def parallel(self, x):
        bs, length, _ = x.shape
        index = torch.arange(length, device=x.device, dtype=x.dtype)
        q, k, v, g = self.project(x, index)
        mask = torch.tril(torch.ones(length, length, device=x.device, dtype=x.dtype))
        mask = torch.masked_fill(index[:, None] - index[None, :], ~mask.bool(), float("inf"))
        mask = torch.nan_to_num(torch.exp(mask * self.decay[:, None, None]))
        mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
        qk = (q @ k.transpose(-1, -2)) * mask
        qk = qk / qk.sum(dim=-1, keepdim=True).abs().clamp(min=1)
        vr = v.view(bs, length, self.h, self.dv).transpose(1, 2)
        return self.finish((qk @ vr).transpose(1, 2), g)

    def step(self, x, kv, scale, position):
        """x: [B, d_model]; kv: [B, H, dk, dv]; scale: [H]; returns (y, kv, scale)."""
        bs = x.shape[0]
        pos = torch.tensor([float(position)], device=x.device, dtype=x.dtype)
        q, k, v, g = self.project(x[:, None], pos)
        k_v = k.reshape(bs, self.h, self.dk, 1) * v.view(bs, self.h, 1, self.dv)
        gamma = self.decay.exp()
        if position == 0:
            new_scale = torch.ones_like(gamma)
            kv = k_v
        else:
            new_scale = scale * gamma + 1
            old = (scale.sqrt() * gamma / new_scale.sqrt()).view(self.h, 1, 1)
            kv = kv * old + k_v / new_scale.sqrt().view(self.h, 1, 1)
        o = torch.einsum("bhk,bhkv->bhv", q.reshape(bs, self.h, self.dk), kv)
        return self.finish(o[:, None], g), kv, new_scale


# --- cases ------------------------------------------------------------------------------------


def self_check(device):
    """Chunked SSD == recurrence and retention parallel == recurrent at a tiny size."""
    gen = torch.Generator(device=device).manual_seed(0)
    x, a, b, c = ssd_inputs(2, 12, 3, 4, 5, device, gen)
    err = (ssd_chunked(x, a, b, c, 4) - ssd_recurrence(x, a, b, c)).abs().max().item()
    assert err < 1e-4, f"chunked SSD differs from its recurrence by {err}"
    torch.manual_seed(0)
    ret = Retention(16, 2, eps=0.0).to(device)
    xs = torch.randn(2, 7, 16, device=device, generator=gen)
    kv, scale, steps = None, None, []
    for i in range(7):
        y, kv, scale = ret.step(xs[:, i], kv, scale, i)
        steps.append(y)
    err = (ret.parallel(xs) - torch.cat(steps, dim=1)).abs().max().item()
    assert err < 1e-4, f"retention parallel form differs from the recurrent one by {err}"


def run_sdpa_and_ssd(args, device, gen):
    for length in args.lens:
        size = f"L={length}"
        shape = (args.batch, args.heads, length, args.head_dim)
        q32, k32, v32 = (torch.randn(shape, device=device, generator=gen) for _ in range(3))
        for case, (dtype, causal) in SDPA_CASES.items():
            if case not in args.only:
                continue
            q, k, v = (t.to(dtype) for t in (q32, k32, v32))
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
            report(case, size, time_it(fn, device, args.warmup, args.iters), args.iters)
            del q, k, v
        del q32, k32, v32
        if "ssd_chunked" in args.only:
            if length % args.chunk:
                print(f"skip ssd_chunked {size}: not a multiple of chunk {args.chunk}")
                continue
            x, a, b, c = ssd_inputs(
                args.batch, length, args.heads, args.head_dim, args.d_state, device, gen
            )
            fn = lambda: ssd_chunked(x, a, b, c, args.chunk)  # noqa: E731
            report("ssd_chunked", size, time_it(fn, device, args.warmup, args.iters), args.iters)
            del x, a, b, c


def run_matmul(args, device, gen):
    n = args.matmul_n
    a, b = (torch.randn(n, n, device=device, generator=gen) for _ in range(2))
    for case, dtype in (("matmul", torch.float32), ("matmul_bf16", torch.bfloat16)):
        if case in args.only:
            x, y = a.to(dtype), b.to(dtype)
            timing = time_it(lambda: x @ y, device, args.warmup, args.iters)
            report(case, f"N={n}", timing, args.iters)


def run_retention(args, device, gen):
    ret = Retention(args.d_model, args.heads).to(device)
    if "retention_parallel" in args.only:
        for length in args.retention_lens:
            x = torch.randn(args.batch, length, args.d_model, device=device, generator=gen)
            timing = time_it(lambda: ret.parallel(x), device, args.warmup, args.iters)
            report("retention_parallel", f"L={length}", timing, args.iters)
    if "retention_step" in args.only:
        token = torch.randn(args.batch, args.d_model, device=device, generator=gen)
        kv_shape = (args.batch, args.heads, ret.dk, ret.dv)
        for position in args.positions:
            kv = torch.randn(kv_shape, device=device, generator=gen)
            gamma = ret.decay.exp()
            scale = (1 - gamma**position) / (1 - gamma)  # G(p) = sum_{k<p} gamma^k
            fn = lambda: ret.step(token, kv, scale, position)  # noqa: E731
            timing = time_it(fn, device, args.warmup, args.iters)
            report("retention_step", f"pos={position}", timing, args.iters)


def int_list(text):
    return [int(v) for v in text.split(",")]


def parse_args():
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--warmup", type=int, default=3 if cuda else 1)
    p.add_argument("--iters", type=int, default=10 if cuda else 3)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8 if cuda else 2)
    p.add_argument("--head-dim", type=int, default=64 if cuda else 16)
    p.add_argument("--d-state", type=int, default=64 if cuda else 16)
    p.add_argument("--chunk", type=int, default=256 if cuda else 32)
    default_lens = "1024,2048,4096,8192,16384,32768" if cuda else "64,128,256"
    p.add_argument("--lens", type=int_list, default=int_list(default_lens))
    p.add_argument(
        "--retention-lens", type=int_list, default=int_list("1024,2048,4096" if cuda else "64,128")
    )
    p.add_argument("--positions", type=int_list, default=int_list("64,1024,16384" if cuda else "16,256"))
    p.add_argument("--d-model", type=int, default=512 if cuda else 64)
    p.add_argument("--matmul-n", type=int, default=8192 if cuda else 256)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    for rust_only in ("--grid", "--vae-latent", "--vae-filters"):
        p.add_argument(rust_only, help="accepted for symmetry with gpu_bench.rs; unused here")
    p.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    args = p.parse_args()
    args.only = set(args.only.split(","))
    unknown = args.only - set(CASES) - set(RUST_ONLY)
    if unknown:
        p.error(f"unknown cases {sorted(unknown)}; cases: {', '.join(CASES)}")
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}; options {vars(args)}", flush=True)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.inference_mode():
        self_check(device)
        run_sdpa_and_ssd(args, device, gen)
        run_matmul(args, device, gen)
        run_retention(args, device, gen)


if __name__ == "__main__":
    main()
