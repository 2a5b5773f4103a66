"""PyTorch SDPA on CPU with 2 threads at the shapes of `benches/attention_cpu.rs`.

Run inside the golden venv on the same machine, right after (or before) the Rust bench:

    . golden/.venv/bin/activate && python bench/torch_sdpa_cpu.py [--runs 20] [--threads 2]

Prints, per shape, the median and minimum wall time of `runs` calls after warm-up, in ms.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def time_sdpa(shape, runs, warmup=3):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
    with torch.inference_mode():
        for _ in range(warmup):
            F.scaled_dot_product_attention(q, k, v)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, runs {args.runs}")
    for seq in (1024, 4096):
        shape = (1, 8, seq, 64)
        median, best = time_sdpa(shape, args.runs)
        print(f"sdpa {list(shape)}: median {median:.2f} ms, min {best:.2f} ms")


if __name__ == "__main__":
    main()
