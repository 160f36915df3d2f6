"""Trim a SentencePiece-Unigram vocabulary, and the embedding matrix under it, to what report text can produce.

e5-small's 250,037 x 384 word embeddings hold 82 % of its parameters, but Chinese reports only ever reach the
pieces made of CJK, ASCII and punctuation characters. Why the trim is exact: a Unigram tokenizer segments
normalised text by Viterbi over every vocabulary piece that matches a stretch of it. Keeping every piece made only
of characters that the kept input characters normalise to (plus the word-start marker) leaves that lattice, and
hence the segmentation, unchanged for any text made of kept characters; keeping the lowest-scoring piece keeps the
unknown-piece score (lowest score - 10) unchanged too. The remapped embedding rows then give the same vectors.
:func:`tokenization_parity` checks the claim on the seed reports and on jieba's dictionary instead of assuming it.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

from data.configuration import CONFIG_DIR
from data.errors import ConfigError, ModelError
from models.folder_layout import PARITY_RECORD

logger = logging.getLogger(__name__)

TRIM_RECORD = "vocab_trim.json"  # what was kept, sizes before/after and the tokenization parity, in the trimmed folder
EMBEDDING_SUFFIX = "word_embeddings.weight"
WHITESPACE = "\t\n\r"  # normalised to spaces or split on; always allowed in text
NOT_COPIED = (".onnx", PARITY_RECORD, TRIM_RECORD)  # artefacts of the untrimmed ids, rebuilt for a trimmed folder


def parse_ranges(ranges: Iterable[str]) -> list[tuple[int, int]]:
    """``["4E00-9FFF", ...]`` (hex code points, inclusive) as integer pairs; a bad entry names itself."""
    parsed = []
    for text in ranges:
        first, sep, last = str(text).partition("-")
        try:
            low, high = int(first, 16), int(last, 16)
        except ValueError:
            low = high = -1
        if not sep or not 0 <= low <= high <= 0x10FFFF:
            raise ConfigError(f"config key 'trim.ranges' has a bad range '{text}' (expected hex FIRST-LAST: 4E00-9FFF)")
        parsed.append((low, high))
    return parsed


def input_characters(ranges: Iterable[str]) -> set[str]:
    """Every character of the configured ranges, plus the whitespace any text may contain."""
    chars = set(WHITESPACE)
    for low, high in parse_ranges(ranges):
        chars.update(chr(code) for code in range(low, high + 1))
    return chars


def _word_marker(tokenizer_json: dict[str, Any]) -> str:
    """The Metaspace replacement character (``▁``) that starts every word piece."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    for step in [pre, *pre.get("pretokenizers", [])]:
        if step.get("type") == "Metaspace":
            return step["replacement"]
    return "▁"


def normalised_alphabet(tokenizer: Tokenizer, tokenizer_json: dict[str, Any], chars: set[str]) -> set[str]:
    """The characters that text made of ``chars`` can contain after the tokenizer's normaliser, plus ``▁``."""
    normalizer = tokenizer.normalizer
    alphabet = {_word_marker(tokenizer_json), " "}
    for char in chars:
        alphabet.update(normalizer.normalize_str(char) if normalizer is not None else char)
    return alphabet


