"""The optional abstractive backend: any Hugging Face seq2seq checkpoint named by ``abstractive.checkpoint``.

No Chinese seq2seq model can be had offline, so this is never the default; it is loaded once per call of
``summarize_report`` and shared by every section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data.errors import ConfigError, ModelError
from models.summarizer_config import SummarizerConfig


class AbstractiveBackend:
    """Any Hugging Face seq2seq checkpoint (a local folder), loaded once and used for every section."""

    def __init__(self, config: SummarizerConfig) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        settings = config.abstractive
        if not settings.checkpoint:
            raise ConfigError("config key 'abstractive.checkpoint' is empty: name a seq2seq model folder")
        folder = Path(settings.checkpoint).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder}: not a Hugging Face model folder (no config.json); set "
                             "abstractive.checkpoint to a seq2seq checkpoint")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModelForSeq2SeqLM.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise ModelError(f"{folder}: cannot load a seq2seq model ({err})") from err
        self.model.eval()
        self.settings = settings
        self.seed = config.seed
        self.sentence_end = config.compression.reading.sentence_end  # where an over-long output may be cut
        # never feed more than the model can place: its tokenizer limit and its position table bound the window
        limits = [settings.max_input_tokens, self.tokenizer.model_max_length,
                  getattr(self.model.config, "max_position_embeddings", None)]
        self.max_input_tokens = min(int(limit) for limit in limits if limit)

    def _units_that_fit(self, texts: Sequence[str]) -> int:
        """How many leading units fit in the input window: later ones are left out, not cut mid-sentence."""
        used, tokens = 0, len(self.tokenizer(self.settings.prefix)["input_ids"])
        for text in texts:
            tokens += len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokens > self.max_input_tokens and used:
                break
            used += 1
        return used

    def generate(self, texts: Sequence[str], budget_chars: int) -> tuple[str, int]:
        """The model's summary of the units (cut to the budget at a sentence end if it runs over) and how many
        leading units it read."""
        import torch

        used = self._units_that_fit(texts)
        inputs = self.tokenizer(self.settings.prefix + "".join(texts[:used]), return_tensors="pt", truncation=True,
                                max_length=self.max_input_tokens)
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            # a Chinese character costs at most ~2 tokens in common vocabularies, so this bound never starves it
            output = self.model.generate(**inputs, max_new_tokens=2 * budget_chars + 2,
                                         num_beams=self.settings.num_beams, do_sample=self.settings.do_sample)
        text = self.tokenizer.decode(output[0], skip_special_tokens=True).strip()
        if len(text) > budget_chars:
            cut = max(text.rfind(char, 0, budget_chars) for char in self.sentence_end)
            text = text[: cut + 1] if cut >= 0 else text[:budget_chars]
        return text, used
