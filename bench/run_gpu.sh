#!/usr/bin/env bash
# vidgen vs PyTorch on one GPU, in one device call (see /work/shared/GPU.md and docs/PERFORMANCE.md).
#
#   bench/run_gpu.sh build [cuda|wgpu]   # here (Rust toolchain, no GPU needed): builds
#                                        # examples/gpu_bench and vidgen-attention's
#                                        # gpu_attention tests in release, strips and
#                                        # xz-compresses them into .gpu/
#   bench/run_gpu.sh [SIZE OPTIONS..]    # on the GPU machine, from the repository root (carry
#                                        # .gpu): runs the kernel tests (bf16 and the tensor-core
#                                        # kernel are only tested on a real device), the Rust
#                                        # program, then the PyTorch script with the same
#                                        # options, and prints ratios
#
# SIZE OPTIONS are gpu_bench's (`.gpu/gpu_bench --help`), e.g. `--lens 1024,4096 --iters 20`;
# both programs take them. Everything is also written under $OUT (the device tool's result
# folder) when it is set: device.txt, tests.txt, vidgen.txt, torch.txt, ratios.tsv. A failing
# test is reported and the benchmarks still run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == build ]]; then
  feature=${2:-cuda}
  cargo build --release --features "$feature" --example gpu_bench
  mkdir -p .gpu
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
  cp target/release/examples/gpu_bench .gpu/gpu_bench
  # The test binary's path is the "executable" of the compiler-artifact message for the test.
  tests=$(cargo test --release -p vidgen-attention --features "$feature" --test gpu_attention \
    --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu_attention":
        print(m["executable"])')
  cp "$tests" .gpu/gpu_attention
  strip .gpu/gpu_bench .gpu/gpu_attention
  # Stripped, the two binaries are ~58 MiB: with the working tree that is above the 64 MiB the
  # device tool carries, so they travel xz-compressed (~9 MiB) and are unpacked there.
  python3 -c 'import lzma, os, shutil, sys
for p in sys.argv[1:]:
    with open(p, "rb") as src, lzma.open(p + ".xz", "wb", preset=6) as dst:
        shutil.copyfileobj(src, dst)
    os.remove(p)' .gpu/gpu_bench .gpu/gpu_attention
  ls -l .gpu/
  du -sh .gpu
  exit 0
fi

# Unpack the binaries the build step compressed (.gpu/NAME.xz → $bin_dir/NAME).
bin_dir=$(mktemp -d)
for packed in .gpu/*.xz; do
  [[ -e $packed ]] || continue
  name=$(basename "$packed" .xz)
  python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$packed" "$bin_dir/$name"
  chmod +x "$bin_dir/$name"
done
unpacked() { if [[ -x $bin_dir/$1 ]]; then echo "$bin_dir/$1"; else echo ".gpu/$1"; fi; }
bin=${GPU_BENCH_BIN:-$(unpacked gpu_bench)}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
    echo "nvidia-smi: not available"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} | tee "$out/device.txt"

tests_bin=${GPU_TESTS_BIN:-$(unpacked gpu_attention)}
if [[ -x $tests_bin ]]; then
  echo "::: tests ($tests_bin)"
  "$tests_bin" --test-threads 1 2>&1 | tee "$out/tests.txt" || echo "::: tests FAILED (see tests.txt)"
fi

echo "::: vidgen ($bin $*)"
"$bin" "$@" 2>&1 | tee "$out/vidgen.txt"
echo "::: torch (bench/torch_gpu_bench.py $*)"
python3 bench/torch_gpu_bench.py "$@" 2>&1 | tee "$out/torch.txt"

table() { if command -v column >/dev/null; then column -t -s $'\t'; else cat; fi; }

# Join the RESULT lines on (case, size): vidgen median / torch median (> 1: vidgen slower).
echo "::: ratios (median ms)"
awk -F'\t' '
  $1 != "RESULT" { next }
  $2 == "vidgen" { v[$3 "\t" $4] = $5; order[++n] = $3 "\t" $4 }
  $2 == "torch"  { t[$3 "\t" $4] = $5 }
  END {
    print "case\tsize\tvidgen_ms\ttorch_ms\tvidgen/torch"
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (k in t) printf "%s\t%s\t%s\t%.2f\n", k, v[k], t[k], v[k] / t[k]
      else printf "%s\t%s\t-\t-\n", k, v[k]
    }
  }' "$out/vidgen.txt" "$out/torch.txt" | tee "$out/ratios.tsv" | table
