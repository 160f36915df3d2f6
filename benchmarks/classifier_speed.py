"""What `make run` costs on this machine, and the default classifier's throughput on each backend.

Usage: .venv/bin/python benchmarks/classifier_speed.py [--home DIR]

1. First run: `chainstage train --default` in a fresh `CHAINSTAGE_HOME` (``--home``, default a new temporary folder),
   so it builds the base encoder from the pinned wheels, trains on every labelled unit and exports ONNX, as
   `make run` does on a new machine. The venv install is not included: pip's time depends on the network.
2. Later runs: `chainstage classify` on a seed report with the model in place, timed from process start.
3. Throughput of the trained default model on all seed reports, per backend, with `Predictor` in this process.

Prints figures; asserts nothing (tests assert behaviour, this script measures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_FILE = ROOT / "seeds/001_2040a8d96ddfc16d.txt"


def timed(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    """Wall seconds of one command, from process start to exit (its progress bars, on stderr, still show)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def throughput(folder: Path) -> None:
    from data.load import load_report
    from data.reading_config import load_reading_config
    from models.onnx_backend import read_parity
    from models.predictor import Predictor

    reading = load_reading_config()
    reports = [load_report(path, reading) for path in sorted((ROOT / "seeds").glob("*.txt"))]
    units = sum(len(report.units) for report in reports)
    backends = ["torch", "onnx"] if read_parity(folder) else ["torch"]
    for backend in backends:
        started = time.perf_counter()
        predictor = Predictor.load(folder, backend=backend)
        load_seconds = time.perf_counter() - started
        predictor.classify_report(reports[3])  # warm-up: first-call allocations are not throughput
        started = time.perf_counter()
        for report in reports:
            predictor.classify_report(report)
        seconds = time.perf_counter() - started
        print(f"  {backend:<5} ({predictor.backend}{'' if backend == 'torch' else ', fastest passing variant'}): "
              f"{units / seconds:.1f} units/s over {units} seed units, load {load_seconds:.1f} s, "
              f"batch {predictor.config.predict.batch_size}, length-sorted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="fresh CHAINSTAGE_HOME (default: a temporary one)")
    args = parser.parse_args()
    chainstage = str(Path(sys.executable).with_name("chainstage"))
    with tempfile.TemporaryDirectory(prefix="chainstage-home-") as temporary:
        home = (args.home or Path(temporary)).resolve()
        if (home / "models").exists():
            sys.exit(f"{home} is not fresh: a first run needs an empty CHAINSTAGE_HOME")
        env = {**os.environ, "CHAINSTAGE_HOME": str(home)}
        print(f"{os.cpu_count()} CPUs; CHAINSTAGE_HOME={home}", flush=True)
        first = timed([chainstage, "train", "--default"], env)
        print(f"first run, `chainstage train --default` (base encoder build + training + ONNX export): {first:.0f} s",
              flush=True)
        classify = timed([chainstage, "classify", str(RUN_FILE)], env)
        print(f"later run, `chainstage classify {RUN_FILE.name}` from process start: {classify:.1f} s")
        print(f"first `make run` after install: {first + classify:.0f} s ({(first + classify) / 60:.1f} min)")
        os.environ["CHAINSTAGE_HOME"] = str(home)
        sys.path.insert(0, str(ROOT))
        from models.folder_layout import default_model_dir

        throughput(default_model_dir())


if __name__ == "__main__":
    main()
