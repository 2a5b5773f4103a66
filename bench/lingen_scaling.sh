#!/usr/bin/env bash
# LinGen's MATE block against the same block with full self-attention (examples/lingen_scaling.rs):
# FLOPs and CPU latency from 1024 to MAX_TOKENS tokens, then the table and the plot
# docs/lingen_scaling.png (bench/plot_scaling.py: golden venv + bench/requirements.txt).
#
#   bench/lingen_scaling.sh               # up to 65536 tokens (several minutes on 2 cores)
#   MAX_TOKENS=16384 bench/lingen_scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_TOKENS=${MAX_TOKENS:-65536}
THREADS=${THREADS:-2}
out=$(mktemp -d)
cargo build --quiet --release --example lingen_scaling
echo "# $(date -u +%Y-%m-%d) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $THREADS threads" >&2
RAYON_NUM_THREADS=$THREADS target/release/examples/lingen_scaling --max-tokens "$MAX_TOKENS" \
    | tee "$out/scaling.jsonl" >&2
# shellcheck disable=SC1091
. golden/.venv/bin/activate
python bench/plot_scaling.py "$out/scaling.jsonl" docs/lingen_scaling.png
rm -rf "$out"
