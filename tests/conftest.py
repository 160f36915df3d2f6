"""Shared fixtures: the shipped reading config, the seed reports, a tiny base encoder and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.labeled_units import load_labeled
from data.labels import load_labels
from data.reading_config import ReadingConfig, load_reading_config
from models.classifier_config import load_classifier_config

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
# Seconds on two cores: two epochs and no more (min_steps=0) of short units; patience above the epochs: no early stop.
TINY_TRAINING = ["train.epochs=2", "train.min_steps=0", "train.batch_size=16", "model.max_length=64",
                 "train.patience=5"]


@pytest.fixture(scope="session")
def reading_config() -> ReadingConfig:
    return load_reading_config()


@pytest.fixture(scope="session")
def seed_paths() -> list[Path]:
    return SEEDS


def build_tiny_base(folder: Path) -> Path:
    """A tiny random BERT with a character-level tokenizer over the seed text, built offline in seconds."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for path in SEEDS for ch in path.read_text(encoding="utf-8") if not ch.isspace()}
                   | set("，：；（）！？query"))
    vocab = {token: index for index, token in enumerate(specials + chars)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"\S"), behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=256)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, pad_token_id=0)
    torch.manual_seed(0)  # the same tiny weights every run: tests on its outputs must not pass or fail by luck
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier trained once per session, for every module that needs just "a trained model" (six modules
    each trained their own). Its three short seed reports hold every label. Tests only read it: a test that changes
    a model folder works on a copy, and a module that needs another configuration trains its own and says why."""
    from training.model_folder import train_and_save  # torch and transformers: only for sessions that train

    records = [r for r in load_labeled(ROOT / "data/labeled/seeds.jsonl")
               if r["report_id"][:3] in ("000", "001", "003")]
    config = load_classifier_config(overrides=[f"model.base={tiny_base}", *TINY_TRAINING])
    return train_and_save(config, load_labels(), records, tmp_path_factory.mktemp("model") / "tiny", progress=False)
