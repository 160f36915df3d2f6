"""Frozen sentence vectors from a base encoder: mean-pooled, length-sorted batches (e5's own recipe)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel

from models.classifier import load_tokenizer, mean_pool, padded_batches


class SentenceEncoder:
    """Loads an encoder folder once and embeds any number of texts with mask-aware mean pooling."""

    def __init__(self, folder: str, prefix: str, max_length: int, batch_size: int) -> None:
        self.tokenizer = load_tokenizer(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False)
        self.model.eval()
        self.prefix = prefix
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.inference_mode()
    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        encoded = self.tokenizer([self.prefix + text for text in texts], truncation=True, max_length=self.max_length)
        vectors = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for batch, features in padded_batches(self.tokenizer, encoded, self.batch_size,
                                              progress="embedding" if progress else None):
            hidden = self.model(**features).last_hidden_state
            vectors[batch] = mean_pool(hidden, features["attention_mask"]).numpy()
        return vectors
