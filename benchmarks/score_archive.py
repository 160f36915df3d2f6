"""Throughput and peak memory of `chainstage score` on a synthetic archive: local engine, Ray with 1 and 2 workers.

Usage: .venv/bin/python benchmarks/score_archive.py [--reports 200] [--model DIR] [--work DIR]

Builds an archive of reports put together from the seeds' top-level sections (seeded, so the same archive every
time), in UTF-8 and GBK .txt, .docx and .html, with a broken file (empty, binary or truncated .docx) every
``--broken-every`` reports, then runs each engine as its own `chainstage score` process on a fresh output folder.
Rates count the whole run: process start, model loading (and Ray start-up) included. Peak memory is the largest
sum of the resident set sizes of the run's process tree (driver, workers, and for Ray its daemons), sampled every
0.2 s; pages shared between processes count once per process. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from data.load import load_report
from data.reading_config import load_reading_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the .docx builder the tests use

from report_files import docx_bytes  # noqa: E402

ENGINES = {"local (2 workers)": ["--engine", "local", "--workers", "2"],
           "ray (1 worker)": ["--engine", "ray", "--workers", "1"],
           "ray (2 workers)": ["--engine", "ray", "--workers", "2"]}


def seed_sections() -> list[str]:
    """The text of every top-level section of the seeds (the preamble before the first heading included)."""
    reading = load_reading_config()
    sections = []
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        report = load_report(path, reading)
        text = report.text
        starts = [0, *(child.heading.start for child in report.root.children if child.heading is not None), len(text)]
        sections += [text[a:b].strip() for a, b in zip(starts, starts[1:], strict=False) if text[a:b].strip()]
    return sections


def build_archive(folder: Path, reports: int, broken_every: int, seed: int = 13) -> tuple[int, int]:
    """Write ``reports`` reports of 2-3 seed sections each, plus broken files; returns (good, broken) counts."""
    rng = random.Random(seed)
    sections = seed_sections()
    broken = 0
    for index in range(reports):
        text = f"某市科学技术局工作报告（第{index + 1}号）\n" + "\n".join(rng.sample(sections, rng.randint(2, 3)))
        kind = ("docx", "html", "gbk")[index % 3] if index % 5 == 0 else "txt"
        shelf = folder / f"shelf-{index % 7}"
        shelf.mkdir(parents=True, exist_ok=True)
        if kind == "docx":
            (shelf / f"report-{index:04d}.docx").write_bytes(docx_bytes(text))
        elif kind == "html":
            body = "".join(f"<p>{line}</p>" for line in text.splitlines())
            page = f"<!doctype html><html><head><meta charset='utf-8'></head><body><article>{body}</article></body>"
            (shelf / f"report-{index:04d}.html").write_text(page, encoding="utf-8")
        else:
            encoding = "gbk" if kind == "gbk" else "utf-8"
            (shelf / f"report-{index:04d}.txt").write_bytes(text.encode(encoding, errors="ignore"))
        if index % broken_every == broken_every - 1:
            bad = (b"", bytes(range(256)) * 20, docx_bytes(text)[:2000])[broken % 3]
            (shelf / f"broken-{index:04d}{('.txt', '.txt', '.docx')[broken % 3]}").write_bytes(bad)
            broken += 1
    return reports, broken


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run(archive: Path, out: Path, model: Path, flags: list[str]) -> dict[str, Any]:
    """One `chainstage score` run: wall time, reports and units written, and peak RSS of its process tree."""
    command = [sys.executable, "-c", "from serve.cli import main; main()", "score", str(archive), "--out", str(out),
               "--model", str(model), "--quiet", *flags]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watched, peak = psutil.Process(child.pid), [0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], _tree_rss(watched))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = child.communicate()[0].strip()
    seconds = time.perf_counter() - start
    sampler.join()
    reports = sum(pq.read_metadata(path).num_rows for path in (out / "reports").glob("*.parquet"))
    units = sum(pq.read_metadata(path).num_rows for path in (out / "units").glob("*.parquet"))
    return {"seconds": seconds, "reports": reports, "units": units, "peak_mib": peak[0] / 2**20, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--broken-every", type=int, default=25)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the trained default)")
    parser.add_argument("--work", type=Path, default=None, help="where the archive and outputs go (default: temp)")
    args = parser.parse_args()
    from models.folder_layout import default_model_dir

    model = args.model or default_model_dir()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        archive = work / "archive"
        good, broken = build_archive(archive, args.reports, args.broken_every)
        print(f"archive: {good} reports + {broken} broken files under {archive}; model {model}; "
              f"{psutil.cpu_count()} CPUs")
        print(f"{'engine':<18} {'reports/min':>11} {'units/s':>8} {'wall s':>7} {'peak MiB':>9}  reports  units")
        for name, flags in ENGINES.items():
            figures = run(archive, work / f"out-{name.split()[0]}-{flags[-1]}", model, flags)
            print(f"{name:<18} {figures['reports'] / figures['seconds'] * 60:>11.1f} "
                  f"{figures['units'] / figures['seconds']:>8.1f} {figures['seconds']:>7.1f} "
                  f"{figures['peak_mib']:>9.0f}  {figures['reports']:>7} {figures['units']:>6}", flush=True)
            print(f"  {figures['summary']}", flush=True)


if __name__ == "__main__":
    main()
