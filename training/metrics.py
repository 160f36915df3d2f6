"""Classification metrics and the confusion-matrix figure (scikit-learn does the counting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict:
    """Accuracy, macro-F1 over all classes, per-class precision/recall/F1/support, and the confusion matrix."""
    ids = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=ids).tolist(),
    }


def plot_confusion_matrix(
    matrix: list[list[int]], names: list[str], ascii_names: list[str], path: Path, title: str
) -> None:
    """Save the confusion matrix as a PNG; Chinese tick labels when a CJK font exists, ASCII keys otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.fonts import cjk_font_properties

    font = cjk_font_properties()
    names = names if font is not None else ascii_names
    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(names)), names, fontproperties=font, rotation=30)
    ax.set_yticks(range(len(names)), names, fontproperties=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = values.max() / 2 if values.size else 0
    for (row, col), count in np.ndenumerate(values):
        ax.text(col, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
