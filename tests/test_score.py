"""Archive scoring: every good report exactly once, every bad file in the errors table, and the same tables after
a crash or a kill -9 at any step, with one worker or two; a tiny classifier trained in the test does the scoring."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_files import docx_bytes, pdf_bytes
from typer.testing import CliRunner

from data.errors import ConfigError
from data.load import load_report
from serve.cli import app
from serve.job_manifest import Manifest
from serve.score_config import load_score_config
from serve.score_job import score_archive
from serve.score_schema import ERROR_SCHEMA, FILE_SCHEMA, REPORT_SCHEMA, SCHEMA_VERSION, UNIT_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
SEED = {path.name[:3]: path for path in sorted((ROOT / "seeds").glob("00[0-3]_*.txt"))}
# Two reports per chunk: units are batched across reports, and the archive makes four chunks.
SETTINGS = ["chunk_reports=2", "workers=1"]
GOOD = {"a/000.txt", "a/002-gbk.txt", "b/003.docx", "b/001.html"}
DUPLICATE = "copies/000-again.txt"
BAD = {"bad/empty.txt": "empty file", "bad/binary.txt": "binary content", "bad/truncated.docx": "truncated or corrupt",
       "bad/truncated.pdf": "truncated or corrupt .pdf"}
KEYS = {"units": "unit_id", "reports": "report_id", "errors": "path", "files": "path"}
SCHEMAS = {"units": UNIT_SCHEMA, "reports": REPORT_SCHEMA, "errors": ERROR_SCHEMA, "files": FILE_SCHEMA}


def build_archive(folder: Path) -> Path:
    """Good seed-derived reports of four kinds and encodings, a duplicate, four broken files and a stray CSV."""
    files = {
        "a/000.txt": SEED["000"].read_bytes(),
        "a/002-gbk.txt": SEED["002"].read_text(encoding="utf-8").encode("gbk"),
        "b/003.docx": docx_bytes(SEED["003"].read_text(encoding="utf-8")),
        "b/001.html": ("<!doctype html><html><head><meta charset='utf-8'><title>科技局</title></head><body><article>"
                       + "".join(f"<p>{line}</p>" for line in SEED["001"].read_text(encoding="utf-8").splitlines()
                                 if line.strip())
                       + "</article></body></html>").encode("utf-8"),
        DUPLICATE: SEED["000"].read_bytes(),
        "bad/empty.txt": b"",
        "bad/binary.txt": bytes(range(256)) * 40,
        "bad/truncated.docx": docx_bytes(SEED["003"].read_text(encoding="utf-8"))[:3000],
        "bad/truncated.pdf": pdf_bytes()[:400],
        "notes.csv": b"not,a,report\n",
    }
    for name, payload in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    return folder


def reference_run(tmp_path_factory, model: Path) -> tuple[Path, Path, Path]:
    """(archive, model, output) of one uninterrupted local run, made once per test session (both score test modules
    share it, with the session's tiny model)."""
    base = tmp_path_factory.getbasetemp()
    archive, out = base / "score-archive", base / "score-reference"
    if not (out / "files.parquet").is_file():
        build_archive(archive)
        score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    return archive, model, out


def read_tables(out: Path, fmt: str = "parquet") -> dict[str, pa.Table]:
    """Every table of a job, rows sorted by their key, so that runs with different commit orders compare equal."""
    tables = {}
    for name, key in KEYS.items():
        path = out / name if name in ("units", "reports") else out / f"{name}.{fmt}"
        if fmt == "parquet":
            table = pq.read_table(path)
        else:
            schema = SCHEMAS[name]
            paths = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
            rows = [json.loads(line) for file in paths for line in file.read_text(encoding="utf-8").splitlines()]
            table = pa.Table.from_pylist(rows, schema=schema)
        tables[name] = table.sort_by(key).replace_schema_metadata(None)
    return tables


def assert_same_tables(out: Path, reference: Path) -> None:
    got, expected = read_tables(out), read_tables(reference)
    for name in KEYS:
        assert got[name].num_rows == expected[name].num_rows, name
        assert got[name].equals(expected[name]), f"{name} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model) -> tuple[Path, Path, Path]:
    return reference_run(tmp_path_factory, tiny_model)


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, ["score", *map(str, args)])


