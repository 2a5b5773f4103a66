"""Regenerates every golden fixture: runs each golden/gen_*.py in turn.

Usage (from the repository root, inside the venv of golden/README.md):
    python golden/generate_all.py
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_LAST = ("gen_opensora_sample.py",)


def main() -> int:
    # gen_opensora_sample.py reads the checkpoint gen_opensora_stdit3.py writes: run it last.
    scripts = sorted(
        glob.glob(os.path.join(HERE, "gen_*.py")),
        key=lambda path: (os.path.basename(path) in RUN_LAST, path),
    )
    for script in scripts:
        print(f"== {os.path.relpath(script)}", flush=True)
        subprocess.run([sys.executable, script], check=True, cwd=HERE)
    print(f"{len(scripts)} generators ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
