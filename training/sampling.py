"""Which training units each epoch sees: all units of the rarer labels and a fresh random share of the most frequent.

Provincial work reports are three-quarters 其他. With balanced class weights each of those units carries about a
seventh of the average stage unit's weight, yet every epoch spends most of its compute on them. Drawing only a share of
the majority label per epoch, with its loss weight raised by the inverse share so that the expected loss is the same,
spends that compute on more passes over the stage units instead. Measured on all folds at 0.4 it scored lower than
seeing every unit every epoch, so it is off by default (docs/classifier.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class MajorityShareSampler(Sampler[int]):
    """Each epoch: every unit of the other labels plus `share` of the majority label's units, drawn afresh, then
    grouped by length as the Trainer's `LengthGroupedSampler` groups them (or shuffled when not grouping)."""

    def __init__(self, label_ids: list[int], lengths: list[int], share: float, batch_size: int,
                 group_by_length: bool, seed: int) -> None:
        labels = np.asarray(label_ids)
        self.majority = int(np.bincount(labels).argmax())
        self.kept = np.flatnonzero(labels != self.majority)
        self.drawn = np.flatnonzero(labels == self.majority)
        self.share = share
        self.n_drawn = round(share * len(self.drawn))
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.group_by_length = group_by_length
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.kept) + self.n_drawn

    def __iter__(self) -> Iterator[int]:
        pick = torch.randperm(len(self.drawn), generator=self.generator)[: self.n_drawn].numpy()
        epoch = np.concatenate([self.kept, self.drawn[pick]])
        if self.group_by_length:
            order = get_length_grouped_indices(self.lengths[epoch].tolist(), self.batch_size, generator=self.generator)
        else:
            order = torch.randperm(len(epoch), generator=self.generator).tolist()
        return iter(epoch[order].tolist())

    def loss_weights(self, weights: torch.Tensor | None, num_labels: int) -> torch.Tensor:
        """Class weights with the majority label's raised by 1 / share, so that its expected share of the loss stays
        what it is when every unit is seen every epoch."""
        adjusted = torch.ones(num_labels) if weights is None else weights.clone()
        adjusted[self.majority] /= self.share
        return adjusted
