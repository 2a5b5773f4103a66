#!/usr/bin/env bash
# Same-run CPU comparison of whole models and kernels with PyTorch (docs/PERFORMANCE.md, "Whole
# models on CPU against PyTorch"): the vidgen rows (examples/cpu_vs_torch.rs), then the PyTorch
# rows (bench/torch_cpu_models.py, golden venv, twins in bench/twins), back to back on this
# machine, then one table of medians and ratios. The twins' equivalence checks run first (the Rust side writes the inputs and
# output of one forward of each model; each twin must reproduce it).
#
#   bench/cpu_vs_torch.sh                 # every row, 10 runs, 2 threads
#   RUNS=20 ROWS=attention_L1024,ssd_L4096 bench/cpu_vs_torch.sh
#
# Threads: Burn's flex pool follows RAYON_NUM_THREADS and torch gets --threads; vidgen's attention
# kernel uses the available cores, so run on a 2-core machine (or pin with taskset -c 0,1) for the
# 2-thread figures.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
THREADS=${THREADS:-2}
ROWS=${ROWS:-stdit_train_step_b8,stdit_sample_30,ssd_L1024,ssd_L4096,ssd_L16384,attention_L1024,attention_L4096,lingen_train_step_b8,lingen_sample_30}
out=$(mktemp -d)
cargo build --quiet --release --example cpu_vs_torch
echo "# $(date -u +%Y-%m-%d) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $THREADS threads, $RUNS runs" >&2
RAYON_NUM_THREADS=$THREADS target/release/examples/cpu_vs_torch --runs "$RUNS" --rows "$ROWS" \
    --check "$out" | tee "$out/vidgen.jsonl" >&2
# shellcheck disable=SC1091
. golden/.venv/bin/activate
python bench/torch_cpu_models.py --threads "$THREADS" --runs "$RUNS" --rows "$ROWS" \
    --check "$out" | tee "$out/torch.jsonl" >&2
python bench/compare_rows.py "$out/vidgen.jsonl" "$out/torch.jsonl"
rm -rf "$out"
