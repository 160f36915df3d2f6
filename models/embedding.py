"""Frozen sentence vectors from a base encoder: mean-pooled, length-sorted batches (e5's own recipe)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel

from models.classifier import length_sorted_batches, load_tokenizer, mean_pool


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
        from tqdm.auto import tqdm


        encoded = self.tokenizer([self.prefix + text for text in texts], truncation=True, max_length=self.max_length)
        vectors = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        batches = list(length_sorted_batches([len(ids) for ids in encoded["input_ids"]], self.batch_size))
        for batch in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
            features = self.tokenizer.pad({key: [encoded[key][i] for i in batch] for key in encoded},
                                          return_tensors="pt")
            hidden = self.model(**features).last_hidden_state
            vectors[batch] = mean_pool(hidden, features["attention_mask"]).numpy()
        return vectors
