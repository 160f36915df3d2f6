"""Evaluation across reports and genres: the fine-tuned model, its ensembles and three baselines on the same folds."""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from data.labeled_units import adjacent_runs, model_picked
from data.labels import LabelSet
from models.base_encoder import ensure_base_encoder
from models.classifier import forward_logits, softmax
from models.classifier_config import ClassifierConfig
from models.document_context import smooth_within_sections
from models.embedding import SentenceEncoder
from models.text_member import combine, member_probabilities
from training.baselines import embedding_logreg, keyword_rules, tfidf_logreg
from training.calibration import expected_calibration_error, nll
from training.metrics import classification_metrics
from training.model_folder import save_model_folder
from training.train import FittedClassifier, fit_classifier, model_inputs, record_neighbours

log = logging.getLogger(__name__)


def onnx_scores(fitted: FittedClassifier, train: list[dict], test: list[dict], config: ClassifierConfig,
                labels: LabelSet, work: Path) -> dict:
    """Export the fold's model (fused fp32 and int8) and score both on the held-out units, as PyTorch was."""
    from models.export_config import load_export_config
    from models.onnx_backend import export_onnx

    folder = save_model_folder(fitted, config, labels, train, work / "model")
    units = {"held-out": test, "train": train}  # int8 calibrates on the fold's training text, never the held-out one
    for name, records in units.items():
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                            encoding="utf-8")
    overrides = [f"parity.units={work / 'held-out.jsonl'}", f"onnx.int8_calibration_units={work / 'train.jsonl'}"]
    record = export_onnx(folder, load_export_config(overrides=overrides), int8=True, progress=False)
    return {"torch": record["torch"]["macro_f1"], **{
        name: {key: variant[key] for key in ("macro_f1", "label_agreement", "max_probability_difference")}
        for name, variant in record["variants"].items()}}


