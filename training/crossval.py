"""Leave-one-report-out evaluation of the fine-tuned model and the three baselines on the same folds."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from data.labels import LabelSet
from models.base_encoder import ensure_base_encoder
from models.classifier import forward_logits, softmax
from models.classifier_config import ClassifierConfig
from models.embedding import SentenceEncoder
from training.baselines import embedding_logreg, keyword_rules, tfidf_logreg
from training.calibration import expected_calibration_error, nll
from training.metrics import classification_metrics
from training.model_folder import save_model_folder
from training.train import FittedClassifier, fit_classifier, model_inputs

log = logging.getLogger(__name__)

METHODS = ("fine-tuned", "keyword rules", "tf-idf + LR", "frozen e5 + LR")


def _summarise(per_fold: list[dict], pooled_true: np.ndarray, pooled_pred: np.ndarray, names: list[str]) -> dict:
    f1 = np.array([fold["macro_f1"] for fold in per_fold])
    acc = np.array([fold["accuracy"] for fold in per_fold])
    pooled = classification_metrics(pooled_true, pooled_pred, names)
    return {
        "macro_f1_mean": float(f1.mean()), "macro_f1_std": float(f1.std()),
        "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
        "folds": per_fold, "pooled": pooled,
    }


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
                     onnx: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Fit every method on ``train`` and predict ``test``; returns predictions and calibration (and ONNX) figures."""
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
    predictions = {
        "fine-tuned": logits.argmax(1),
        "keyword rules": keyword_rules([r["text"] for r in test], labels),
        "tf-idf + LR": tfidf_logreg([r["text"] for r in train], y_train, [r["text"] for r in test],
                                    config.train.seed),
        "frozen e5 + LR": embedding_logreg(np.stack([vectors[r["unit_id"]] for r in train]), y_train,
                                           np.stack([vectors[r["unit_id"]] for r in test]), config.train.seed),
    }
    return predictions, calibration


def frozen_vectors(records: list[dict], config: ClassifierConfig, progress: bool) -> dict[str, np.ndarray]:
    """Frozen e5 vectors of every unit, computed once for all folds."""
    encoder = SentenceEncoder(ensure_base_encoder(config.model.base), config.model.prefix, config.model.max_length,
                              config.predict.batch_size)
    matrix = encoder.encode([r["text"] for r in records], progress=progress)
    return {r["unit_id"]: row for r, row in zip(records, matrix, strict=True)}


def cross_validate(records: list[dict], config: ClassifierConfig, labels: LabelSet, progress: bool = True,
                   devset: list[dict] | None = None, onnx: bool = False) -> dict:
    """Run every fold (and, if given, train-on-all-seeds → devset); return per-method summaries.

    With ``onnx`` each fold's model is also exported and scored on its held-out report, which measures the
    export's macro-F1 cost without training the folds a second time.
    """
    reports = sorted({r["report_id"] for r in records})
    vectors = frozen_vectors(records + (devset or []), config, progress)
    per_fold: dict[str, list[dict]] = {m: [] for m in METHODS}
    pooled_true: list[int] = []
    pooled_pred: dict[str, list[int]] = {m: [] for m in METHODS}
    calibration = []
    for held in reports:
        log.info("fold: held-out report %s", held)
        train = [r for r in records if r["report_id"] != held]
        test = [r for r in records if r["report_id"] == held]
        predictions, fold_calibration = evaluate_methods(train, test, config, labels, vectors, progress, onnx)
        y_test = np.array([labels.label2id[r["label"]] for r in test])
        pooled_true.extend(y_test.tolist())
        calibration.append({"report": held, **fold_calibration})
        for method, predicted in predictions.items():
            fold = classification_metrics(y_test, predicted, labels.names)
            per_fold[method].append({"report": held, "macro_f1": fold["macro_f1"], "accuracy": fold["accuracy"],
                                     "units": len(test)})
            pooled_pred[method].extend(predicted.tolist())
    results = {
        "methods": {m: _summarise(per_fold[m], np.array(pooled_true), np.array(pooled_pred[m]), labels.names)
                    for m in METHODS},
        "calibration": calibration,
    }
    if devset:
        predictions, dev_calibration = evaluate_methods(records, devset, config, labels, vectors, progress)
        y_dev = np.array([labels.label2id[r["label"]] for r in devset])
        results["devset"] = {
            "units": len(devset),
            "methods": {m: classification_metrics(y_dev, p, labels.names) for m, p in predictions.items()},
            "calibration": dev_calibration,
        }
    return results