def test_every_good_report_once_every_bad_file_in_errors_and_a_failing_exit(reference, tmp_path, reading_config):
    archive, model, _ = reference
    out = tmp_path / "out"
    result = invoke(archive, "--out", out, "--model", model, "--quiet", *sum((["--set", s] for s in SETTINGS), []))
    assert result.exit_code == 1, result.output
    assert "scored 4 reports" in result.stdout and "skipped 0 already done" in result.stdout
    assert "failed 4 files" in result.stdout and "1 duplicate file scored once" in result.stdout
    tables = {name: table.to_pylist() for name, table in read_tables(out).items()}

    reports = {row["source"]: row for row in tables["reports"]}
    assert set(reports) == GOOD and len(tables["reports"]) == len(GOOD)
    assert reports["a/000.txt"]["paths"] == ["a/000.txt", DUPLICATE]
    for source, row in reports.items():
        report = load_report(archive / source, reading_config, report_id=row["report_id"])
        units = [unit for unit in tables["units"] if unit["report_id"] == row["report_id"]]
        assert [unit["text"] for unit in units] == [unit.text for unit in report.units]
        assert [unit["unit_id"] for unit in units] == [unit.unit_id for unit in report.units]
        assert {unit["source"] for unit in units} == {source} and row["units"] == len(units)
        assert abs(sum(share["share"] for share in row["stage_shares"]) - 1) < 1e-9
        assert row["summaries"] and all(set(s["unit_ids"]) <= {u["unit_id"] for u in units} for s in row["summaries"])
    assert len({unit["unit_id"] for unit in tables["units"]}) == len(tables["units"])
    assert [unit["text"] for unit in tables["units"] if unit["source"] == "a/000.txt"] == [
        unit.text for unit in load_report(SEED["000"], reading_config).units]

    errors = {row["path"]: row["reason"] for row in tables["errors"]}
    assert set(errors) == set(BAD)
    assert all(errors[path].startswith(reason) for path, reason in BAD.items())
    files = {row["path"]: row for row in tables["files"]}
    assert set(files) == GOOD | set(BAD) | {DUPLICATE}  # the CSV is not a report kind
    assert files[DUPLICATE]["report_id"] == files["a/000.txt"]["report_id"] == reports["a/000.txt"]["report_id"]
    assert {path for path, row in files.items() if row["status"] == "failed"} == set(BAD)


def test_every_shard_has_the_documented_schema_even_when_empty(reference):
    _, _, out = reference
    shards = sorted((out / "units").glob("*.parquet")) + sorted((out / "reports").glob("*.parquet"))
    assert len(shards) == 8  # four chunks, two tables
    assert any(pq.read_metadata(shard).num_rows == 0 for shard in shards)  # the chunk of two broken files
    for shard in shards:
        expected = UNIT_SCHEMA if shard.parent.name == "units" else REPORT_SCHEMA
        assert pq.read_schema(shard).equals(expected, check_metadata=True)
    assert pq.read_schema(out / "errors.parquet").equals(ERROR_SCHEMA, check_metadata=True)


def documented_type(kind: pa.DataType) -> str:
    """A type as docs/scoring.md writes it: Arrow's names, without the "element" that names every list's item."""
    if pa.types.is_list(kind):
        return f"list<{documented_type(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct<" + ", ".join(f"{field.name}: {documented_type(field.type)}" for field in kind) + ">"
    return str(kind)


