"""Document context: neighbours in the same section pull a unit's probabilities, and the text member reads its
neighbours' text; nothing joins two labelled runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.labeled_units import follows_previous
from data.load import load_report
from models.document_context import neighbour_texts, report_neighbours, smooth_within_sections
from training.crossval import in_context

ROOT = Path(__file__).resolve().parent.parent


def test_smoothing_stays_inside_sections_of_a_seed_report(reading_config):
    report = load_report(ROOT / "seeds/003_1e2a77e6e55b6189.txt", reading_config)
    units = report.units
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=len(units))
    paths, kinds = [u.section_path for u in units], [u.kind for u in units]
    smoothed = smooth_within_sections(probs, paths, kinds, 0.3)
    assert np.allclose(smoothed.sum(axis=1), 1.0)
    heading = next(i for i, u in enumerate(units) if u.kind == "heading" and i > 0 and units[i + 1].kind == "body")
    # a heading draws on the first line of its own section only, never on the section before it
    assert np.allclose(smoothed[heading], 0.7 * probs[heading] + 0.3 * probs[heading + 1])
    body = next(i for i in range(1, len(units) - 1) if all(units[j].kind == "body" for j in (i - 1, i, i + 1))
                and units[i - 1].section_path == units[i].section_path == units[i + 1].section_path)
    assert np.allclose(smoothed[body], 0.7 * probs[body] + 0.15 * (probs[body - 1] + probs[body + 1]))
    assert np.array_equal(smooth_within_sections(probs, paths, kinds, 0.0), probs)


def test_labelled_runs_are_smoothed_only_across_adjacent_unit_numbers():
    records = [{"unit_id": f"r-{n:04d}", "section_path": ["一、科技"], "kind": "body"} for n in (1, 2, 5)]
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    smoothed = in_context(records, probs, 0.5)
    assert np.allclose(smoothed[0], [0.5, 0.5]) and np.allclose(smoothed[1], [0.5, 0.5])
    assert np.array_equal(smoothed[2], probs[2])  # unit 5 is not next to unit 2: a gap of unlabelled units


def test_neighbour_texts_stop_at_gaps_in_labelled_runs():
    records = [{"unit_id": f"r-{n:04d}", "text": text} for n, text in ((1, "甲"), (2, "乙"), (5, "丙"))]
    records.append({"unit_id": "s-0006", "text": "丁"})
    follows = follows_previous(records)
    assert follows == [False, True, False, False]  # a gap of unlabelled units, then another report
    assert neighbour_texts([r["text"] for r in records], follows) == [" 乙", "甲 ", " ", " "]


def test_report_neighbours_skip_furniture_in_a_seed_report(reading_config):
    report = load_report(ROOT / "seeds/003_1e2a77e6e55b6189.txt", reading_config)
    texts, kinds = [u.text for u in report.units], [u.kind for u in report.units]
    beside = report_neighbours(texts, kinds)
    assert kinds[-1] == "furniture" and beside[-1] == ""  # the report's closing web furniture has no neighbours
    last = max(i for i, kind in enumerate(kinds) if kind != "furniture")
    assert beside[0] == f" {texts[1]}" and beside[last] == f"{texts[last - 1]} "
    middle = len(texts) // 2
    assert beside[middle] == f"{texts[middle - 1]} {texts[middle + 1]}"
    furniture = report_neighbours(["一", "- 3 -", "二"], ["body", "furniture", "body"])
    assert furniture == [" 二", "", "一 "]
