"""Fine-tune the stage classifier from a config with the Hugging Face Trainer, and write a model folder.

The Trainer runs on accelerate, so the same config runs on CPU here and on one or several GPUs elsewhere
(`accelerate launch -m serve.cli train ...`).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sklearn.model_selection import train_test_split
from torch.utils.data import Sampler, SequentialSampler
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from data.errors import ConfigError
from data.labeled_units import follows_previous, model_picked, record_context
from data.labels import LabelSet
from models.base_encoder import ensure_base_encoder
from models.classifier import (
    build_classifier,
    encode_inputs,
    forward_logits,
    freeze_lower_layers,
    freeze_word_embeddings,
    load_tokenizer,
    softmax,
)
from models.classifier_config import ClassifierConfig
from models.document_context import neighbour_texts
from models.text_member import combine, member_probabilities
from training.baselines import fit_text_member
from training.calibration import calibrate_temperature
from training.domain_adaptation import adapt_encoder, training_report_texts
from training.linear_probe import head_features, warm_start_head
from training.sampling import MajorityShareSampler

log = logging.getLogger(__name__)


@dataclass
class FittedClassifier:
    """A trained model in memory, with its tokenizer, temperature and what it saw."""

    model: torch.nn.Module
    tokenizer: Any
    temperature: float
    dev_logits: np.ndarray
    dev_labels: np.ndarray
    train_size: int
    dev_size: int
    epochs_run: float
    text_member: Any  # the TF-IDF + LR pipeline served beside the encoder, or None (config ensemble.text_member)
    ensemble_temperature: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_dev(records: list[dict], fraction: float, seed: int, by: str) -> tuple[list[dict], list[dict]]:
    """Hold out a stratified share of units (``by`` "units") or of whole reports ("reports") for early stopping and
    calibration.

    The share comes from the units that sample their reports; units a model picked for review always train
    (`model_picked`), so the dev split, and with it the temperature, stays representative.
    """
    picked = [record for record in records if model_picked(record)]
    sample = [record for record in records if not model_picked(record)]
    if fraction <= 0 or len(sample) < 10:
        return records, []
    if by == "reports":
        held = dev_reports(sample, fraction, seed)
        return ([r for r in sample if r["report_id"] not in held] + picked,
                [r for r in sample if r["report_id"] in held])
    labels = [record["label"] for record in sample]
    try:
        train, dev = train_test_split(sample, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too rare to stratify: fall back to a plain random split
        train, dev = train_test_split(sample, test_size=fraction, random_state=seed)
    return list(train) + picked, list(dev)


def dev_reports(records: list[dict], fraction: float, seed: int) -> set[str]:
    """Whole reports to hold out, as evaluation holds them out: the best epoch and the temperatures are then judged on
    reports the model never trained on, not on other sentences of the ones it did.

    Each genre with two reports or more gives at least one, about ``fraction`` of its units, and keeps one in
    training. Written by hand: sklearn's group splitters balance labels or sizes over folds, but none keeps every
    genre on both sides.
    """
    rng = random.Random(seed)
    held: set[str] = set()
    for genre in sorted({r.get("genre", "") for r in records}):
        sizes = Counter(r["report_id"] for r in records if r.get("genre", "") == genre)
        target, taken = fraction * sum(sizes.values()), 0
        reports = sorted(sizes)
        rng.shuffle(reports)
        for report in reports[:-1]:  # the last one always trains, and the first is always held out
            if not taken or abs(taken + sizes[report] - target) < abs(taken - target):
                held.add(report)
                taken += sizes[report]
    if not held:
        raise ConfigError("config key 'data.dev_split' is reports, but no genre of the training units has two reports")
    return held


def record_neighbours(records: list[dict]) -> list[str]:
    """Each labelled unit's neighbours' text (the text member's second input), within runs of adjacent units."""
    return neighbour_texts([r["text"] for r in records], follows_previous(records))


def model_inputs(records: list[dict], tokenizer: Any, config: ClassifierConfig) -> dict[str, list[list[int]]]:
    contexts = [record_context(r) for r in records] if config.model.context == "heading" else None
    return encode_inputs(tokenizer, [r["text"] for r in records], contexts, config.model.prefix,
                         config.model.max_length)


def unit_weights(records: list[dict], weights: dict[str, float]) -> np.ndarray | None:
    """Each unit's loss weight by its label's confidence (``train.confidence_weights``); None when all weigh 1, so
    that the default fit is the plain class-weighted one."""
    unknown = sorted({r["confidence"] for r in records} - set(weights))
    if unknown:
        raise ConfigError(f"config key 'train.confidence_weights' has no weight for confidence {unknown[0]!r}")
    if all(weights[r["confidence"]] == 1 for r in records):
        return None
    return np.array([weights[r["confidence"]] for r in records], dtype=np.float32)


class _UnitWeightCollator:
    """`DataCollatorWithPadding` that carries each training unit's loss weight (``unit_weight``) beside the batch.

    The Trainer hands it every dataset column (``remove_unused_columns`` is off so that ``unit_weight`` survives), so
    it sets aside the columns the model does not take itself.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        weights = [feature.pop("unit_weight") for feature in features if "unit_weight" in feature]
        batch = self.pad([{k: v for k, v in feature.items() if k != "length"} for feature in features])
        if weights:
            batch["unit_weight"] = torch.tensor(weights, dtype=torch.float32)
        return batch


class _WeightedTrainer(Trainer):
    """Trainer with a class-weighted cross-entropy, for the imbalanced stages, optionally weighted per unit
    (``train.confidence_weights``) and regularised by R-Drop (``train.rdrop``), layer-wise learning rates, and
    optionally its own training sampler (``train.majority_share``)."""

    def __init__(self, *args: Any, class_weights: torch.Tensor | None, layer_decay: float,
                 rdrop: float, train_sampler: MajorityShareSampler | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.rdrop = rdrop
        self.layer_decay = layer_decay
        self.train_sampler = train_sampler

    def create_optimizer(self, model=None):  # noqa: ANN001, ANN201
        """The Trainer's own optimizer (its class, settings and weight-decay groups), with each group split by layer
        so that the layer-wise rates ride on the Trainer's warm-up and schedule."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self.layer_decay < 1:
            optimizer.param_groups[:] = layerwise_groups(optimizer.param_groups, layers_below_head(self.model),
                                                         self.layer_decay)
        return optimizer

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        return self.train_sampler if self.train_sampler is not None else super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset: Dataset) -> SequentialSampler:
        """The dev units in their given order, which `fit_classifier` sorts by length. With `group_by_length`, the
        Trainer deals a dev set this small into random megabatches of two batches each, so half of its batches were
        padded to the longest unit and every evaluation took twice as long."""
        return SequentialSampler(eval_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        labels = inputs.pop("labels")
        unit_weight = inputs.pop("unit_weight", None)
        if self.rdrop == 0 or not model.training:
            outputs = model(**inputs)
            loss = self._cross_entropy(outputs.logits, labels, unit_weight)
            return (loss, outputs) if return_outputs else loss
        # R-Drop (Liang et al., 2021): the batch twice in one pass, so two dropout masks; the loss is the paper's
        # (CE1 + CE2 + alpha * (KL(P1||P2) + KL(P2||P1)) / 2), halved, and pulls the two predictions together
        outputs = model(**{key: torch.cat([value, value]) for key, value in inputs.items()})
        first, second = outputs.logits.chunk(2)
        cross_entropy = (self._cross_entropy(first, labels, unit_weight)
                         + self._cross_entropy(second, labels, unit_weight)) / 2
        log_p, log_q = first.float().log_softmax(-1), second.float().log_softmax(-1)
        divergence = (torch.nn.functional.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
                      + torch.nn.functional.kl_div(log_p, log_q, reduction="batchmean", log_target=True)) / 2
        loss = cross_entropy + self.rdrop / 2 * divergence
        outputs.logits = first
        return (loss, outputs) if return_outputs else loss

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor,
                       unit_weight: torch.Tensor | None) -> torch.Tensor:
        if unit_weight is None:
            return torch.nn.functional.cross_entropy(logits, labels, weight=self.class_weights)
        # the weighted mean that cross_entropy takes over class weights, with each unit's weight folded in
        losses = torch.nn.functional.cross_entropy(logits, labels, weight=self.class_weights, reduction="none")
        per_class = self.class_weights[labels] if self.class_weights is not None else torch.ones_like(losses)
        return (losses * unit_weight).sum() / (per_class * unit_weight).sum().clamp_min(1e-12)