def test_the_schema_tables_of_docs_scoring_md_match_the_code():
    doc = (ROOT / "docs/scoring.md").read_text(encoding="utf-8")
    assert f"## Output schema (version {SCHEMA_VERSION})" in doc
    for name, schema in SCHEMAS.items():
        section = doc.split(f"\n### {name}\n", 1)[1].split("\n#", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert rows == [f"| `{field.name}` | `{documented_type(field.type)}`{' (nullable)' if field.nullable else ''} "
                        f"| {field.metadata[b'description'].decode()} |" for field in schema], f"### {name} differs"


def test_rerunning_a_finished_job_does_nothing_and_says_so(reference, tmp_path):
    archive, model, reference_out = reference
    out = tmp_path / "out"
    score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.rglob("*.parquet")}
    result = invoke(archive, "--out", out, "--model", model, "--quiet")
    assert result.exit_code == 1  # the broken files are still there, still failed
    assert result.stdout.startswith("nothing to do") and "scored 0 reports, skipped 4 already done" in result.stdout
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.rglob("*.parquet")} == before
    assert_same_tables(out, reference_out)


def test_a_crash_between_shard_write_and_commit_then_a_resume_gives_the_same_tables(reference, tmp_path,
                                                                                    monkeypatch):
    archive, model, reference_out = reference
    out = tmp_path / "out"
    commit, calls = Manifest.commit, []

    def crash_on_second(self, result):
        calls.append(result.chunk)
        if len(calls) == 2:
            raise RuntimeError("injected crash")
        commit(self, result)

    monkeypatch.setattr(Manifest, "commit", crash_on_second)
    with pytest.raises(RuntimeError, match="injected crash"):
        score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    monkeypatch.setattr(Manifest, "commit", commit)
    orphan = out / "units" / f"part-{calls[1]:06d}.parquet"
    assert orphan.is_file()  # written, never committed

    summary = score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    assert (summary.skipped, summary.scored) == (2, 2)  # chunk 0 (a/000.txt, a/002-gbk.txt) was committed
    assert_same_tables(out, reference_out)


KILL_AT = {
    # a real SIGKILL of the scoring process, at the worst moments of the commit protocol
    "mid-shard-write": "import os; real = os.replace\n"
                       "def replace(a, b):\n"
                       "    if str(b).endswith('part-000001.parquet'): os.kill(os.getpid(), 9)\n"
                       "    real(a, b)\n"
                       "os.replace = replace\n",
    "before-manifest-commit": "import os; from serve.job_manifest import Manifest; real = Manifest.commit\n"
                              "def commit(self, result):\n"
                              "    if result.chunk == 1: os.kill(os.getpid(), 9)\n"
                              "    real(self, result)\n"
                              "Manifest.commit = commit\n",
}


