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


def main() -> int:
    scripts = sorted(glob.glob(os.path.join(HERE, "gen_*.py")))
    for script in scripts:
        print(f"== {os.path.relpath(script)}", flush=True)
        subprocess.run([sys.executable, script], check=True, cwd=HERE)
    print(f"{len(scripts)} generators ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
