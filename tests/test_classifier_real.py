"""The real base encoder, fine-tuned briefly, beats the majority class on a report it never saw."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier import forward_logits
from models.classifier_config import load_classifier_config
from training.train import fit_classifier, model_inputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_brief_fine_tune_of_the_real_encoder_beats_the_majority_class(tmp_path):
    labels = load_labels()
    records = load_labeled(ROOT / "data/labeled/seeds.jsonl")
    train = [r for r in records if r["report_id"][:3] in ("000", "001", "002")]
    test = [r for r in records if r["report_id"][:3] == "003"]
    config = load_classifier_config(overrides=["train.epochs=3", "train.min_steps=0",
                                               "model.max_length=64", "train.patience=3"])
    fitted = fit_classifier(train, config, labels, tmp_path, progress=False)
    logits, _ = forward_logits(fitted.model, fitted.tokenizer, model_inputs(test, fitted.tokenizer, config), 32)
    truth = np.array([labels.label2id[r["label"]] for r in test])
    majority = labels.label2id[Counter(r["label"] for r in train).most_common(1)[0][0]]
    baseline = np.full_like(truth, majority)
    predicted = logits.argmax(1)
    assert (predicted == truth).mean() > (baseline == truth).mean()
    assert f1_score(truth, predicted, average="macro") > f1_score(truth, baseline, average="macro") + 0.2