@pytest.mark.parametrize("moment", sorted(KILL_AT))
def test_kill_9_at_a_commit_step_then_restart_gives_every_report_exactly_once(reference, tmp_path, moment):
    archive, model, reference_out = reference
    out = tmp_path / "out"
    script = KILL_AT[moment] + (
        "import sys; from serve.score_config import load_score_config; from serve.score_job import score_archive\n"
        f"score_archive(sys.argv[1], sys.argv[2], sys.argv[3], load_score_config(overrides={SETTINGS!r}), "
        "progress=False)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(archive), str(out), str(model)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    summary = score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    assert (summary.skipped, summary.scored) == (2, 2)  # chunk 1 (b/001.html, b/003.docx) is scored again
    assert_same_tables(out, reference_out)


def test_kill_9_from_outside_after_the_first_shard_then_restart(reference, tmp_path):
    archive, model, reference_out = reference
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from serve.cli import main; main()", "score", str(archive), "--out", str(out),
               "--model", str(model), "--quiet", *sum((["--set", s] for s in SETTINGS), [])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and not list((out / "reports").glob("part-*.parquet")):
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    result = invoke(archive, "--out", out, "--model", model, "--quiet")
    assert result.exit_code == 1 and "failed 4 files" in result.stdout
    assert_same_tables(out, reference_out)


def test_two_worker_processes_write_the_same_tables(reference, tmp_path):
    archive, model, reference_out = reference
    summary = score_archive(archive, tmp_path / "out", model,
                            load_score_config(overrides=["chunk_reports=2", "workers=2"]), progress=False)
    assert summary.scored == 4
    assert_same_tables(tmp_path / "out", reference_out)


def test_jsonl_tables_hold_the_same_rows_and_load_without_special_code(reference, tmp_path):
    import pandas as pd
    from datasets import load_dataset

    archive, model, reference_out = reference
    out = tmp_path / "out"
    result = invoke(archive, "--out", out, "--model", model, "--format", "jsonl", "--quiet",
                    *sum((["--set", s] for s in SETTINGS), []))
    assert result.exit_code == 1, result.output
    assert "scored 4 reports" in result.stdout
    got, expected = read_tables(out, "jsonl"), read_tables(reference_out)
    assert all(got[name].equals(expected[name]) for name in KEYS)
    units = pd.concat(pd.read_json(path, lines=True) for path in sorted((out / "units").glob("*.jsonl")))
    assert len(units) == expected["units"].num_rows and set(units.columns) == set(UNIT_SCHEMA.names)
    assert len(pd.read_parquet(reference_out / "units")) == expected["units"].num_rows
    dataset = load_dataset("parquet", data_files=str(reference_out / "reports" / "*.parquet"), split="train")
    assert dataset.num_rows == len(GOOD) and dataset.column_names == REPORT_SCHEMA.names


def test_a_later_duplicate_is_recorded_without_scoring_it_again(reference, tmp_path):
    archive, model, _ = reference
    copy = tmp_path / "archive"
    build_archive(copy)
    out = tmp_path / "out"
    score_archive(copy, out, model, load_score_config(overrides=SETTINGS), progress=False)
    before = read_tables(out)
    (copy / "later").mkdir()
    (copy / "later" / "003-again.docx").write_bytes((copy / "b/003.docx").read_bytes())
    summary = score_archive(copy, out, model, load_score_config(overrides=SETTINGS), progress=False)
    assert (summary.scored, summary.skipped, summary.duplicates) == (0, 4, 2)
    after = read_tables(out)
    files = {row["path"]: row["report_id"] for row in after["files"].to_pylist()}
    assert files["later/003-again.docx"] == files["b/003.docx"] is not None
    assert after["units"].equals(before["units"]) and after["reports"].equals(before["reports"])


def test_progress_bar_counts_reports_with_units_per_second_and_eta(reference, tmp_path):
    archive, model, _ = reference
    result = invoke(archive, "--out", tmp_path / "out", "--model", model, "--set", "chunk_reports=2",
                    "--set", "workers=1")
    assert result.exit_code == 1
    assert "reports" in result.stderr and "units/s" in result.stderr and "ETA" in result.stderr
    quiet = invoke(archive, "--out", tmp_path / "quiet", "--model", model, "--quiet", "--set", "workers=1")
    assert "units/s" not in quiet.stderr and "scored 4 reports" in quiet.stdout


def test_a_job_refuses_another_format_or_model_and_bad_config_names_its_key(reference, tmp_path, tiny_base):
    archive, model, _ = reference
    out = tmp_path / "out"
    score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    with pytest.raises(ConfigError, match="another format"):
        score_archive(archive, out, model, load_score_config(overrides=[*SETTINGS, "format=jsonl"]), progress=False)
    other = tmp_path / "other-model"
    other.mkdir()
    for path in model.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    (other / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    with pytest.raises(ConfigError, match="another model"):
        score_archive(archive, out, other, load_score_config(overrides=SETTINGS), progress=False)
    with pytest.raises(ConfigError, match="'workers'"):
        load_score_config(overrides=["workers=0"])
    with pytest.raises(ConfigError, match="engine"):
        load_score_config(overrides=["engine=spark"])