class _KeepBest(TrainerCallback):
    """Early stopping on dev macro-F1 that keeps the best weights in memory instead of on disk."""

    def __init__(self, model: torch.nn.Module, patience: int) -> None:
        self.model = model
        self.patience = patience
        self.best = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
        score = (metrics or {}).get("eval_macro_f1", -1.0)
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()
                               if not k.endswith("word_embeddings.weight")}
        else:
            self.bad_epochs += 1
            control.should_training_stop = self.bad_epochs >= self.patience

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state, strict=False)


class _AverageWeights(TrainerCallback):
    """Weight averaging (SWA, Izmailov et al. 2018; SWAD, Cha et al. 2021): the running mean of the weights after
    every optimiser step from a share of training on. A flat region of the loss, which the mean lands in, carries
    better to unseen domains than the sharper point where training ends.

    Written by hand, not with `torch.optim.swa_utils.AveragedModel`: that copies and averages every parameter, the
    frozen word embeddings (82 % of them) included, at every step; this keeps the mean of the trainable ones only.
    """

    def __init__(self, model: torch.nn.Module, start_share: float) -> None:
        self.parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        self.start_share = start_share
        self.mean: list[torch.Tensor] = []
        self.count = 0

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.global_step < self.start_share * state.max_steps:
            return
        self.count += 1
        with torch.no_grad():
            if not self.mean:
                self.mean = [parameter.detach().clone() for parameter in self.parameters]
            for mean, parameter in zip(self.mean, self.parameters, strict=True):
                mean.lerp_(parameter, 1 / self.count)

    def restore(self) -> bool:
        """Load the mean into the model; false (and nothing loaded) when training stopped before averaging began."""
        if not self.mean:
            return False
        with torch.no_grad():
            for mean, parameter in zip(self.mean, self.parameters, strict=True):
                parameter.copy_(mean)
        return True


