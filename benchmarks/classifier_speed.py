"""Training time and classification throughput of the default classifier on this machine.

Usage: .venv/bin/python benchmarks/classifier_speed.py [--train] [--model DIR]
  --train   also time a full `chainstage train` on all labelled seeds into a temporary folder
Prints figures; asserts nothing (tests assert behaviour, this script measures).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from data.labeled_units import load_labeled
from data.labels import load_labels
from data.load import load_report
from data.reading_config import load_reading_config
from models.classifier_config import load_classifier_config
from models.predictor import Predictor, default_model_dir
from training.model_folder import train_and_save

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_dir()
    if args.train:
        config = load_classifier_config()
        records = load_labeled(ROOT / config.data.labeled)
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            train_and_save(config, load_labels(), records, Path(work) / "model", progress=False)
            print(f"training on {len(records)} units: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    predictor = Predictor.load(model)
    print(f"model load: {time.perf_counter() - start:.2f} s ({model})")
    reading = load_reading_config()
    reports = [load_report(path, reading) for path in sorted((ROOT / "seeds").glob("*.txt"))]
    units = sum(len(r.units) for r in reports)
    predictor.classify_report(reports[3])  # warm-up
    start = time.perf_counter()
    for report in reports:
        predictor.classify_report(report)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"classified {units} seed units in {elapsed:.1f} s: {units / elapsed:.1f} units/s "
          f"(batch {predictor.config.predict.batch_size}, length-sorted); peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