def producible_piece_ids(tokenizer_json: dict[str, Any], alphabet: set[str]) -> list[int]:
    """Ids of the pieces to keep, ascending: those made only of ``alphabet``, the specials, the lowest-scoring one."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "Unigram":
        raise ModelError(f"vocabulary trimming needs a SentencePiece-Unigram tokenizer, not {model.get('type')!r}")
    vocab = model["vocab"]
    keep = {index for index, (piece, _score) in enumerate(vocab) if set(piece) <= alphabet}
    keep |= {token["id"] for token in tokenizer_json.get("added_tokens", [])}
    if model.get("unk_id") is not None:
        keep.add(model["unk_id"])
    # the unknown-piece score is derived from the lowest score in the vocabulary: keep that piece so it stays put
    keep.add(min(range(len(vocab)), key=lambda index: vocab[index][1]))
    return sorted(keep)


def _remap_post_processor(processor: dict[str, Any] | None, new_id: dict[int, int]) -> None:
    """Rewrite the special-token ids that a template or RoBERTa/BERT post-processor hard-codes."""
    if not processor:
        return
    kind = processor.get("type")
    if kind == "Sequence":
        for step in processor["processors"]:
            _remap_post_processor(step, new_id)
    elif kind == "TemplateProcessing":
        for token in processor["special_tokens"].values():
            token["ids"] = [new_id[i] for i in token["ids"]]
    elif kind in ("RobertaProcessing", "BertProcessing"):
        for key in ("sep", "cls"):
            processor[key] = [processor[key][0], new_id[processor[key][1]]]
    elif kind != "ByteLevel":
        raise ModelError(f"vocabulary trimming cannot remap the ids of a {kind} post-processor")


def trimmed_tokenizer_json(tokenizer_json: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """A copy of ``tokenizer.json`` holding only the ``kept`` pieces (in their old order), every id remapped."""
    new_id = {old: new for new, old in enumerate(kept)}
    trimmed = json.loads(json.dumps(tokenizer_json))
    model = trimmed["model"]
    model["vocab"] = [tokenizer_json["model"]["vocab"][old] for old in kept]
    if model.get("unk_id") is not None:
        model["unk_id"] = new_id[model["unk_id"]]
    for token in trimmed.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_post_processor(trimmed.get("post_processor"), new_id)
    return trimmed


def parity_corpora() -> dict[str, list[str]]:
    """Text the trim must not change: every line of the seed reports (bare and with e5's prefix) and jieba's words.

    jieba's dictionary (349k words) is held out: nothing in the trim is derived from it.
    """
    lines = [line.strip() for path in sorted((CONFIG_DIR.parent / "seeds").glob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dictionary = importlib.resources.files("jieba").joinpath("dict.txt").read_text(encoding="utf-8")
    words = [line.split(" ", 1)[0] for line in dictionary.splitlines() if line.strip()]
    return {"seed lines": lines + [f"query: {line}" for line in lines], "jieba dictionary words": words}


def tokenization_parity(full: Tokenizer, trimmed: Tokenizer, kept: list[int], corpora: dict[str, list[str]],
                        chars: set[str]) -> dict[str, Any]:
    """Encode every text with both tokenizers; the trimmed ids must be the full ids remapped, text by text."""
    new_id = {old: new for new, old in enumerate(kept)}
    report: dict[str, Any] = {"holds": True, "corpora": {}}
    for name, texts in corpora.items():
        before = full.encode_batch(texts)
        after = trimmed.encode_batch(texts)
        changed = [text for text, old, new in zip(texts, before, after, strict=True)
                   if [new_id.get(i, -1) for i in old.ids] != new.ids]
        outside = sum(1 for text in texts if not set(text) <= chars)
        report["corpora"][name] = {"texts": len(texts), "identical": len(texts) - len(changed),
                                   "outside_ranges": outside, "changed_examples": changed[:5]}
        report["holds"] = report["holds"] and not changed
    return report


def pytorch_files(folder: Path) -> list[Path]:
    """The files of a model folder other than ONNX exports and trim records, which depend on its vocabulary."""
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.endswith(NOT_COPIED))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in pytorch_files(folder))


def _trim_weights(src: Path, dst: Path, kept: list[int]) -> tuple[int, str]:
    """Copy ``model.safetensors`` with only the kept word-embedding rows; returns the old row count and the key."""
    weights = src / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{src}: no model.safetensors to trim (sharded or .bin weights are not supported)")
    with safe_open(str(weights), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    keys = [key for key in state if key.endswith(EMBEDDING_SUFFIX)]
    if len(keys) != 1:
        raise ModelError(f"{weights}: expected one '*{EMBEDDING_SUFFIX}' tensor, found {keys}")
    rows = state[keys[0]].shape[0]
    if rows < kept[-1] + 1:
        raise ModelError(f"{weights}: {rows} embedding rows, fewer than the tokenizer's pieces")
    tied = [key for key, tensor in state.items() if key != keys[0] and tensor.dim() and tensor.shape[0] == rows]
    if tied:
        raise ModelError(f"{weights}: tensors {tied} are indexed by the vocabulary too; trimming them is not supported")
    state[keys[0]] = state[keys[0]][kept].contiguous()
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return rows, keys[0]


def trim_model_folder(src: str | Path, dst: str | Path, ranges: Iterable[str],
                      corpora: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Write a trimmed copy of a Hugging Face BERT folder (base encoder or classifier) and check its tokenization.

    Returns the record also written to ``dst/vocab_trim.json``: pieces and bytes on disk before and after, and
    the tokenization parity on ``corpora`` (by default the seed reports and jieba's dictionary).
    """
    src, dst = Path(src), Path(dst)
    ranges = list(ranges)
    try:
        tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{src}: cannot read tokenizer.json / config.json to trim ({err})") from err
    full = Tokenizer.from_str(json.dumps(tokenizer_json))
    chars = input_characters(ranges)
    kept = producible_piece_ids(tokenizer_json, normalised_alphabet(full, tokenizer_json, chars))
    new_id = {old: new for new, old in enumerate(kept)}

    dst.mkdir(parents=True, exist_ok=True)
    for path in pytorch_files(src):
        if path.name not in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
            shutil.copy2(path, dst / path.name)
    rows, key = _trim_weights(src, dst, kept)
    trimmed_json = trimmed_tokenizer_json(tokenizer_json, kept)
    (dst / "tokenizer.json").write_text(json.dumps(trimmed_json, ensure_ascii=False), encoding="utf-8")
    if (src / "tokenizer_config.json").is_file():
        tokenizer_config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
        if "added_tokens_decoder" in tokenizer_config:
            tokenizer_config["added_tokens_decoder"] = {
                str(new_id[int(old)]): token for old, token in tokenizer_config["added_tokens_decoder"].items()}
        (dst / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, ensure_ascii=False, indent=2),
                                                   encoding="utf-8")
    config["vocab_size"] = len(kept)
    for name, value in list(config.items()):
        if name.endswith("_token_id") and isinstance(value, int):
            config[name] = new_id[value]
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    parity = tokenization_parity(full, Tokenizer.from_file(str(dst / "tokenizer.json")), kept,
                                 parity_corpora() if corpora is None else corpora, chars)
    record = {
        "ranges": ranges,
        "pieces_before": len(tokenizer_json["model"]["vocab"]),
        "pieces_after": len(kept),
        "embedding_rows_before": rows,
        "embedding_rows_after": len(kept),
        "embedding_tensor": key,
        "bytes_before": folder_bytes(src),
        "bytes_after": folder_bytes(dst),
        "tokenization_parity": parity,
    }
    (dst / TRIM_RECORD).write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info("trimmed %s: %d -> %d pieces, %.0f -> %.0f MB on disk, tokenization parity %s", src,
                record["pieces_before"], record["pieces_after"], record["bytes_before"] / 1e6,
                record["bytes_after"] / 1e6, "holds" if parity["holds"] else "FAILS")
    return record
