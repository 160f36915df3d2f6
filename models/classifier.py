"""The stage classifier network: a BERT encoder with either the standard pooler head or mean pooling.

The pooler head is ``BertForSequenceClassification``, so a saved folder works with
``transformers.pipeline("text-classification")`` unchanged. The mean-pooling head is how e5 was trained;
it needs this module to load, which is why the config records which head a folder holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits divided by a calibration temperature."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-aware mean of token vectors: e5's sentence embedding."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class MeanPoolingClassifier(BertPreTrainedModel):
    """BERT + mean pooling + linear layer; on request returns the last layer as its only hidden state."""

    config_class = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **_: object,
    ) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        pooled = mean_pool(hidden.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        states = (hidden.last_hidden_state,) if output_hidden_states else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=states)


def load_pretrained_quietly(cls: Any, base: str, is_new: Callable[[str], bool],
                            **kwargs: Any) -> tuple[nn.Module, dict[str, list[str]]]:
    """``cls.from_pretrained(base)`` with its loading information, without transformers' load report.

    The report is a table of "MISSING" keys and a warning to train, about a head that is new by design (``is_new``
    tells its keys), so it would only alarm whoever runs `make run`. Weights of the encoder itself that the base
    lacks or does not know are still named, in one warning, and loading errors still raise.
    """
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = cls.from_pretrained(base, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    surprises = sorted(key for key in [*info["missing_keys"], *info["unexpected_keys"]] if not is_new(key))
    if surprises:
        log.warning("%s: the base encoder lacks or does not know these weights, which start random or are "
                    "dropped: %s", base, ", ".join(surprises))
    return model, info


def build_classifier(base: str, head: str, id2label: dict[int, str], dropout: float) -> nn.Module:
    """A fresh classifier on top of a pretrained encoder folder (the head is newly initialised)."""
    config = AutoConfig.from_pretrained(
        base,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    if head == "mean":
        config.architectures = ["MeanPoolingClassifier"]
    cls = MeanPoolingClassifier if head == "mean" else AutoModelForSequenceClassification
    model, info = load_pretrained_quietly(cls, base, lambda key: key.startswith("classifier.") or "pooler." in key,
                                          config=config)
    if any(key.endswith("pooler.dense.weight") for key in info["missing_keys"]):
        # e5 was trained with mean pooling and ships no pooler: a random pooler would scramble the [CLS] vector,
        # while an identity pooler passes tanh([CLS]) through, which is as separable as [CLS] itself
        with torch.no_grad():
            model.base_model.pooler.dense.weight.copy_(torch.eye(config.hidden_size))
            model.base_model.pooler.dense.bias.zero_()
    return model


def load_classifier(folder: str, head: str) -> nn.Module:
    """Load a saved classifier folder, for inference, with the head class it was trained with."""
    cls = MeanPoolingClassifier if head == "mean" else AutoModelForSequenceClassification
    # A saved model loads in a moment: transformers' "Loading weights" bar would only add lines to stderr, where
    # `chainstage classify` writes one line per unreadable report and nothing else.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(folder, dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    return model


def freeze_word_embeddings(model: nn.Module) -> None:
    """Word embeddings hold 82 % of e5's parameters: freezing them speeds training and curbs overfitting."""
    model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)


def freeze_lower_layers(model: nn.Module, count: int) -> None:
    """Freeze the embeddings block and the ``count`` lowest transformer layers.

    Backpropagation then stops above them, which cuts a training step's cost by up to a third on CPU, and the
    general-purpose lower layers stay as pretrained.
    """
    if count == 0:
        return
    model.base_model.embeddings.requires_grad_(False)
    for layer in model.base_model.encoder.layer[:count]:
        layer.requires_grad_(False)


def encode_inputs(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    contexts: Sequence[str] | None,
    prefix: str,
    max_length: int,
) -> dict[str, list[list[int]]]:
    """Tokenise units (with the e5 prefix) and, when given, their heading as the second text of a pair."""
    first = [prefix + text for text in texts]
    if contexts is None:
        return tokenizer(first, truncation=True, max_length=max_length)
    return tokenizer(first, [prefix + context for context in contexts], truncation="only_first",
                     max_length=max_length)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches of similar length: padding to the longest in a batch costs half the time unsorted."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size].tolist()


def padded_batches(tokenizer: PreTrainedTokenizerBase, encoded: dict[str, list[list[int]]], batch_size: int,
                   tensors: str = "pt", progress: str | None = None) -> Iterator[tuple[list[int], BatchEncoding]]:
    """Length-sorted batches of encoded units, each padded to its longest: (unit indices, padded features).

    ``progress`` names a tqdm bar over the batches; None shows none.
    """
    from tqdm.auto import tqdm

    batches = list(length_sorted_batches([len(row) for row in encoded["input_ids"]], batch_size))
    for batch in tqdm(batches, desc=progress, unit="batch", disable=progress is None):
        yield batch, tokenizer.pad({key: [encoded[key][i] for i in batch] for key in encoded}, return_tensors=tensors)


@torch.inference_mode()
def forward_logits(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    encoded: dict[str, list[list[int]]],
    batch_size: int,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and mean-pooled last-layer embeddings for every encoded unit, in input order."""
    ids = encoded["input_ids"]
    logits = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    embeddings = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    for batch, features in padded_batches(tokenizer, encoded, batch_size, progress="classifying" if progress else None):
        features = features.to(model.device)
        output = model(**features, output_hidden_states=True)
        logits[batch] = output.logits.float().cpu().numpy()
        embeddings[batch] = mean_pool(output.hidden_states[-1], features["attention_mask"]).float().cpu().numpy()
    return logits, embeddings


def load_tokenizer(folder: str) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(folder)