def evaluate_methods(train: list[dict], test: list[dict], config: ClassifierConfig, labels: LabelSet,
                     vectors: dict[str, np.ndarray], progress: bool,
                     onnx: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Fit every method on ``train`` and predict ``test``.

    Returns each method's predicted label ids, the probabilities of every method that has them, and calibration
    (and ONNX) figures.
    """
    y_train = np.array([labels.label2id[r["label"]] for r in train])
    y_test = np.array([labels.label2id[r["label"]] for r in test])
    with tempfile.TemporaryDirectory() as work:
        fitted = fit_classifier(train, config, labels, Path(work) / "trainer", progress=progress)
        exported = onnx_scores(fitted, train, test, config, labels, Path(work)) if onnx else None
    logits, _ = forward_logits(fitted.model, fitted.tokenizer, model_inputs(test, fitted.tokenizer, config),
                               config.predict.batch_size)
    bins = config.calibration.ece_bins
    calibration = {
        "temperature": fitted.temperature,
        "ece_before": expected_calibration_error(softmax(logits), y_test, bins),
        "ece_after": expected_calibration_error(softmax(logits, fitted.temperature), y_test, bins),
        "nll_before": nll(logits, y_test), "nll_after": nll(logits, y_test, fitted.temperature),
    }
    if exported:
        calibration["onnx"] = exported
    k = len(labels.names)
    tuned = softmax(logits, fitted.temperature)
    tfidf = tfidf_logreg([r["text"] for r in train], y_train, [r["text"] for r in test], config.train.seed, k)
    frozen = embedding_logreg(np.stack([vectors[r["unit_id"]] for r in train]), y_train,
                              np.stack([vectors[r["unit_id"]] for r in test]), config.train.seed, k)
    # with ensemble.text_member the served pair (member fit beside the encoder, calibrated as a whole) is scored
    text_member = tfidf if fitted.text_member is None else member_probabilities(
        fitted.text_member, [r["text"] for r in test], k, record_neighbours(test))
    ensemble = combine([tuned, text_member], fitted.ensemble_temperature)
    weight = config.ensemble.neighbour_weight
    probabilities = {
        "fine-tuned": tuned,
        "fine-tuned + tf-idf": ensemble,
        "fine-tuned + tf-idf + neighbours": in_context(test, ensemble, weight),
        "fine-tuned + tf-idf + frozen": combine([tuned, tfidf, frozen]),
        "tf-idf + LR": tfidf,
        "tf-idf + LR + neighbours": in_context(test, tfidf, weight),
        "frozen e5 + LR": frozen,
    }
    predictions = {method: p.argmax(1) for method, p in probabilities.items()}
    predictions["keyword rules"] = keyword_rules([r["text"] for r in test], labels)
    return predictions, probabilities, calibration


def in_context(records: list[dict], probs: np.ndarray, weight: float) -> np.ndarray:
    """Document context over labelled units, as `Predictor` applies it to a whole report.

    Labelled files hold runs of a report's units, not always all of them: a unit's neighbour is used only when its
    unit number is adjacent, so an unlabelled gap never joins two passages.
    """
    smoothed = probs.copy()
    for run in adjacent_runs(records):
        smoothed[run] = smooth_within_sections(probs[run], [records[i]["section_path"] for i in run],
                                               [records[i]["kind"] for i in run], weight)
    return smoothed


def frozen_vectors(records: list[dict], config: ClassifierConfig, progress: bool) -> dict[str, np.ndarray]:
    """Frozen e5 vectors of every unit, computed once for all folds."""
    encoder = SentenceEncoder(ensure_base_encoder(config.model.base), config.model.prefix, config.model.max_length,
                              config.predict.batch_size)
    matrix = encoder.encode([r["text"] for r in records], progress=progress)
    return {r["unit_id"]: row for r, row in zip(records, matrix, strict=True)}


def report_folds(records: list[dict], folds: int) -> list[list[str]]:
    """Deal the reports into folds genre by genre, largest first, so that every fold tests each genre.

    A report's size counts only the units that score (not ``model_picked``), so labelling picked units leaves the
    folds as they were.
    """
    sizes = Counter(r["report_id"] for r in records if not model_picked(r))
    genre_of = {r["report_id"]: r["genre"] for r in records}
    count = min(folds, len(sizes))
    dealt: list[list[str]] = [[] for _ in range(count)]
    position = 0
    for genre in sorted(set(genre_of.values())):
        for report in sorted((r for r in sizes if genre_of[r] == genre), key=lambda r: (-sizes[r], r)):
            dealt[position % count].append(report)
            position += 1
    return dealt


def split_kind(split: str) -> str:
    """Which of `evaluate.splits` a split belongs to: 'fold 2' → folds, 'devset', 'seeds → provincial' → cross_genre."""
    return "folds" if split.startswith("fold ") else "devset" if split == "devset" else "cross_genre"


def evaluation_splits(records: list[dict], folds: list[list[str]],
                      devset: list[dict] | None) -> list[tuple[str, list[dict], list[dict]]]:
    """Every split that `chainstage evaluate` scores, as (name, training units, test units), in its order.

    The grouped folds ('fold 1', ...: each fold's reports tested by a model trained on the others), both
    cross-genre directions ('provincial → seeds', ...), then every labelled unit → the devset ('devset').
    Units a model picked for review (``model_picked``) train wherever their report may, and are never tested.
    The benchmarks that rescore evaluate's folds take their splits from here too.
    """
    scored = [r for r in records if not model_picked(r)]
    splits = [(f"fold {number}", [r for r in records if r["report_id"] not in held],
               [r for r in scored if r["report_id"] in held]) for number, held in enumerate(folds, start=1)]
    genres = sorted({r["genre"] for r in records})
    splits += [(f"{source} → {target}", [r for r in records if r["genre"] == source],
                [r for r in scored if r["genre"] == target])
               for source in genres for target in genres if source != target]
    return splits + ([("devset", records, devset)] if devset else [])


def _score(records: list[dict], predictions: dict[str, np.ndarray], labels: LabelSet) -> dict:
    """Metrics of every method over ``records``, pooled and per report."""
    y = np.array([labels.label2id[r["label"]] for r in records])
    reports = np.array([r["report_id"] for r in records])
    scored = {}
    for method, predicted in predictions.items():
        # per report, macro-F1 averages the stages present in its gold labels or predictions: a small report
        # without a 科学发现 unit should not score 0 for that stage
        per_report = [{"report": report, "units": int((reports == report).sum()),
                       "macro_f1": float(f1_score(y[reports == report], predicted[reports == report],
                                                  average="macro", zero_division=0)),
                       "accuracy": float((y[reports == report] == predicted[reports == report]).mean())}
                      for report in sorted(set(reports))]
        scored[method] = {"pooled": classification_metrics(y, predicted, labels.names), "reports": per_report}
    return scored


def _per_genre(records: list[dict], predictions: dict[str, np.ndarray], labels: LabelSet) -> dict:
    """Held-out metrics by genre: mean ± std over the genre's reports, and pooled over its units."""
    out = {}
    for genre in sorted({r["genre"] for r in records}):
        mask = np.array([r["genre"] == genre for r in records])
        part = [r for r, keep in zip(records, mask, strict=True) if keep]
        scored = _score(part, {m: p[mask] for m, p in predictions.items()}, labels)
        out[genre] = {m: {"macro_f1_mean": float(np.mean([x["macro_f1"] for x in v["reports"]])),
                          "macro_f1_std": float(np.std([x["macro_f1"] for x in v["reports"]])),
                          "accuracy_mean": float(np.mean([x["accuracy"] for x in v["reports"]])),
                          **v} for m, v in scored.items()}
    return out


def cross_validate(records: list[dict], config: ClassifierConfig, labels: LabelSet, progress: bool = True,
                   devset: list[dict] | None = None, onnx: bool = False) -> tuple[dict, list[dict]]:
    """Grouped folds over reports, both cross-genre directions, then train-on-all → devset; every method alike.

    Returns the results (metrics only, for results.json) and, apart, one row per held-out unit per split with its
    probabilities by method (`unit_probabilities`), in the order of the label set.

    Units that a model picked for review (``model_picked``) join every training set their report may enter, but
    no test set, and the folds are dealt by the other units, so adding them leaves the tests unchanged.

    With ``onnx`` each fold's model is also exported and scored on its held-out reports, which measures the
    export's macro-F1 cost without training the folds a second time.
    """
    vectors = frozen_vectors(records + (devset or []), config, progress)
    folds = report_folds(records, config.evaluate.folds)
    order: list[dict] = []
    pooled: dict[str, list[np.ndarray]] = {}
    results: dict = {"folds": folds, "training_only_units": sum(map(model_picked, records)), "calibration": [],
                     "cross_genre": {}}
    units: list[dict] = []
    for split, train, test in evaluation_splits(records, folds, devset):
        kind = split_kind(split)
        if kind not in config.evaluate.splits:
            continue
        log.info("%s: %d training units, %d test units", split, len(train), len(test))
        predictions, probabilities, calibration = evaluate_methods(train, test, config, labels, vectors, progress,
                                                                   onnx and kind == "folds")
        units += unit_probabilities(split, test, probabilities)
        if kind == "folds":
            number = int(split.split()[1])
            results["calibration"].append({"fold": number, "reports": folds[number - 1], **calibration})
            order.extend(test)
            for method, predicted in predictions.items():
                pooled.setdefault(method, []).append(predicted)
        elif kind == "devset":
            results["devset"] = {"units": len(test), "calibration": calibration,
                                 "methods": {m: v["pooled"] for m, v in _score(test, predictions, labels).items()}}
        else:
            results["cross_genre"][split] = _per_genre(test, predictions, labels)[split.split(" → ")[1]]
    results["grouped"] = _per_genre(order, {m: np.concatenate(p) for m, p in pooled.items()}, labels)
    return results, units


def unit_probabilities(split: str, records: list[dict], probabilities: dict[str, np.ndarray]) -> list[dict]:
    """One row per held-out unit: its gold label and each method's probabilities, for error analysis offline."""
    return [{"split": split, "unit_id": r["unit_id"], "report_id": r["report_id"], "genre": r.get("genre"),
             "label": r["label"], "probabilities": {m: np.round(p[i], 5).tolist() for m, p in probabilities.items()}}
            for i, r in enumerate(records)]


def _genre_table(by_method: dict) -> list[str]:
    lines = ["| method | macro-F1 mean ± std over reports | pooled macro-F1 | pooled accuracy | "
             + " | ".join(f"F1 {name}" for name in next(iter(by_method.values()))["pooled"]["per_class"]) + " |"]
    lines.append("|---|---|---|---|" + "---|" * len(next(iter(by_method.values()))["pooled"]["per_class"]))
    for method, m in by_method.items():
        cells = " | ".join(f"{c['f1']:.3f}" for c in m["pooled"]["per_class"].values())
        lines.append(f"| {method} | {m['macro_f1_mean']:.3f} ± {m['macro_f1_std']:.3f} | "
                     f"{m['pooled']['macro_f1']:.3f} | {m['pooled']['accuracy']:.3f} | {cells} |")
    return lines


def results_markdown(results: dict, labels: LabelSet) -> str:
    """The results document: held-out reports by genre, cross-genre, per report, calibration, ONNX, devset."""
    lines = [f"Grouped {len(results['folds'])}-fold evaluation over reports: each report is tested by a model "
             "trained without it (folds: " + "; ".join(", ".join(r[:12] for r in f) for f in results["folds"]) + ")."
             + (f" {results['training_only_units']} units that a model picked for review are trained on and never "
                "scored." if results.get("training_only_units") else ""),
             ""]
    for genre, by_method in results["grouped"].items():
        lines += [f"### Held-out reports, genre `{genre}`", ""] + _genre_table(by_method) + [""]
    for pair, by_method in results.get("cross_genre", {}).items():
        lines += [f"### Cross-genre: train on `{pair.split(' → ')[0]}`, test on `{pair.split(' → ')[1]}`", ""]
        lines += _genre_table(by_method) + [""]
    lines += ["### Macro-F1 per held-out report", ""]
    methods = list(next(iter(results["grouped"].values())))
    lines += ["| report | units | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for by_method in results["grouped"].values():
        for i, row in enumerate(by_method[methods[0]]["reports"]):
            cells = " | ".join(f"{by_method[m]['reports'][i]['macro_f1']:.3f}" for m in methods)
            lines.append(f"| {row['report']} | {row['units']} | {cells} |")
    lines += ["", "### Calibration of the fine-tuned model on each fold's held-out reports", "",
              "| fold | T | ECE before | ECE after | NLL before | NLL after |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['fold']} | {c['temperature']:.2f} | {c['ece_before']:.3f} | {c['ece_after']:.3f} | "
              f"{c['nll_before']:.3f} | {c['nll_after']:.3f} |" for c in results["calibration"]]
    calibration = results["calibration"]
    if "onnx" in calibration[0]:
        lines += ["", "### ONNX export of each fold's model on its held-out reports", "",
                  "| fold | PyTorch | ONNX fp32 | ONNX int8 | agreement fp32 | agreement int8 | max Δp int8 |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['fold']} | {c['onnx']['torch']:.4f} | {c['onnx']['fp32']['macro_f1']:.4f} | "
                  f"{c['onnx']['int8']['macro_f1']:.4f} | {c['onnx']['fp32']['label_agreement']:.4f} | "
                  f"{c['onnx']['int8']['label_agreement']:.4f} | "
                  f"{c['onnx']['int8']['max_probability_difference']:.4f} |" for c in calibration]
    if "devset" in results:
        dev = results["devset"]
        lines += ["", f"### Devset: trained on all labelled reports, tested on the {dev['units']} devset units", "",
                  "| method | macro-F1 | accuracy |", "|---|---|---|"]
        lines += [f"| {m} | {v['macro_f1']:.3f} | {v['accuracy']:.3f} |" for m, v in dev["methods"].items()]
    return "\n".join(lines) + "\n"
