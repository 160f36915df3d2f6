"""Which frozen e5 vector does a linear probe separate best: [CLS], tanh([CLS]) or the mean of the tokens?

Usage: .venv/bin/python benchmarks/frozen_features.py

Why it matters: e5 ships no pooler, and the pipeline-ready pooler head reads [CLS]. If a probe on frozen [CLS]
scores close to one on the mean-pooled vector e5 was trained for, an identity pooler (which passes tanh([CLS]))
is a sound start for fine-tuning. The probe is a standardised, class-balanced logistic regression, scored by
macro-F1 leave-one-report-out over the seeds and on the devset after training on all seeds. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import AutoModel, AutoTokenizer

from data.labeled_units import load_labeled
from data.labels import load_labels
from models.base_encoder import ensure_base_encoder
from models.classifier import mean_pool, padded_batches
from models.classifier_config import load_classifier_config


@torch.inference_mode()
def features(records: list[dict], model: torch.nn.Module, tokenizer, prefix: str,
             max_length: int) -> dict[str, np.ndarray]:
    """Frozen last-layer [CLS] and mean-pooled vectors of every unit, in input order."""
    encoded = tokenizer([prefix + r["text"] for r in records], truncation=True, max_length=max_length)
    cls = np.zeros((len(records), model.config.hidden_size), dtype=np.float32)
    mean = np.zeros_like(cls)
    for batch, padded in padded_batches(tokenizer, encoded, 64):
        hidden = model(**padded).last_hidden_state
        cls[batch] = hidden[:, 0].numpy()
        mean[batch] = mean_pool(hidden, padded["attention_mask"]).numpy()
    return {"[CLS]": cls, "tanh([CLS])": np.tanh(cls), "mean of tokens": mean}


def probe(c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))


def main() -> None:
    config = load_classifier_config()
    torch.set_num_threads(config.train.threads)
    base = ensure_base_encoder(config.model.base)
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base).eval()
    labels = load_labels()
    seeds, devset = load_labeled("data/labeled/seeds.jsonl"), load_labeled("data/labeled/devset.jsonl")
    y = np.array([labels.label2id[r["label"]] for r in seeds])
    y_dev = np.array([labels.label2id[r["label"]] for r in devset])
    report = np.array([r["report_id"][:3] for r in seeds])
    train_x = features(seeds, model, tokenizer, config.model.prefix, config.model.max_length)
    dev_x = features(devset, model, tokenizer, config.model.prefix, config.model.max_length)
    print("| frozen vector | C | " + " | ".join(f"F1 {r}" for r in sorted(set(report))) +
          " | leave-one-report-out mean | devset |")
    print("|---|---|" + "---|" * (len(set(report)) + 2))
    for name, x in train_x.items():
        for c in (0.01, 0.1, 1.0):
            folds = [f1_score(y[report == r], probe(c).fit(x[report != r], y[report != r]).predict(x[report == r]),
                              average="macro") for r in sorted(set(report))]
            dev = f1_score(y_dev, probe(c).fit(x, y).predict(dev_x[name]), average="macro")
            print(f"| {name} | {c} | " + " | ".join(f"{f:.3f}" for f in folds) + f" | {np.mean(folds):.3f} | "
                  f"{dev:.3f} |", flush=True)


if __name__ == "__main__":
    main()
