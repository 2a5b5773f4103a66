"""Joins the JSON lines of the two sides of bench/cpu_vs_torch.sh into a markdown table.

    python bench/compare_rows.py VIDGEN.jsonl TORCH.jsonl

Lines with a `median_ms` are rows; the `stdit_check` and `lingen_check` lines of the PyTorch side
(each twin's largest deviation from the vidgen forward) are printed under the table.
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
    print()
    for name in ("stdit_check", "lingen_check"):
        check = theirs.get(name)
        if check:
            params = f", {check['parameters']} parameters" if "parameters" in check else ""
            print(f"{name}: max |twin − vidgen| = {check['max_abs_diff']:.2e} "
                  f"(max |out| {check['max_abs_out']:.2f}{params})")


if __name__ == "__main__":
    main()
