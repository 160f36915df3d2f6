"""One line on stderr per bad file, and nothing else, in ``segment``, ``classify`` and ``score``: a batch of broken
files mixed with good reports, each command run as a user runs it (its own process, so that library logging
reaches the real stderr, as pypdf's "EOF marker not found" did)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from report_files import docx_bytes, pdf_bytes

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds/003_1e2a77e6e55b6189.txt"
GOOD = ("seed.txt", "gbk.txt")  # report ids are the file stems


def bad_files() -> dict[str, bytes]:
    """Every kind of damage users bring; no name is part of another, so each line can be matched to one file."""
    text = SEED.read_text(encoding="utf-8")
    return {
        "empty.txt": b"",
        "binary.txt": bytes(range(256)) * 8,
        "truncated.docx": docx_bytes(text)[:3000],
        "truncated.pdf": pdf_bytes()[:400],  # pypdf logs "EOF marker not found"
        "corrupt.pdf": b"not a pdf, whatever its name says",  # pypdf logs "invalid pdf header: b'not a'"
        "english.txt": b"This report is written in English only, with no Chinese at all.",
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """The bad files and two good reports (UTF-8, and GBK that must be read too) in one folder."""
    folder = tmp_path_factory.mktemp("batch")
    text = SEED.read_text(encoding="utf-8")
    for name, payload in {**bad_files(), "seed.txt": text.encode("utf-8"), "gbk.txt": text.encode("gbk")}.items():
        (folder / name).write_bytes(payload)
    return folder


def chainstage(*args: object) -> subprocess.CompletedProcess[str]:
    """The console entry point in a process of its own, as a user runs it."""
    return subprocess.run([sys.executable, "-c", "from serve.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def assert_one_line_per_bad_file(stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == len(bad_files()), stderr
    for name in bad_files():
        assert sum(name in line for line in lines) == 1, f"{name}:\n{stderr}"


def report_ids(stdout: str) -> set[str]:
    return {json.loads(line)["report_id"] for line in stdout.splitlines()}


def files_in(batch: Path) -> list[Path]:
    return sorted(batch.iterdir())  # good and bad interleaved by name


def test_segment_gives_one_line_per_bad_file(batch):
    proc = chainstage("segment", *files_in(batch), "--format", "jsonl")
    assert proc.returncode == 1
    assert_one_line_per_bad_file(proc.stderr)
    assert report_ids(proc.stdout) == {Path(name).stem for name in GOOD}


def test_classify_gives_one_line_per_bad_file(batch, tiny_model):
    proc = chainstage("classify", *files_in(batch), "--model", tiny_model, "--format", "jsonl")
    assert proc.returncode == 1
    assert_one_line_per_bad_file(proc.stderr)
    assert report_ids(proc.stdout) == {Path(name).stem for name in GOOD}


def test_score_gives_one_line_per_bad_file(batch, tiny_model, tmp_path):
    # the default two worker processes: the files are read there, and their stderr is the command's stderr
    proc = chainstage("score", batch, "--out", tmp_path / "out", "--model", tiny_model, "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert_one_line_per_bad_file(proc.stderr)
    assert f"failed {len(bad_files())} files" in proc.stdout
    assert set(pq.read_table(tmp_path / "out" / "reports").column("source").to_pylist()) == set(GOOD)
