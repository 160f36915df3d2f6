"""The labelled seed units: schema, agreement with the current segmentation, reconciliation, kappa."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from datasets import load_dataset

from data.agreement import disagreement_by_confidence, pass_agreement
from data.labeled_units import CONFIDENCES, load_labeled
from data.labels import load_labels
from data.load import load_report
from data.reconcile_labels import reconcile

ROOT = Path(__file__).resolve().parents[1]
LABELED = ROOT / "data" / "labeled"


@pytest.fixture(scope="module")
def seed_records():
    return load_labeled(LABELED / "seeds.jsonl")


def test_schema_is_valid_and_loads_with_datasets(seed_records):
    names = set(load_labels().names)
    for record in seed_records:
        assert record["label"] in names
        assert record["confidence"] in CONFIDENCES
        assert isinstance(record["section_path"], list) and isinstance(record["note"], str)
        assert record["end"] > record["start"] and record["text"]
        assert record["confidence"] == "high" or record["note"], record["unit_id"]
    dataset = load_dataset("json", data_files=str(LABELED / "seeds.jsonl"), split="train")
    assert dataset.num_rows == len(seed_records)
    assert set(dataset.column_names) >= {"report_id", "unit_id", "section_path", "start", "end", "text", "label"}


@pytest.mark.parametrize(("labeled", "folder"), [("seeds.jsonl", "seeds"), ("devset.jsonl", "data/devset")])
def test_every_current_unit_is_labelled_exactly_once(reading_config, labeled, folder):
    records = load_labeled(LABELED / labeled)
    units = [u for path in sorted((ROOT / folder).glob("*.txt")) for u in load_report(path, reading_config).units]
    ids = Counter(record["unit_id"] for record in records)
    assert all(count == 1 for count in ids.values())
    assert set(ids) == {unit.unit_id for unit in units}
    by_id = {record["unit_id"]: record for record in records}
    for unit in units:
        record = by_id[unit.unit_id]
        assert (record["start"], record["end"], record["text"]) == (unit.start, unit.end, unit.text)
        assert tuple(record["section_path"]) == unit.section_path


def test_every_report_and_label_is_present(seed_records):
    assert len({r["report_id"] for r in seed_records}) == 5
    assert set(Counter(r["label"] for r in seed_records)) == set(load_labels().names)


def test_reconciliation_carries_labels_by_offsets_and_text_and_lists_the_rest(reading_config, seed_records):
    units = load_report(ROOT / "seeds" / "003_1e2a77e6e55b6189.txt", reading_config).units
    records = [r for r in seed_records if r["report_id"] == units[0].report_id]
    shifted = [{**r, "start": r["start"] + 5, "end": r["end"] + 5} for r in records]  # offsets moved
    shifted[3] = {**shifted[3], "text": shifted[3]["text"] + "（已修改）"}  # text changed: must not carry
    carried, missing = reconcile(shifted, units)
    assert [u.unit_id for u in missing] == [units[3].unit_id]
    assert len(carried) == len(units) - 1
    assert all(c["label"] == r["label"] for c, r in zip(carried, records[:3] + records[4:], strict=True))


def test_second_pass_is_a_quarter_of_every_report_and_kappa_recomputes(seed_records):
    second = load_labeled(LABELED / "seeds_pass2.jsonl")
    for report in {r["report_id"] for r in seed_records}:
        total = sum(r["report_id"] == report for r in seed_records)
        sampled = sum(r["report_id"] == report for r in second)
        assert abs(sampled - 0.25 * total) <= 1
    result = pass_agreement(load_labeled(LABELED / "seeds_pass1.jsonl"), second)
    assert result["units"] == len(second) and 0.75 <= result["kappa"] <= 1.0


@pytest.mark.parametrize("labels", ["seeds", "provincial"])
def test_the_passes_disagree_more_where_the_first_reader_was_unsure(labels):
    """What `train.confidence_weights` rests on: a medium-confidence label is the less reliable one."""
    first, second = load_labeled(LABELED / f"{labels}_pass1.jsonl"), load_labeled(LABELED / f"{labels}_pass2.jsonl")
    by_confidence = disagreement_by_confidence(first, second)
    assert sum(counts["units"] for counts in by_confidence.values()) == len(second)
    assert sum(counts["disagree"] for counts in by_confidence.values()) == round(
        (1 - pass_agreement(first, second)["agreement"]) * len(second))
    share = {confidence: counts["disagree"] / counts["units"] for confidence, counts in by_confidence.items()}
    assert share["medium"] > 2 * share["high"]


def test_provincial_labels_match_the_current_segmentation_and_skip_furniture(reading_config):
    records = load_labeled(LABELED / "provincial.jsonl")
    corpus = ROOT / "data" / "corpus" / "provincial-2026"
    units = {u.unit_id: u for path in sorted(corpus.glob("*.txt")) for u in load_report(path, reading_config).units}
    assert len(records) >= 3000 and len({r["report_id"] for r in records}) == 16
    assert len({r["unit_id"] for r in records}) == len(records)
    names = set(load_labels().names)
    for record in records:
        unit = units[record["unit_id"]]
        assert (record["start"], record["end"], record["text"]) == (unit.start, unit.end, unit.text)
        assert tuple(record["section_path"]) == unit.section_path and record["kind"] == unit.kind != "furniture"
        assert record["label"] in names and (record["confidence"] == "high" or record["note"])


def test_provincial_second_pass_is_a_stratified_quarter_and_kappa_recomputes():
    final = load_labeled(LABELED / "provincial.jsonl")
    second = load_labeled(LABELED / "provincial_pass2.jsonl")
    for report in {r["report_id"] for r in final}:
        total = sum(r["report_id"] == report for r in final)
        sampled = sum(r["report_id"] == report for r in second)
        assert 0.25 * total <= sampled <= 0.3 * total + 1, report
    result = pass_agreement(load_labeled(LABELED / "provincial_pass1.jsonl"), second)
    assert result["units"] == len(second) and result["kappa"] >= 0.85
    assert pass_agreement(final, second)["kappa"] > result["kappa"]  # adjudication resolved disagreements
