"""Character-level ROUGE of the summarizer against Lead-k, TextRank and the extractive oracle.

Every method summarises the same body units of each reference section, within the same budget: the reference
summary's own length in characters. A reference covers a section's own body units or, for a section summarised
with its subsections, every body unit below it; the summarizer is then hierarchical, the baselines flat.
ROUGE follows the LCSTS convention (characters are the tokens), scored with Google's ``rouge-score`` and a
character tokenizer, since its default tokenizer keeps only ASCII letters and digits.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

from data.errors import ConfigError
from data.labeled_units import read_records
from data.load import find_report_file, load_report
from data.reading_config import load_reading_config
from data.segment import Report, Unit
from models.section_lookup import has_several_parts
from models.summarizer import summarize_units
from models.summarizer_config import Budget, CompressionSection, SummarizerConfig
from models.unit_scoring import pagerank
from models.unit_selection import fill_budget, join_in_order

logger = logging.getLogger(__name__)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
FLAT = "ours without hierarchy (flat)"
REFERENCE_FIELDS = ("report_id", "section_path", "unit_ids", "summary")


class CharTokenizer:
    """ROUGE tokens for Chinese: one per character; whitespace and punctuation are dropped so that a shared
    。 or ， earns nothing."""

    def tokenize(self, text: str) -> list[str]:
        return [char for char in text if not char.isspace() and not unicodedata.category(char).startswith("P")]


def rouge(reference: str, candidate: str) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of ROUGE-1, ROUGE-2 and ROUGE-L (LCS over the whole summary) on characters."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=CharTokenizer())
    scores = scorer.score(reference, candidate)
    return {name: {"p": s.precision, "r": s.recall, "f": s.fmeasure} for name, s in scores.items()}


@dataclass
class EvalSection:
    """One reference section: its units (heading included), their vectors and, with a classifier, probabilities,
    and the folder its report came from (the tables break results down by it)."""

    reference: dict[str, Any]
    units: list[Unit]
    embeddings: np.ndarray
    probs: np.ndarray | None
    report_dir: str

    @property
    def body(self) -> list[Unit]:
        return [unit for unit in self.units if unit.kind == "body"]

    @property
    def nested(self) -> bool:
        """Whether the reference's units lie in two or more parts (its own units, each subsection), which the
        summarizer summarises hierarchically."""
        return has_several_parts(self.units, self.reference["section_path"])

    @property
    def budget_chars(self) -> int:
        return len(self.reference["summary"])


def load_references(path: str | Path) -> list[dict[str, Any]]:
    """Read the reference summaries, checking every record has the fields evaluation needs."""
    return read_records(path, REFERENCE_FIELDS, "reference summaries")


def reference_section_units(report: Report, reference: dict[str, Any]) -> list[Unit]:
    """The reference's section in the report, its own units or its whole subtree (whichever the reference's
    body units are), checked unit for unit (a changed segmentation must not go unseen)."""
    for section in report.sections():
        if list(section.path) == list(reference["section_path"]):
            for units in (section.units, section.all_units()):
                if [unit.unit_id for unit in units if unit.kind == "body"] == list(reference["unit_ids"]):
                    return list(units)
            raise ConfigError(f"{report.source}: section {' / '.join(section.path)} no longer has the units of its "
                              "reference summary; re-check data/labeled/summaries.jsonl")
    raise ConfigError(f"{report.source}: no section {' / '.join(reference['section_path'])} (named in the references)")


def load_eval_sections(config: SummarizerConfig, model: str | Path | None = None,
                       progress: bool = True) -> tuple[list[EvalSection], str]:
    """Reference sections with unit vectors from one pass per report: the classifier folder's embeddings and
    probabilities when ``model`` is given, else the frozen base encoder (and no stage probabilities)."""
    settings = config.evaluation
    references = load_references(settings.references)
    reading = load_reading_config()
    files = {rid: find_report_file(rid, settings.report_dirs, "evaluation.report_dirs")
             for rid in sorted({r["report_id"] for r in references})}
    reports = {rid: load_report(path, reading) for rid, path in files.items()}
    vectors: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    if model is not None:
        from models.predictor import Predictor

        predictor = Predictor.load(model)
        for rid, report in reports.items():
            classified = predictor.classify_report(report, progress=progress)
            vectors[rid] = (classified.embeddings, classified.probs)
        source = f"classifier folder {model} (embeddings and stage probabilities)"
    else:
        from models.base_encoder import ensure_base_encoder
        from models.embedding import SentenceEncoder

        folder = ensure_base_encoder(settings.base_encoder)
        encoder = SentenceEncoder(folder, settings.prefix, settings.max_length, settings.batch_size)
        for rid, report in reports.items():
            vectors[rid] = (encoder.encode([unit.text for unit in report.units], progress=progress), None)
        source = f"frozen base encoder {settings.base_encoder} (no classifier, so no stage coverage)"
    sections = []
    for reference in references:
        report = reports[reference["report_id"]]
        units = reference_section_units(report, reference)
        rows = [unit.index for unit in units]
        embeddings, probs = vectors[reference["report_id"]]
        sections.append(EvalSection(reference, units, embeddings[rows], None if probs is None else probs[rows],
                                    str(files[reference["report_id"]].parent)))
    return sections, source


# ----------------------------------------------------------------------------------------------------------------
# Baselines and the oracle: the same candidate units and the same budget rule (fill_budget) as the summarizer


def lead_summary(texts: Sequence[str], budget_chars: int, rules: CompressionSection) -> str:
    """Lead-k: the section's first units, as many as the budget holds."""
    chosen = fill_budget(range(len(texts)), texts, budget_chars, rules)
    return join_in_order(chosen, rules)