def _macro_f1(eval_pred) -> dict[str, float]:  # noqa: ANN001
    from sklearn.metrics import f1_score

    logits, labels = eval_pred
    return {"macro_f1": float(f1_score(labels, np.argmax(logits, axis=1), average="macro", zero_division=0))}


def interpolate_weights(model: torch.nn.Module, start: dict[str, torch.Tensor], share: float) -> None:
    """WiSE-FT (Wortsman et al., 2022): a weight-space mix of the fine-tuned model and its start keeps more of the
    pretrained features that carry to other genres; the temperature is fitted after, on the mixed model."""
    mixed = {name: share * tensor + (1 - share) * start[name] if tensor.is_floating_point() else tensor
             for name, tensor in model.state_dict().items()}
    model.load_state_dict(mixed)


def layers_below_head(model: torch.nn.Module) -> dict[int, int]:
    """How many layers each parameter (by id) lies below the head: 0 for the head and pooler, 1 for the top
    transformer layer, and one more than the lowest layer for the embeddings. Walks the same modules as
    `freeze_lower_layers`, not parameter names."""
    layers = model.base_model.encoder.layer
    below = {id(parameter): 0 for parameter in model.parameters()}
    below |= {id(parameter): len(layers) + 1 for parameter in model.base_model.embeddings.parameters()}
    for index, layer in enumerate(layers):
        below |= {id(parameter): len(layers) - index for parameter in layer.parameters()}
    return below


