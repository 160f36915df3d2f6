"""Summary evaluation: character ROUGE by hand-checked cases, baselines and oracle within budget, the reference
file still matches the segmentation, the results table and the grid search, on synthetic vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.errors import ConfigError
from data.load import find_report_file, load_report
from models.summarizer_config import load_summarizer_config
from training.summary_eval import (
    CharTokenizer,
    EvalSection,
    evaluate_summaries,
    lead_summary,
    load_references,
    oracle_summary,
    reference_section_units,
    replace_key,
    results_markdown,
    rouge,
    textrank_summary,
    tune_weights,
    tuning_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "data/labeled/summaries.jsonl"
TEXTS = ["一是加强基础研究，建设国家实验室3家。", "引进高层次人才200名，其中院士5名。", "新增高新技术企业1200家。",
         "优化营商环境，出台《科技创新条例》。", "加强基础研究，建设省实验室10家。"]


@pytest.fixture(scope="module")
def config():
    return load_summarizer_config()


def test_char_rouge_matches_hand_counts():
    assert CharTokenizer().tokenize("建设 国家，实验室。") == list("建设国家实验室")
    scores = rouge("甲乙丙丁", "甲乙戊丁")
    assert scores["rouge1"]["f"] == pytest.approx(3 / 4)
    assert scores["rouge2"]["r"] == pytest.approx(1 / 3)  # 甲乙 of 甲乙 乙丙 丙丁
    assert scores["rougeL"]["f"] == pytest.approx(3 / 4)  # LCS 甲乙丁
    assert rouge("建设实验室。", "建设，实验室")["rouge2"]["f"] == pytest.approx(1.0)  # punctuation is not a token
    assert rouge("建设实验室", "引进人才")["rougeL"]["f"] == 0


def test_baselines_and_oracle_keep_the_budget_and_the_order(config):
    rules = config.compression
    for budget in (12, 25, 60):
        for text in (lead_summary(TEXTS, budget, rules), textrank_summary(TEXTS, budget, rules, 0.85)):
            assert 0 < len(text) <= budget
    assert lead_summary(TEXTS, 40, rules) == TEXTS[0] + TEXTS[1]
    ranked = textrank_summary(TEXTS, 60, rules, 0.85)
    # TextRank ranks the two overlapping 加强基础研究 units first, then writes them in document order
    assert ranked.startswith(TEXTS[0]) and ranked.endswith(TEXTS[4])
    reference = "新增高企1200家，出台《科技创新条例》。"
    oracle = oracle_summary(TEXTS, reference, 40, rules)
    assert oracle == TEXTS[2] + TEXTS[3]
    best = rouge(reference, oracle)["rouge1"]["f"]
    assert best >= rouge(reference, lead_summary(TEXTS, 40, rules))["rouge1"]["f"]


def test_every_reference_still_matches_its_section(config, reading_config):
    references = load_references(REFERENCES)
    dirs = [str(ROOT / folder) for folder in config.evaluation.report_dirs]
    files = {rid: find_report_file(rid, dirs, "evaluation.report_dirs")
             for rid in {r["report_id"] for r in references}}
    reports = {rid: load_report(path, reading_config) for rid, path in files.items()}
    corpus = [r for r in references if files[r["report_id"]].parent.name == "provincial-2026"]
    assert len(references) - len(corpus) == 50 and len({r["report_id"] for r in references}) - 5 >= 4
    long_sections = 0
    for reference in references:
        units = reference_section_units(reports[reference["report_id"]], reference)
        body = [u for u in units if u.kind == "body"]
        # chosen with four or more body units; one seed section has since lost its lead sentence to a heading
        assert len(body) >= 3 and sum(len(u.text) for u in body) == reference["section_chars"]
        nested = any(len(u.section_path) > len(reference["section_path"]) for u in body)
        long_sections += reference in corpus and (nested or len(body) >= 100)
    assert len(corpus) >= 12 and long_sections >= 4
    assert all(r["annotator"] and len(r["summary"]) <= config.budget.cap_chars for r in corpus)
    changed = dict(references[0], unit_ids=references[0]["unit_ids"][1:])
    with pytest.raises(ConfigError, match="no longer has the units"):
        reference_section_units(reports[changed["report_id"]], changed)


def test_a_reference_covers_its_own_units_or_its_whole_subtree(seed_paths, reading_config):
    report = load_report(seed_paths[1], reading_config)  # 001: chapter 一、 has its own units and subsections
    (chapter,) = [s for s in report.sections() if s.path[-1].startswith("一、")]
    own = [u.unit_id for u in chapter.units if u.kind == "body"]
    tree = [u.unit_id for u in chapter.all_units() if u.kind == "body"]
    reference = {"report_id": report.report_id, "section_path": list(chapter.path), "summary": "x"}
    assert reference_section_units(report, dict(reference, unit_ids=own)) == chapter.units
    assert reference_section_units(report, dict(reference, unit_ids=tree)) == chapter.all_units()


def test_a_report_is_found_in_exactly_one_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "r1.txt").write_text("报告", encoding="utf-8")
    both = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert find_report_file("r1", both, "evaluation.report_dirs") == tmp_path / "a" / "r1.txt"
    with pytest.raises(ConfigError, match="'r2' is in none of evaluation.report_dirs"):
        find_report_file("r2", [str(tmp_path / "a")], "evaluation.report_dirs")
    (tmp_path / "b" / "r1.txt").write_text("报告", encoding="utf-8")
    with pytest.raises(ConfigError, match="more than one"):
        find_report_file("r1", both, "evaluation.report_dirs")


def test_reference_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_references(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"report_id": "x", "section_path": []}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: record lacks field 'unit_ids'"):
        load_references(bad)


@pytest.fixture(scope="module")
def eval_sections(seed_paths, reading_config) -> list[EvalSection]:
    """Six reference sections from three reports, with seeded random vectors: the pipeline, not the figures."""
    references = load_references(REFERENCES)
    reports = {path.stem: load_report(path, reading_config) for path in seed_paths}
    rng = np.random.default_rng(0)
    picked = [r for r in references if r["report_id"][:3] in ("000", "001", "003")]
    sections = []
    for reference in picked[:3] + picked[-3:]:
        units = reference_section_units(reports[reference["report_id"]], reference)
        sections.append(EvalSection(reference, units, rng.normal(size=(len(units), 8)),
                                    rng.dirichlet(np.ones(6), size=len(units)), "seeds"))
    return sections


def test_evaluation_table_compares_every_method_within_budget(config, eval_sections):
    results = evaluate_summaries(config, eval_sections, "synthetic vectors")
    assert results["sections"] == 6 and results["reports"] >= 2
    methods = {"Lead-k", "TextRank", "ours", "oracle (upper bound)", "ours without stage coverage"}
    assert methods <= set(results["means"])
    assert all(count == 0 for count in results["over_budget"].values())
    for row in results["rows"]:
        ours = row["scores"]["ours"]["rouge1"]["f"]
        assert 0 <= ours <= 1 and row["scores"]["oracle (upper bound)"]["rouge1"]["r"] > 0
    comparison = results["comparisons"]["Lead-k"]["rougeL"]
    assert comparison["ci95"][0] <= comparison["mean"] <= comparison["ci95"][1]
    table = results_markdown(results)
    assert "| **ours** |" in table and "| Lead-k |" in table and "synthetic vectors" in table
    assert "| reports in seeds | 6 |" in table and "ours without hierarchy (flat)" in table


def test_grid_search_scores_held_out_reports(config, eval_sections):
    grid = {"scoring.weights.position": [0.0, 2.0], "scoring.length_exponent": [0.0, 1.0]}
    tuned = tune_weights(config, eval_sections, grid, progress=False)
    assert tuned["points"] == 4 and set(tuned["best"]) == set(grid)
    assert tuned["leave_one_report_out"] <= tuned["best_in_sample"] + 1e-12
    assert len(tuned["folds"]) == len({s.reference["report_id"] for s in eval_sections})
    assert "leave-one-report-out" in tuning_markdown(tuned)


def test_replace_key_changes_one_key_and_names_a_wrong_one(config):
    changed = replace_key(config, "scoring.weights.position", 0.25)
    assert changed.scoring.weights.position == 0.25 and config.scoring.weights.position != 0.25
    assert changed.scoring.weights.informative == config.scoring.weights.informative
    with pytest.raises(ConfigError, match="scoring.weights.postion"):
        replace_key(config, "scoring.weights.postion", 1.0)