def _words(text: str) -> set[str]:
    import jieba

    return {word for word in jieba.lcut(text) if word.strip() and not all(unicodedata.category(c)[0] == "P"
                                                                         for c in word)}


def textrank_summary(texts: Sequence[str], budget_chars: int, rules: CompressionSection, damping: float) -> str:
    """TextRank (Mihalcea & Tarau 2004) as TextRank4ZH runs it: jieba words, overlap / (log|a| + log|b|)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # jieba announces its dictionary on every first use
    words = [_words(text) for text in texts]
    n = len(texts)
    weights = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            norm = math.log(len(words[i]) or 1) + math.log(len(words[j]) or 1)
            if norm > 0:
                weights[i, j] = weights[j, i] = len(words[i] & words[j]) / norm
    scores = pagerank(weights, damping)
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    chosen = fill_budget(ranked, texts, budget_chars, rules)
    return join_in_order(chosen, rules)


def _objective(reference: str, candidate: str) -> float:
    scores = rouge(reference, candidate)
    return (scores["rouge1"]["f"] + scores["rouge2"]["f"]) / 2


def oracle_summary(texts: Sequence[str], reference: str, budget_chars: int, rules: CompressionSection) -> str:
    """Greedy extractive oracle (Nallapati et al. 2017): add the unit that most raises ROUGE-1+2 against the
    reference, whole or with the same clause trimming, until nothing raises it; an upper bound, not a method."""
    chosen: dict[int, str] = {}
    best_score = 0.0
    while True:
        remaining = budget_chars - sum(len(piece) for piece in chosen.values())
        best = None
        for i in range(len(texts)):
            if i in chosen:
                continue
            trial = fill_budget([i], texts, remaining, rules)
            if not trial:
                continue
            candidate = {**chosen, **trial}
            score = _objective(reference, join_in_order(candidate, rules))
            if score > best_score + 1e-12:
                best_score, best = score, trial
        if best is None:
            return join_in_order(chosen, rules)
        chosen.update(best)


# ----------------------------------------------------------------------------------------------------------------
# The evaluation


def _ours(config: SummarizerConfig) -> Callable[[EvalSection], str]:
    def run(section: EvalSection) -> str:
        budget = Budget(ratio=None, max_chars=section.budget_chars, min_chars=config.budget.min_chars,
                        cap_chars=config.budget.cap_chars)
        return summarize_units(section.units, section.embeddings, section.probs, budget, config,
                               section_path=section.reference["section_path"]).text
    return run


def _ablations(config: SummarizerConfig, with_probs: bool) -> dict[str, SummarizerConfig]:
    """The method with one ingredient removed at a time, to show what each contributes."""
    scoring = config.scoring
    names = {"centrality": "centrality", "heading": "heading similarity", "informative": "informative content",
             "position": "position", "stage_coverage": "stage coverage"}
    configs = {}
    for key, name in names.items():
        if getattr(scoring.weights, key) > 0 and (with_probs or key != "stage_coverage"):
            weights = dataclasses.replace(scoring.weights, **{key: 0.0})
            configs[f"ours without {name}"] = dataclasses.replace(
                config, scoring=dataclasses.replace(scoring, weights=weights))
    if scoring.length_exponent > 0:
        configs["ours without length normalisation"] = replace_key(config, "scoring.length_exponent", 0.0)
    if scoring.mmr_lambda < 1:
        configs["ours without MMR (relevance only)"] = replace_key(config, "scoring.mmr_lambda", 1.0)
    configs["ours without compression rules"] = dataclasses.replace(config, compression=dataclasses.replace(
        config.compression, enumerators=False, filler_openings=[]))
    if config.hierarchy.enabled:
        # the method before hierarchy: one flat section of every unit below the heading
        configs[FLAT] = replace_key(config, "hierarchy.enabled", False)
        if config.hierarchy.coverage > 0:
            configs["ours without subsection coverage"] = replace_key(config, "hierarchy.coverage", 0.0)
    return configs


def paired_bootstrap(differences: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    """95 % confidence interval of a mean paired difference, resampling sections with replacement."""
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), size=(samples, len(differences)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def evaluate_summaries(config: SummarizerConfig, sections: list[EvalSection], source: str) -> dict[str, Any]:
    """Score every method on every section; mean F1s, paired differences against the baselines, per-section rows."""
    rules = config.compression
    damping = config.scoring.damping
    methods: dict[str, Callable[[EvalSection], str]] = {
        "Lead-k": lambda s: lead_summary([u.text for u in s.body], s.budget_chars, rules),
        "TextRank": lambda s: textrank_summary([u.text for u in s.body], s.budget_chars, rules,
                                               damping),
        "ours": _ours(config),
        "oracle (upper bound)": lambda s: oracle_summary([u.text for u in s.body],
                                                         s.reference["summary"], s.budget_chars, rules),
    }
    with_probs = sections[0].probs is not None if sections else False
    for name, variant in _ablations(config, with_probs).items():
        methods[name] = _ours(variant)
    rows = []
    for section in sections:
        row: dict[str, Any] = {"report_id": section.reference["report_id"], "report_dir": section.report_dir,
                               "section_path": section.reference["section_path"], "nested": section.nested,
                               "budget_chars": section.budget_chars, "summaries": {}, "scores": {}}
        for name, method in methods.items():
            text = method(section)
            row["summaries"][name] = text
            row["scores"][name] = rouge(section.reference["summary"], text)
        rows.append(row)
    means = {name: {rt: float(np.mean([row["scores"][name][rt]["f"] for row in rows])) for rt in ROUGE_TYPES}
             for name in methods}
    over_budget = {name: sum(len(row["summaries"][name]) > row["budget_chars"] for row in rows) for name in methods}
    comparisons = {}
    for baseline in ("Lead-k", "TextRank"):
        comparisons[baseline] = {}
        for rt in ROUGE_TYPES:
            diff = np.array([row["scores"]["ours"][rt]["f"] - row["scores"][baseline][rt]["f"] for row in rows])
            low, high = paired_bootstrap(diff, config.evaluation.bootstrap_samples, config.seed)
            comparisons[baseline][rt] = {"mean": float(diff.mean()), "ci95": [low, high],
                                         "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum())}
    return {"sections": len(rows), "reports": len({row["report_id"] for row in rows}), "embeddings": source,
            "mean_budget_chars": float(np.mean([row["budget_chars"] for row in rows])) if rows else 0.0,
            "means": means, "over_budget": over_budget, "comparisons": comparisons,
            "breakdown": breakdown(rows, list(methods)), "rows": rows}


def breakdown(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, Any]]:
    """Mean F1s per group of sections: by report folder (the genre), and by whether the section has two or more
    parts, so that a gain on one kind of section cannot hide a loss on another."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(f"reports in {row['report_dir']}", []).append(row)
    for nested, name in ((True, "sections of 2+ parts (own units, subsections)"), (False, "sections of one part")):
        groups[name] = [row for row in rows if row["nested"] == nested]
    return {name: {"sections": len(members),
                   "means": {method: {rt: float(np.mean([row["scores"][method][rt]["f"] for row in members]))
                                      for rt in ROUGE_TYPES} for method in methods}}
            for name, members in groups.items() if members}