def results_markdown(results: dict, labels: LabelSet) -> str:
    """The README table: per-fold and mean ± std macro-F1 and accuracy, per-class F1, calibration."""
    methods = results["methods"]
    reports = [fold["report"][:3] for fold in methods["fine-tuned"]["folds"]]
    lines = ["| method | " + " | ".join(f"F1 {r}" for r in reports) + " | macro-F1 mean ± std | accuracy mean ± std |",
             "|---|" + "---|" * (len(reports) + 2)]
    for name, summary in methods.items():
        folds = " | ".join(f"{fold['macro_f1']:.3f}" for fold in summary["folds"])
        lines.append(f"| {name} | {folds} | {summary['macro_f1_mean']:.3f} ± {summary['macro_f1_std']:.3f} | "
                     f"{summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f} |")
    lines += ["", "Per-class F1, pooled over the held-out reports:", "",
              "| method | " + " | ".join(labels.names) + " |", "|---|" + "---|" * len(labels.names)]
    for name, summary in methods.items():
        cells = " | ".join(f"{summary['pooled']['per_class'][n]['f1']:.3f}" for n in labels.names)
        lines.append(f"| {name} | {cells} |")
    fine = methods["fine-tuned"]["pooled"]
    lines += ["", "Per-class precision / recall of the fine-tuned model (pooled):", "",
              "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
              for n, m in fine["per_class"].items()]
    lines += ["", "Confusion matrix of the fine-tuned model (pooled; rows true, columns predicted):", "",
              "| | " + " | ".join(labels.names) + " |", "|---|" + "---|" * len(labels.names)]
    lines += [f"| {n} | " + " | ".join(str(c) for c in row) + " |"
              for n, row in zip(labels.names, fine["confusion_matrix"], strict=True)]
    calibration = results["calibration"]
    lines += ["", "Calibration of the fine-tuned model on each held-out report (temperature fitted on dev units):",
              "", "| report | T | ECE before | ECE after | NLL before | NLL after |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['report'][:3]} | {c['temperature']:.2f} | {c['ece_before']:.3f} | {c['ece_after']:.3f} | "
              f"{c['nll_before']:.3f} | {c['nll_after']:.3f} |" for c in calibration]
    if "onnx" in calibration[0]:
        lines += ["", "ONNX export of each fold's model, scored on the same held-out report (macro-F1; label agreement "
                  "and largest probability difference against PyTorch):", "",
                  "| report | PyTorch | ONNX fp32 | ONNX int8 | agreement fp32 | agreement int8 | max Δp int8 |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['report'][:3]} | {c['onnx']['torch']:.4f} | {c['onnx']['fp32']['macro_f1']:.4f} | "
                  f"{c['onnx']['int8']['macro_f1']:.4f} | {c['onnx']['fp32']['label_agreement']:.4f} | "
                  f"{c['onnx']['int8']['label_agreement']:.4f} | "
                  f"{c['onnx']['int8']['max_probability_difference']:.4f} |"
                  for c in calibration]
        means = {name: np.mean([c["onnx"][name] if name == "torch" else c["onnx"][name]["macro_f1"]
                                for c in calibration]) for name in ("torch", "fp32", "int8")}
        lines.append(f"| mean | {means['torch']:.4f} | {means['fp32']:.4f} | {means['int8']:.4f} | | | |")
        lines += ["", "Mean macro-F1 drop against PyTorch: " + ", ".join(
            f"ONNX {name} {means['torch'] - means[name]:+.4f}" for name in ("fp32", "int8"))]
    if "devset" in results:
        dev = results["devset"]
        lines += ["", f"Cross-genre: trained on all seeds, tested on the {dev['units']} labelled devset units "
                  "(four 2026 provincial work reports):", "", "| method | macro-F1 | accuracy |", "|---|---|---|"]
        lines += [f"| {m} | {v['macro_f1']:.3f} | {v['accuracy']:.3f} |" for m, v in dev["methods"].items()]
    return "\n".join(lines) + "\n"
