"""The character TF-IDF + logistic-regression member that the served model combines with the encoder.

On reports of a genre the encoder saw little of, character n-grams and the fine-tuned encoder make different
mistakes, so their geometric mean beats either (docs/evaluation.md). Its input has two columns per unit, its own
text and its neighbours' (``models/document_context.py::neighbour_texts``); the neighbours' column is read only with
``ensemble.member_neighbours``. The member is stored in the model folder with skops, which loads scikit-learn objects
without unpickling arbitrary code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer

from data.errors import ModelError
from models.folder_layout import MEMBER_FILE


def member_inputs(texts: list[str], neighbours: list[str]) -> np.ndarray:
    """The member's input: one row per unit, its own text in column 0 and its neighbours' text in column 1."""
    out = np.empty((len(texts), 2), dtype=object)
    out[:, 0], out[:, 1] = texts, neighbours
    return out


def member_probabilities(member, texts: list[str], num_labels: int,  # noqa: ANN001
                         neighbours: list[str] | None = None) -> np.ndarray:
    """predict_proba over every label, with 0 for a label absent from the member's training data.

    A member over two columns (``member_inputs``) needs ``neighbours``; the TF-IDF baseline, and the member of a
    folder trained before the neighbours' block, read the unit's text alone.
    """
    out = np.zeros((len(texts), num_labels))
    if texts:
        two_columns = isinstance(member.steps[0][1], ColumnTransformer)
        if two_columns and neighbours is None:
            raise ValueError("this text member reads each unit's neighbours' text: pass neighbours")
        out[:, member.classes_] = member.predict_proba(member_inputs(texts, neighbours) if two_columns else texts)
    return out


def combine(members: list[np.ndarray], temperature: float = 1.0) -> np.ndarray:
    """Geometric mean of the members' probabilities (mean log-probability), tempered and renormalised."""
    log_mean = np.mean([np.log(np.clip(m, 1e-9, 1.0)) for m in members], axis=0) / temperature
    weights = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def save_member(member, folder: Path) -> None:  # noqa: ANN001
    import skops.io

    skops.io.dump(member, folder / MEMBER_FILE)


def load_member(folder: Path):  # noqa: ANN201
    """The folder's text member, or None for an encoder-only model folder."""
    path = folder / MEMBER_FILE
    if not path.is_file():
        return None
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        # a TF-IDF + LR pipeline holds only types that skops trusts by default; a file with any other type is
        # refused, never run
        return skops.io.load(path, trusted=[])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UntrustedTypesFoundException) as err:
        raise ModelError(f"{path}: cannot load the text member ({type(err).__name__}: {err})") from err