def results_markdown(results: dict[str, Any]) -> str:
    """The README table: mean character-level ROUGE F1 per method, then ours minus each baseline."""
    lines = [f"{results['sections']} reference sections from {results['reports']} reports; budget = the "
             f"reference's length (mean {results['mean_budget_chars']:.0f} characters); unit vectors from "
             f"{results['embeddings']}.", "",
             "| method | ROUGE-1 F1 | ROUGE-2 F1 | ROUGE-L F1 | over budget |", "|---|---|---|---|---|"]
    for name, mean in results["means"].items():
        label = f"**{name}**" if name == "ours" else name
        lines.append(f"| {label} | {mean['rouge1']:.4f} | {mean['rouge2']:.4f} | {mean['rougeL']:.4f} | "
                     f"{results['over_budget'][name]} |")
    lines += ["", "| ours minus | ROUGE-1 (95 % CI) | ROUGE-2 (95 % CI) | ROUGE-L (95 % CI) | wins/losses (R-L) |",
              "|---|---|---|---|---|"]
    for baseline, by_type in results["comparisons"].items():
        cells = [f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" for d in by_type.values()]
        lines.append(f"| {baseline} | {' | '.join(cells)} | {by_type['rougeL']['wins']}/"
                     f"{by_type['rougeL']['losses']} |")
    shown = [name for name in ("Lead-k", "TextRank", "ours", FLAT) if name in results["means"]]
    lines += ["", f"| sections (ROUGE-1 / -2 / -L F1) | n | {' | '.join(shown)} |", "|---|---|" + "---|" * len(shown)]
    for group, numbers in results["breakdown"].items():
        cells = [" / ".join(f"{numbers['means'][name][rt]:.3f}" for rt in ROUGE_TYPES) for name in shown]
        lines.append(f"| {group} | {numbers['sections']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Tuning: one weight set for all reports, chosen on a grid and judged by leave-one-report-out


def replace_key(config: Any, key: str, value: Any) -> Any:
    """A copy of a frozen config with one dotted key changed, e.g. ``scoring.weights.position``."""

    def replace(node: Any, parts: list[str]) -> Any:
        if not dataclasses.is_dataclass(node) or parts[0] not in {f.name for f in dataclasses.fields(node)}:
            raise ConfigError(f"unknown config key '{key}' in evaluation.tune_grid")
        inner = value if len(parts) == 1 else replace(getattr(node, parts[0]), parts[1:])
        return dataclasses.replace(node, **{parts[0]: inner})

    return replace(config, key.split("."))


def _objective_rows(sections: list[EvalSection], summarize: Callable[[EvalSection], str]) -> np.ndarray:
    """Per section, the mean of ROUGE-1, -2 and -L F1: the one number the grid search maximises."""
    return np.array([np.mean([score["f"] for score in rouge(s.reference["summary"], summarize(s)).values()])
                     for s in sections])


def tune_weights(config: SummarizerConfig, sections: list[EvalSection], grid: dict[str, list[float]],
                 progress: bool = True) -> dict[str, Any]:
    """Score every grid point on every section; pick the best on all sections, and estimate how well picking
    generalises by leave-one-report-out (pick on the other reports, score on the one held out)."""
    from tqdm.auto import tqdm

    keys = list(grid)
    points = list(itertools.product(*(grid[key] for key in keys)))
    scores = np.zeros((len(points), len(sections)))
    for p, values in enumerate(tqdm(points, desc="grid", unit="setting", disable=not progress)):
        variant = config
        for key, value in zip(keys, values, strict=True):
            variant = replace_key(variant, key, value)
        scores[p] = _objective_rows(sections, _ours(variant))
    reports = [s.reference["report_id"] for s in sections]
    held_out = np.zeros(len(sections))
    folds = {}
    for report in sorted(set(reports)):
        test = np.array([r == report for r in reports])
        best = int(np.argmax(scores[:, ~test].mean(axis=1)))
        held_out[test] = scores[best, test]
        folds[report] = {"chosen": dict(zip(keys, points[best], strict=True)),
                         "held_out": float(scores[best, test].mean())}
    best = int(np.argmax(scores.mean(axis=1)))
    rules = config.compression
    baselines = {
        "Lead-k": _objective_rows(sections, lambda s: lead_summary(
            [u.text for u in s.body], s.budget_chars, rules)),
        "TextRank": _objective_rows(sections, lambda s: textrank_summary(
            [u.text for u in s.body], s.budget_chars, rules, config.scoring.damping)),
        "ours as configured": _objective_rows(sections, _ours(config)),
    }
    return {"grid": grid, "points": len(points), "best": dict(zip(keys, points[best], strict=True)),
            "best_in_sample": float(scores[best].mean()), "leave_one_report_out": float(held_out.mean()),
            "folds": folds, "baselines": {name: float(values.mean()) for name, values in baselines.items()}}


def tuning_markdown(tuned: dict[str, Any]) -> str:
    """What the grid chose, and the honest (held-out) estimate beside the optimistic in-sample one."""
    lines = [f"Grid of {tuned['points']} settings over {', '.join(tuned['grid'])}; objective: mean of character "
             "ROUGE-1/2/L F1 per section.", "",
             "| | mean ROUGE-1/2/L F1 |", "|---|---|",
             f"| best setting, chosen and scored on all sections (optimistic) | {tuned['best_in_sample']:.4f} |",
             f"| chosen on the other reports, scored on the one held out (leave-one-report-out) | "
             f"{tuned['leave_one_report_out']:.4f} |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in tuned["baselines"].items()]
    lines += ["", "best: " + ", ".join(f"{key}={value}" for key, value in tuned["best"].items()), ""]
    for report, fold in tuned["folds"].items():
        chosen = ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in fold["chosen"].items())
        lines.append(f"- held out {report}: {fold['held_out']:.4f} with {chosen}")
    return "\n".join(lines) + "\n"