def layerwise_groups(groups: list[dict[str, Any]], below: dict[int, int], decay: float) -> list[dict[str, Any]]:
    """Split optimizer groups by depth for layer-wise learning-rate decay (Howard and Ruder, 2018; Clark et al.,
    2020): a parameter ``k`` layers below the head learns at ``decay ** k`` times its group's rate, so the lower,
    more general layers move least. Every other group setting (weight decay, betas) is kept."""
    split = []
    for group in groups:
        by_depth: dict[int, list[torch.nn.Parameter]] = {}
        for parameter in group["params"]:
            by_depth.setdefault(below[id(parameter)], []).append(parameter)
        split += [{**group, "params": params, "lr": group["lr"] * decay ** depth}
                  for depth, params in sorted(by_depth.items())]
    return split


def class_weights(label_ids: list[int], num_labels: int) -> torch.Tensor:
    """Balanced weights n / (k * count); a class absent from training gets weight 0."""
    counts = np.bincount(label_ids, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def bf16_steps(precision: str) -> bool:
    """Whether training steps run under bf16 autocast. Where the CPU multiplies bf16 natively (AVX512-BF16 or AMX)
    a step of e5-small takes about two thirds of its fp32 time; elsewhere bf16 is emulated and slower, so `auto`
    asks. Off by default: it cost accuracy on held-out reports (docs/classifier.md)."""
    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # torch has no public test for native bf16 on a CPU; these private ones are what its own CPU kernels check
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def fit_classifier(records: list[dict], config: ClassifierConfig, labels: LabelSet, work_dir: Path,
                   progress: bool = True) -> FittedClassifier:
    """Fine-tune on labelled records; a stratified dev share drives early stopping and calibration."""
    seed_everything(config.train.seed)
    torch.set_num_threads(config.train.threads)
    base = ensure_base_encoder(config.model.base)
    tokenizer = load_tokenizer(base)
    if config.adapt.steps:
        base = adapt_encoder(base, tokenizer, training_report_texts(records, config.adapt.report_dirs), config,
                             work_dir / "adapt", progress)
        seed_everything(config.train.seed)  # fine-tuning then draws what it would have drawn without adaptation
    model = build_classifier(base, config.model.head, labels.id2label, config.model.dropout)
    if config.model.freeze_embeddings:
        freeze_word_embeddings(model)
    freeze_lower_layers(model, config.model.frozen_layers)
    train_records, dev_records = split_dev(records, config.data.dev_fraction, config.train.seed,
                                           config.data.dev_split)

    # tokenised once: the datasets, the linear probe and the calibration all read these
    train_inputs = model_inputs(train_records, tokenizer, config)
    dev_inputs = model_inputs(dev_records, tokenizer, config) if dev_records else None

    def dataset(encoded: dict[str, list[list[int]]], part: list[dict]) -> Dataset:
        return Dataset.from_dict({**encoded, "labels": [labels.label2id[r["label"]] for r in part],
                                  "length": [len(ids) for ids in encoded["input_ids"]]})

    train_set = dataset(train_inputs, train_records)
    train_weights = unit_weights(train_records, config.train.confidence_weights)
    if train_weights is not None:
        train_set = train_set.add_column("unit_weight", train_weights.tolist())
    dev_set = dataset(dev_inputs, dev_records).sort("length") if dev_inputs is not None else None
    if config.train.linear_probe:
        features = head_features(model, tokenizer, train_inputs, config.train.eval_batch_size)
        chosen = warm_start_head(model, features, np.array(train_set["labels"]), config.train.probe_cs,
                                 config.train.class_weights, config.train.seed, train_weights)
        log.info("linear probe: head warm-started from a logistic regression with C=%g", chosen)
    # WiSE-FT's start point, copied only when it will be mixed in (the copy holds every weight, embeddings included)
    start = ({name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
             if config.train.wise_ft < 1 else None)
    share = config.train.majority_share
    sampler = (MajorityShareSampler(train_set["labels"], train_set["length"], share, config.train.batch_size,
                                    config.train.group_by_length, config.train.seed) if share < 1 else None)
    # small training sets get more epochs, so that every run takes at least `min_steps` optimiser steps
    steps_per_epoch = math.ceil((len(train_records) if sampler is None else len(sampler)) / config.train.batch_size)
    epochs = max(config.train.epochs, math.ceil(config.train.min_steps / steps_per_epoch))
    args = TrainingArguments(
        output_dir=str(work_dir),
        learning_rate=config.train.learning_rate,
        weight_decay=config.train.weight_decay,
        warmup_steps=config.train.warmup_ratio,  # a float in [0, 1) is a ratio of all steps (transformers 5)
        num_train_epochs=epochs,
        per_device_train_batch_size=config.train.batch_size,
        per_device_eval_batch_size=config.train.eval_batch_size,
        train_sampling_strategy="group_by_length" if config.train.group_by_length else "random",
        eval_strategy="epoch" if dev_set is not None else "no",
        save_strategy="no",
        logging_strategy="epoch",
        report_to=[],
        seed=config.train.seed,
        data_seed=config.train.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16_steps(config.train.precision),  # master weights stay fp32, so the saved folder is the same kind
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # keeps `unit_weight`; the collator drops what the model does not take
    )
    keep_best = _KeepBest(model, config.train.patience)
    averaging = _AverageWeights(model, config.train.average_from) if config.train.average_from < 1 else None
    weights = class_weights(train_set["labels"], len(labels.names)) if config.train.class_weights else None
    if sampler is not None:
        weights = sampler.loss_weights(weights, len(labels.names))
    trainer = _WeightedTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=_UnitWeightCollator(tokenizer),
        compute_metrics=_macro_f1,
        callbacks=([keep_best] if dev_set is not None else []) + ([averaging] if averaging else []),
        class_weights=weights,
        layer_decay=config.train.layer_decay,
        train_sampler=sampler,
        rdrop=config.train.rdrop,
    )
    trainer.train()
    # the averaged weights replace the best epoch's: dev units come from the training reports, so the best epoch on
    # them is not the one that carries best to other reports (docs/classifier.md, six epochs)
    if averaging is None or not averaging.restore():
        keep_best.restore()
    if start is not None:
        interpolate_weights(model, start, config.train.wise_ft)
    model.eval()
    temperature, dev_logits, dev_labels = 1.0, np.zeros((0, len(labels.names))), np.zeros(0, dtype=int)
    if dev_records:
        dev_logits, _ = forward_logits(model, tokenizer, dev_inputs, config.predict.batch_size)
        dev_labels = np.array([labels.label2id[r["label"]] for r in dev_records])
        temperature = calibrate_temperature(dev_logits, dev_labels, config.calibration.max_iter)
    member, ensemble_temperature = None, 1.0
    if config.ensemble.text_member:
        # fit on the same training units as the encoder, so that the dev units calibrate the ensemble as a whole;
        # neighbours are read before the dev split, which scatters a run's units over both parts
        neighbours = dict(zip((r["unit_id"] for r in records), record_neighbours(records), strict=True))

        def fit_member(part: list[dict]) -> Any:
            return fit_text_member([r["text"] for r in part], [neighbours[r["unit_id"]] for r in part],
                                   np.array([labels.label2id[r["label"]] for r in part]),
                                   config.ensemble.member_neighbours, config.train.seed,
                                   unit_weights(part, config.train.confidence_weights))

        member = fit_member(train_records)
        if dev_records:
            combined = combine([softmax(dev_logits, temperature),
                                member_probabilities(member, [r["text"] for r in dev_records], len(labels.names),
                                                     [neighbours[r["unit_id"]] for r in dev_records])])
            ensemble_temperature = calibrate_temperature(np.log(combined), dev_labels, config.calibration.max_iter)
            if config.ensemble.member_refit:
                # the temperature is fitted; the served member now learns from the dev units too
                member = fit_member(records)
    return FittedClassifier(model, tokenizer, temperature, dev_logits, dev_labels, len(train_records),
                            len(dev_records), float(trainer.state.epoch or 0), member, ensemble_temperature)
