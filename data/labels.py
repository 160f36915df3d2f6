"""The label set, read from ``configs/labels.yaml``: names, ids, colours, definitions and cue words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.configuration import config_path, load_config


@dataclass(frozen=True)
class Label:
    name: str
    key: str
    color: str
    definition: str
    cues: list[str]


@dataclass(frozen=True)
class LabelSet:
    labels: list[Label]

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    def by_name(self, name: str) -> Label:
        return self.labels[self.label2id[name]]


def load_labels(path: str | Path | None = None) -> LabelSet:
    """The shipped label set (the order fixes every model's class ids)."""
    return load_config(LabelSet, path or config_path("labels"))
