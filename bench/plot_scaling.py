"""Table and plot of examples/lingen_scaling.rs's JSON lines: FLOPs and latency ratios of the
full-attention block over the MATE block against the token count.

    python bench/plot_scaling.py SCALING.jsonl OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    print("| tokens | grid | GFLOPs MATE | GFLOPs full | FLOPs ratio | MATE | full | latency ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tokens']} | {'×'.join(map(str, r['grid']))} | {r['flops_mate'] / 1e9:.1f} | "
              f"{r['flops_full'] / 1e9:.1f} | {r['flops_full'] / r['flops_mate']:.2f}× | "
              f"{r['ms_mate']:.0f} ms | {r['ms_full']:.0f} ms | "
              f"**{r['ms_full'] / r['ms_mate']:.2f}×** |")
    n = [r["tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(n, [r["flops_full"] / r["flops_mate"] for r in rows], "o-", label="FLOPs (LinGen's count)")
    ax.plot(n, [r["ms_full"] / r["ms_mate"] for r in rows], "s-", label="latency, CPU (measured)")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("video tokens")
    ax.set_ylabel("full-attention block / MATE block")
    ax.set_title("LinGen MATE block vs full self-attention, d=256")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    print(f"\nwrote {sys.argv[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
