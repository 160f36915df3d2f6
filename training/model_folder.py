"""Write a self-describing model folder: weights, tokenizer, resolved config, calibration, metrics, card."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from string import Template

import yaml

from data.configuration import to_dict
from data.labels import LabelSet
from models.classifier import softmax
from models.classifier_config import ClassifierConfig
from models.folder_layout import (
    CONFUSION_MATRIX_FILE,
    MANIFEST_FILE,
    MEMBER_FILE,
    METRICS_FILE,
    MODEL_CARD_FILE,
    TRAINING_CONFIG_FILE,
    save_calibration,
)
from models.text_member import save_member
from training.calibration import expected_calibration_error, nll
from training.metrics import classification_metrics, plot_confusion_matrix
from training.train import FittedClassifier

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "scikit-learn", "skops", "numpy")
TEMPLATE = Path(__file__).with_name("model_card_template.md")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_hash(records: list[dict]) -> str:
    """sha256 of the labelled units as trained on (ids, texts and labels), order-independent."""
    lines = sorted(json.dumps([r["unit_id"], r["text"], r["label"]], ensure_ascii=False) for r in records)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _dev_metrics(fitted: FittedClassifier, labels: LabelSet, bins: int) -> dict:
    if len(fitted.dev_labels) == 0:
        return {}
    metrics = classification_metrics(fitted.dev_labels, fitted.dev_logits.argmax(1), labels.names)
    metrics["ece_before"] = expected_calibration_error(softmax(fitted.dev_logits), fitted.dev_labels, bins)
    metrics["ece_after"] = expected_calibration_error(softmax(fitted.dev_logits, fitted.temperature),
                                                      fitted.dev_labels, bins)
    metrics["nll_before"] = nll(fitted.dev_logits, fitted.dev_labels)
    metrics["nll_after"] = nll(fitted.dev_logits, fitted.dev_labels, fitted.temperature)
    return metrics


def save_model_folder(fitted: FittedClassifier, config: ClassifierConfig, labels: LabelSet, records: list[dict],
                      out_dir: Path) -> Path:
    """Save everything a user or `Predictor.load` needs into one folder, written last-file-wins safe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fitted.model.save_pretrained(out_dir)
    fitted.tokenizer.save_pretrained(out_dir)
    (out_dir / TRAINING_CONFIG_FILE).write_text(
        yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False), encoding="utf-8")
    if fitted.text_member is not None:
        save_member(fitted.text_member, out_dir)
    save_calibration(out_dir, fitted.temperature,
                     fitted.ensemble_temperature if fitted.text_member is not None else None)
    metrics = _dev_metrics(fitted, labels, config.calibration.ece_bins)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    if metrics:
        plot_confusion_matrix(metrics["confusion_matrix"], labels.names, [label.key for label in labels.labels],
                              out_dir / CONFUSION_MATRIX_FILE, "dev units")
    versions = package_versions()
    manifest = {
        "data_files": config.data.labeled_files,
        "data_sha256": data_hash(records),
        "reports": sorted({r["report_id"] for r in records}),
        "train_units": fitted.train_size,
        "dev_units": fitted.dev_size,
        "git_commit": git_commit(),
        "packages": versions,
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (out_dir / MODEL_CARD_FILE).write_text(render_model_card(fitted, config, labels, records, metrics, versions,
                                                         out_dir.name), encoding="utf-8")
    return out_dir


# the served model first (encoder + TF-IDF member + document context), then its parts, then the baselines
CARD_METHODS = ("fine-tuned + tf-idf + neighbours", "fine-tuned + tf-idf", "fine-tuned", "tf-idf + LR + neighbours",
                "tf-idf + LR", "frozen e5 + LR", "keyword rules")


def held_out_summary(results_file: Path) -> str:
    """The headline of the last committed `chainstage evaluate` run (docs/results), or a note that there is none."""
    if not results_file.is_file():
        return f"Not measured for this configuration (no `{results_file}`); run `chainstage evaluate`."
    results = json.loads(results_file.read_text(encoding="utf-8"))
    command = results.get("command", "chainstage evaluate")
    lines = [f"From `{command}` (grouped {len(results['folds'])}-fold over reports; every report is "
             "scored by a model that never saw it), macro-F1 mean ± std over reports and pooled over their units:", "",
             "| test | method | macro-F1 mean ± std | pooled macro-F1 |", "|---|---|---|---|"]
    for name, by_method in [*(("held-out " + g, m) for g, m in results["grouped"].items()),
                            *(("cross-genre " + pair, m) for pair, m in results.get("cross_genre", {}).items())]:
        for method in [m for m in CARD_METHODS if m in by_method]:
            m = by_method[method]
            lines.append(f"| {name} | {method} | {m['macro_f1_mean']:.3f} ± {m['macro_f1_std']:.3f} | "
                         f"{m['pooled']['macro_f1']:.3f} |")
    if "devset" in results:
        lines += ["", "Devset (trained on all labelled reports): " + ", ".join(
            f"{method} {results['devset']['methods'][method]['macro_f1']:.3f}"
            for method in CARD_METHODS if method in results["devset"]["methods"])]
    return "\n".join(lines)


def render_model_card(fitted: FittedClassifier, config: ClassifierConfig, labels: LabelSet, records: list[dict],
                      metrics: dict, versions: dict[str, str], folder_name: str) -> str:
    """Fill the model-card template (tested by a pattern match, as SetFit does)."""
    label_table = "\n".join(f"| {i} | {label.name} | {label.definition} |" for i, label in enumerate(labels.labels))
    if metrics:
        rows = [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
                for name, m in metrics["per_class"].items()]
        dev = (f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
               f"ECE {metrics['ece_before']:.3f} → {metrics['ece_after']:.3f} after temperature scaling\n\n"
               "| label | precision | recall | F1 | support |\n|---|---|---|---|---|\n" + "\n".join(rows))
    else:
        dev = "no dev units were held out (data.dev_fraction = 0)."
    genres = sorted({r.get("genre", "labelled") for r in records})
    beside = (f" and, at weight {config.ensemble.member_neighbours:g}, of its neighbours' text"
              if config.ensemble.member_neighbours else "")
    refit = ", then the member was refit on every unit, the dev units included" if config.ensemble.member_refit else ""
    ensemble = ("It is served as an ensemble: the fine-tuned encoder and a character TF-IDF + logistic-regression "
                f"member over the unit's own text{beside} (`{MEMBER_FILE}`, loaded with skops), "
                "combined as the geometric mean of their probabilities "
                f"and calibrated as a whole (temperature {fitted.ensemble_temperature:.3f}){refit}. "
                "`Predictor` serves the pair on every backend; `transformers.pipeline` loads the encoder alone."
                if fitted.text_member is not None else "The encoder is served alone.")
    if config.ensemble.neighbour_weight:
        ensemble += (f" Within a report, each unit's probabilities then take a share of "
                     f"{config.ensemble.neighbour_weight:g} from its neighbours in the same section "
                     "(`ensemble.neighbour_weight`, models/document_context.py).")
    served_weights = (f"the mean of the weights after every optimiser step from {config.train.average_from:g} of "
                      "training on (`train.average_from`)" if config.train.average_from < 1
                      else "the best epoch's on dev macro-F1")
    whole_reports = config.data.dev_split == "reports"
    dev_heading = "held-out dev reports" if whole_reports else "held-out dev units of the training reports"
    dev_caveat = ("These dev units are whole reports that the model did not train on (`data.dev_split`), a few of "
                  "each genre: the grouped evaluation below averages over many more." if whole_reports else
                  "These dev units come from the same reports as the training units, so they overstate accuracy on "
                  "a new report.")
    if config.train.wise_ft < 1:
        served_weights += f", mixed at {config.train.wise_ft:g} with their start (WiSE-FT, `train.wise_ft`)"
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        genres=" and ".join(f"`{g}`" for g in genres), ensemble_note=ensemble,
        held_out=held_out_summary(Path(config.evaluate.card_results)),
        base_model=config.model.base, train_size=fitted.train_size, dev_size=fitted.dev_size,
        report_count=len({r["report_id"] for r in records}), label_table=label_table, folder_name=folder_name,
        prefix_repr=repr(config.model.prefix), context=config.model.context, head=config.model.head,
        max_length=config.model.max_length, freeze_embeddings=config.model.freeze_embeddings,
        learning_rate=config.train.learning_rate, batch_size=config.train.batch_size, epochs=config.train.epochs,
        epochs_run=f"{fitted.epochs_run:.0f}", class_weights=config.train.class_weights,
        confidence_weights=", ".join(f"{k} {v:g}" for k, v in config.train.confidence_weights.items()),
        linear_probe=config.train.linear_probe, min_steps=config.train.min_steps,
        patience=config.train.patience, seed=config.train.seed, temperature=f"{fitted.temperature:.3f}",
        served_weights=served_weights, dev_heading=dev_heading, dev_caveat=dev_caveat,
        dev_metrics=dev, versions=", ".join(f"{k} {v}" for k, v in versions.items()),
    )


def train_and_save(config: ClassifierConfig, labels: LabelSet, records: list[dict], out_dir: Path,
                   progress: bool = True) -> Path:
    """Fit on all records and write the model folder (the `chainstage train` job).

    The folder is written beside its target and renamed into place, so a killed run never leaves a
    half-written folder that later commands would take for a model.
    """
    from training.train import fit_classifier

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as work:
        fitted = fit_classifier(records, config, labels, Path(work) / "trainer", progress=progress)
        staged = save_model_folder(fitted, config, labels, records, Path(work) / out_dir.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staged.rename(out_dir)
    return out_dir
