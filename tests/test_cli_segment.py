"""The ``chainstage segment`` command, end to end through Typer's CliRunner and the console script."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from typer.testing import CliRunner

from serve.cli import app

runner = CliRunner()


def test_segment_jsonl_has_every_unit_with_offsets(seed_paths):
    result = runner.invoke(app, ["segment", str(seed_paths[1]), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 91
    assert rows[8]["kind"] == "heading" and rows[9]["section_path"][-1] == "（一）科技创新顶层设计进一步完善"


def test_segment_csv_and_table(seed_paths):
    result = runner.invoke(app, ["segment", str(seed_paths[3]), "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[-1]["kind"] == "furniture" and len(rows) == 78
    table = runner.invoke(app, ["segment", str(seed_paths[3])])
    assert table.exit_code == 0 and "furniture" in table.stdout


def test_help_shows_an_example():
    result = runner.invoke(app, ["segment", "--help"])
    assert "Example" in result.stdout and "chainstage segment" in result.stdout


def test_bad_file_gives_one_line_error_and_nonzero_exit(tmp_path, seed_paths):
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", "from serve.cli import main; main()", "segment", str(bad), str(seed_paths[3]),
         "-f", "jsonl"],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"error: {bad}: empty file"
    assert "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 78  # the good file after the bad one is still segmented
