"""The labelling loop: selection, export in three formats, validated atomic import, agreement, multi-file training."""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data.agreement import pass_agreement
from data.errors import LabelingError, ModelError
from data.label_batches import BATCH_FIELDS, label_config_path, read_batch, write_batch
from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from serve.cli import app
from training.label_config import load_label_config
from training.selection import select_units

ROOT = Path(__file__).resolve().parents[1]
LABELED = ROOT / "data" / "labeled"
JIANGXI = ROOT / "data" / "corpus" / "provincial-2026" / "jiangxi_2026_zfgzbg.txt"


@pytest.fixture()
def new_report(tmp_path, monkeypatch) -> Path:
    """A seed report under a new name, so none of its units is labelled yet; commands run from the repo root."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / "newgenre_003.txt"
    shutil.copy(ROOT / "seeds" / "003_1e2a77e6e55b6189.txt", path)
    return path


def _export(model: Path, source: Path, out: Path, *extra: str) -> list[dict]:
    result = CliRunner().invoke(app, ["label", "export", str(source), "-o", str(out), "--model", str(model),
                                      "--set", f"intake.into={out.parent / 'none.jsonl'}", *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return read_batch(out)


def _import(batch: Path, into: Path, annotator: str = "wang"):
    return CliRunner().invoke(app, ["label", "import", str(batch), "--annotator", annotator, "--into", str(into)])


def _labelled_files_digest() -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(LABELED.glob("*.jsonl")))).hexdigest()


def test_selection_spreads_a_batch_over_near_copies():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(6, 0.5), size=400)
    vectors = rng.normal(size=(400, 16))
    vectors[:250] = vectors[0] + rng.normal(scale=1e-3, size=(250, 16))  # 250 near-copies ...
    probs[:250] = 1 / 6  # ... of which the model is as unsure as it can be
    settings = load_label_config().selection
    for strategy in ("uncertainty", "margin", "diverse"):
        picked = select_units(probs, vectors, 40, strategy, settings)
        assert len(picked) == len(set(picked)) == 40 and sum(i < 250 for i in picked) <= 1, strategy
    greedy = select_units(probs, vectors, 40, "uncertainty", settings)
    assert greedy[0] < 250  # the most uncertain unit leads the review order
    assert select_units(probs, vectors, 40, "random", settings) == select_units(probs, vectors, 40, "random",
                                                                                settings)


def test_export_leaves_out_labelled_units_and_orders_by_usefulness(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rows = _export(tiny_model, JIANGXI, tmp_path / "batch.jsonl", "--n", "30", "--strategy", "margin")
    labelled = {r["unit_id"] for r in load_labeled(LABELED / "provincial.jsonl")}
    assert len(rows) == 30 and [r["rank"] for r in rows] == list(range(1, 31))
    assert not labelled & {r["unit_id"] for r in rows} and all(r["kind"] != "furniture" for r in rows)
    names = set(load_labels().names)
    for row in rows:
        assert list(row) == list(BATCH_FIELDS)
        assert row["label"] == row["model_label"] in names and row["second_label"] in names - {row["label"]}
        assert row["probability"] >= row["second_probability"] and row["strategy"] == "margin"
        assert row["model"].startswith("tiny@") and row["source"] == str(JIANGXI)


def test_export_of_a_folder_skips_unreadable_files_and_says_when_nothing_is_left(tiny_model, new_report, tmp_path,
                                                                                  monkeypatch):
    (new_report.parent / "README.md").write_text("What these reports are.\n", encoding="utf-8")
    rows = _export(tiny_model, new_report.parent, tmp_path / "out" / "batch.jsonl", "--n", "5")
    assert len(rows) == 5 and {r["report_id"] for r in rows} == {"newgenre_003"}
    labelled_only = CliRunner().invoke(app, ["label", "export", str(ROOT / "seeds" / "003_1e2a77e6e55b6189.txt"),
                                             "-o", str(tmp_path / "none.jsonl"), "--model", str(tiny_model)])
    assert isinstance(labelled_only.exception, LabelingError) and "78 already labelled" in str(
        labelled_only.exception) and not (tmp_path / "none.jsonl").exists()
    monkeypatch.setenv("CHAINSTAGE_HOME", str(tmp_path / "home"))  # no default model trained there
    no_model = CliRunner().invoke(app, ["label", "export", str(new_report), "-o", str(tmp_path / "x.jsonl")])
    assert isinstance(no_model.exception, ModelError) and "\n" not in str(no_model.exception)


def test_label_studio_export_follows_the_documented_format_and_reimports_losslessly(tiny_model, new_report, tmp_path):
    rows = _export(tiny_model, new_report, tmp_path / "batch.jsonl", "--n", "12")
    tasks_file = tmp_path / "tasks.json"
    _export(tiny_model, new_report, tasks_file, "--n", "12", "--format", "label-studio")
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    prediction = tasks[0]["predictions"][0]
    assert set(prediction) == {"model_version", "score", "result"} and tasks[0]["data"]["text"] == rows[0]["text"]
    assert prediction["result"][0] | {"id": None} == {"id": None, "from_name": "label", "to_name": "text",
                                                      "type": "choices", "value": {"choices": [rows[0]["label"]]}}
    view = ET.fromstring(label_config_path(tasks_file).read_text(encoding="utf-8"))
    text, choices = view.find("Text"), view.find("Choices")
    assert (text.get("name"), text.get("value")) == ("text", "$text")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert [c.get("value") for c in choices.findall("Choice")] == load_labels().names
    assert read_batch(tasks_file) == rows  # lossless: the task list reads back as the JSONL batch

    from_jsonl, from_studio = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _import(tmp_path / "batch.jsonl", from_jsonl).exit_code == 0
    assert _import(tasks_file, from_studio).exit_code == 0
    volatile = ("labelled_at", "batch")
    strip = [{k: v for k, v in r.items() if k not in volatile} for r in load_labeled(from_jsonl)]
    assert strip == [{k: v for k, v in r.items() if k not in volatile} for r in load_labeled(from_studio)]

    # what Label Studio exports after review: the reviewer's annotation wins; a skipped task is not imported
    other = next(name for name in load_labels().names if name != rows[0]["label"])
    tasks[0]["annotations"] = [{"was_cancelled": False, "result": [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [other]}}]}]
    tasks[1]["annotations"] = [{"was_cancelled": True, "result": []}]
    tasks_file.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    reviewed = read_batch(tasks_file)
    assert len(reviewed) == 11 and reviewed[0]["label"] == other and rows[1]["unit_id"] not in {
        r["unit_id"] for r in reviewed}


def test_csv_batch_reads_back_exactly(tiny_model, new_report, tmp_path):
    rows = _export(tiny_model, new_report, tmp_path / "batch.jsonl", "--n", "10", "--strategy", "diverse")
    write_batch(rows, tmp_path / "batch.csv", "csv", load_labels())
    assert read_batch(tmp_path / "batch.csv") == rows


def test_import_appends_with_provenance_and_never_twice(tiny_model, new_report, tmp_path):
    batch = tmp_path / "batch.jsonl"
    rows = _export(tiny_model, new_report, batch, "--n", "8")
    rows[0]["label"], rows[0]["note"], rows[0]["confidence"] = "其他", "reviewed: a transition", "low"
    batch.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    into = tmp_path / "new_genre.jsonl"
    result = _import(batch, into)
    assert result.exit_code == 0 and "8 labels appended" in result.output
    records = load_labeled(into)
    assert [r["unit_id"] for r in records] == [r["unit_id"] for r in rows]
    first = records[0]
    assert (first["label"], first["confidence"], first["note"]) == ("其他", "low", "reviewed: a transition")
    assert first["annotator"] == "wang" and first["labelled_at"] and first["strategy"] == "uncertainty"
    assert first["prelabel_model"] == rows[0]["model"] and first["prelabel_label"] == rows[0]["model_label"]
    assert records[1]["confidence"] == load_label_config().intake.default_confidence
    before = into.read_bytes()
    again = _import(batch, into)
    assert isinstance(again.exception, LabelingError) and "already labelled" in str(again.exception)
    assert into.read_bytes() == before


def _break(kind: str, batch: Path, rows: list[dict]) -> Path:
    """Write ``rows`` with one defect of the given kind; returns the file to import."""
    rows = [dict(r) for r in rows]
    if kind == "unknown label":
        rows[2]["label"] = "量子纠缠"
    elif kind == "unit not in report":
        rows[2]["unit_id"] = rows[2]["report_id"] + "-9999"
    elif kind == "conflicting label":  # a unit the training set already labels, given another label
        held = next(r for r in load_labeled(LABELED / "provincial.jsonl") if r["report_id"] == JIANGXI.stem)
        other = next(name for name in load_labels().names if name != held["label"])
        rows[2] = {**rows[2], **{k: held[k] for k in ("unit_id", "report_id", "text", "start", "end", "kind")},
                   "source": str(JIANGXI), "label": other}
    elif kind == "duplicate unit":
        rows[3] = dict(rows[2])
    if kind.startswith("truncated"):
        fmt = kind.split()[1]
        path = batch.with_name({"jsonl": "cut.jsonl", "csv": "cut.csv", "label-studio": "cut.json"}[fmt])
        write_batch(rows, path, fmt, load_labels())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 40])
        return path
    path = batch.with_name("bad.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("kind", "says"), [
    ("unknown label", "unknown label '量子纠缠'"), ("unit not in report", "no such unit"),
    ("conflicting label", "conflicts with"), ("duplicate unit", "more than once"),
    ("truncated jsonl", "not valid JSON"), ("truncated csv", "truncated"), ("truncated label-studio", "not valid JSON"),
])
def test_a_bad_batch_gets_a_one_line_error_and_nothing_is_written(tiny_model, new_report, tmp_path, kind, says):
    rows = _export(tiny_model, new_report, tmp_path / "batch.jsonl", "--n", "8")
    into, earlier = tmp_path / "existing.jsonl", tmp_path / "earlier.jsonl"
    write_batch(rows[6:], earlier, "jsonl", load_labels())
    assert _import(earlier, into).exit_code == 0  # an existing labelled file ...
    before, labelled_before = into.read_bytes(), _labelled_files_digest()
    result = _import(_break(kind, tmp_path / "batch.jsonl", rows[:6]), into)
    assert result.exit_code != 0 and isinstance(result.exception, LabelingError)
    message = str(result.exception)
    assert says in message and "\n" not in message and str(tmp_path) in message
    assert into.read_bytes() == before and _labelled_files_digest() == labelled_before  # ... left as it was
    assert not list(tmp_path.glob(".existing.jsonl.*"))  # no temp file left behind


def test_agreement_prints_the_kappa_the_data_card_quotes(tmp_path):
    first, second = LABELED / "provincial_pass1.jsonl", LABELED / "provincial_pass2.jsonl"
    result = CliRunner().invoke(app, ["label", "agreement", str(first), str(second)])
    expected = pass_agreement(load_labeled(first), load_labeled(second))["kappa"]
    assert result.exit_code == 0 and f"kappa {expected:.3f}" in result.output and "kappa 0.950" in result.output
    assert "24 units to adjudicate" in result.output

    records = load_labeled(LABELED / "seeds_pass2.jsonl")[:4]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    flipped = [{**records[0], "label": "其他" if records[0]["label"] != "其他" else "人才支撑"}, *records[1:]]
    b.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in flipped), encoding="utf-8")
    result = CliRunner().invoke(app, ["label", "agreement", str(a), str(b)])
    assert "1 units to adjudicate" in result.output and records[0]["unit_id"] in result.output
    b.write_bytes(b.read_bytes()[:-30])
    truncated = CliRunner().invoke(app, ["label", "agreement", str(a), str(b)])
    assert truncated.exit_code != 0 and "not valid JSON" in str(truncated.exception)


def test_train_takes_several_labelled_files_from_set(tiny_base, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    records = load_labeled(LABELED / "seeds.jsonl")
    files = []
    for name, prefix in (("municipal_a.jsonl", "001"), ("municipal_b.jsonl", "003")):
        files.append(tmp_path / name)
        files[-1].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records
                                     if r["report_id"].startswith(prefix)), encoding="utf-8")
    setting = f"data.labeled=[{files[0]}, {files[1]}]"
    assert load_classifier_config(overrides=[setting]).data.labeled_files == [str(f) for f in files]
    overrides = [f"model.base={tiny_base}", "train.epochs=1", "train.min_steps=0", "model.max_length=64", setting]
    result = CliRunner().invoke(app, ["train", *[arg for o in overrides for arg in ("--set", o)], "-o",
                                      str(tmp_path / "model")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["data_files"] == [str(f) for f in files]
    assert manifest["reports"] == ["001_2040a8d96ddfc16d", "003_1e2a77e6e55b6189"]
