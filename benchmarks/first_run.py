"""What a new user waits for: the first `make run` from a fresh clone with a fresh HOME, the install included.

Usage: .venv/bin/python benchmarks/first_run.py [--keep DIR]

Clones this repository's HEAD (commit first: the work tree is not copied) into a new folder, then runs, with HOME
set to a new empty folder so that no pip cache or chainstage model is reused:
1. `make install-run`: the venv and what the main job needs, from the package registries;
2. `make run`: the base encoder build, training on every labelled unit, the ONNX export and one classification.
The sum is the first `make run`. pip's part depends on the registry and the network of the moment, so the two parts
are printed apart; progress bars and errors go to stderr. ``--keep`` puts the clone and HOME in DIR and leaves
them; otherwise both are deleted.

Prints figures; asserts nothing (tests assert behaviour, this script measures).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from classifier_speed import timed  # this folder's own timer: stdout dropped, progress bars (stderr) shown

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="make the clone and HOME here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="chainstage-first-run-"))
    clone, home = base / "clone", base / "home"
    home.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CHAINSTAGE_", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    try:
        install = timed(["make", "install-run"], env, clone)
        run = timed(["make", "run"], env, clone)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{os.cpu_count()} CPUs; fresh clone of {commit}, fresh HOME")
    print(f"make install-run (venv, pip install of the package with its onnx extra): {install:.0f} s")
    print(f"make run, the rest (base encoder build, training, ONNX export, classify): {run:.0f} s")
    print(f"first make run: {install + run:.0f} s ({(install + run) / 60:.1f} min)")


if __name__ == "__main__":
    main()
