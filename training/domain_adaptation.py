"""Domain-adaptive masked-language modelling (Gururangan et al., 2020): before it learns the labels, the base encoder
reads the training reports' own text, the units nobody labelled included.

e5 learned sentence embeddings from web text, and it ships 4-bit weights; government work reports are a genre of
their own. Only the reports a model trains on are read, so a report held out for testing never shapes its encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from data.load import find_report_file, load_report
from data.reading_config import load_reading_config
from models.classifier import encode_inputs, freeze_word_embeddings, load_pretrained_quietly
from models.classifier_config import ClassifierConfig

log = logging.getLogger(__name__)


def training_report_texts(records: list[dict], report_dirs: list[str]) -> list[str]:
    """Every body and heading unit of each report that ``records`` come from, read from its file."""
    reading = load_reading_config()
    texts = []
    for report_id in sorted({r["report_id"] for r in records}):
        report = load_report(find_report_file(report_id, report_dirs, "adapt.report_dirs"), reading, report_id)
        texts += [unit.text for unit in report.units if unit.kind != "furniture"]
    return texts


class _MaskedPositionsTrainer(Trainer):
    """Scores only the masked positions against the vocabulary.

    Written by hand because `BertForMaskedLM` scores every position against its 105k pieces, which on a CPU costs
    more than the encoder itself; only the masked 15 % carry a loss.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        labels = inputs.pop("labels")
        hidden = model.base_model(**inputs).last_hidden_state
        masked = labels != -100
        loss = torch.nn.functional.cross_entropy(model.cls(hidden[masked]), labels[masked])
        return (loss, None) if return_outputs else loss


def _train(model: torch.nn.Module, dataset: Dataset, collator: Any, steps: int, learning_rate: float,
           config: ClassifierConfig, work_dir: Path, progress: bool) -> None:
    args = TrainingArguments(
        output_dir=str(work_dir),
        learning_rate=learning_rate,
        weight_decay=config.train.weight_decay,
        warmup_steps=config.train.warmup_ratio,
        max_steps=steps,
        per_device_train_batch_size=config.adapt.batch_size,
        train_sampling_strategy="group_by_length" if config.train.group_by_length else "random",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        seed=config.train.seed,
        data_seed=config.train.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    _MaskedPositionsTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator).train()


def adapt_encoder(base: str, tokenizer: PreTrainedTokenizerBase, texts: list[str], config: ClassifierConfig,
                  work_dir: Path, progress: bool) -> str:
    """Masked-language modelling of ``texts`` on the encoder in ``base``; returns the adapted encoder's folder.

    e5 ships no language-model head, so a new one first learns alone for ``adapt.head_steps`` (its random start
    would otherwise send noise into the encoder), then the encoder learns with it for ``adapt.steps``. The word
    embeddings stay frozen, as in fine-tuning, and the head's output matrix is tied to them.
    """
    model, _ = load_pretrained_quietly(AutoModelForMaskedLM, base, lambda key: key.startswith("cls."))
    freeze_word_embeddings(model)
    encoded = encode_inputs(tokenizer, texts, None, config.model.prefix, config.model.max_length)
    dataset = Dataset.from_dict(dict(encoded))
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.adapt.mask_probability,
                                               seed=config.train.seed)
    encoder = [p for p in model.base_model.parameters() if p.requires_grad]
    log.info("domain adaptation: %d units of the training reports, %d head steps, then %d steps",
             len(texts), config.adapt.head_steps, config.adapt.steps)
    phases = (("head", config.adapt.head_steps, config.adapt.head_learning_rate, False),
              ("encoder", config.adapt.steps, config.adapt.learning_rate, True))
    for name, steps, learning_rate, encoder_learns in phases:
        for parameter in encoder:
            parameter.requires_grad_(encoder_learns)
        if steps:
            _train(model, dataset, collator, steps, learning_rate, config, work_dir / name, progress)
    folder = work_dir / "adapted"
    model.base_model.save_pretrained(folder)  # the encoder alone, as the base was: the head is dropped
    tokenizer.save_pretrained(folder)
    return str(folder)
