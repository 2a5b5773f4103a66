"""Joins the JSON lines of the two sides of bench/cpu_vs_torch.sh into a markdown table.

    python bench/compare_rows.py VIDGEN.jsonl TORCH.jsonl

Lines with a `median_ms` are rows; the `stdit_check` line of the PyTorch side (the twin's largest
deviation from the vidgen forward) is printed under the table.
"""

import json
import sys


def read(path):
    with open(path) as f:
        return {r["row"]: r for r in (json.loads(line) for line in f if line.startswith("{"))}


def main():
    ours, theirs = read(sys.argv[1]), read(sys.argv[2])
    print("| row | vidgen (median) | PyTorch (median) | ratio (PyTorch / vidgen) |")
    print("|---|---:|---:|---:|")
    for row, r in ours.items():
        if "median_ms" not in r or row not in theirs:
            continue
        a, b = r["median_ms"], theirs[row]["median_ms"]
        print(f"| `{row}` | {a:.1f} ms | {b:.1f} ms | **{b / a:.2f}×** |")
    check = theirs.get("stdit_check")
    if check:
        print(f"\ntwin check: max |twin − vidgen| = {check['max_abs_diff']:.2e} "
              f"(max |out| {check['max_abs_out']:.2f})")


if __name__ == "__main__":
    main()
