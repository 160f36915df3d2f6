"""ONNX Runtime backend: export a classifier folder, fuse and int8-quantise it, prove parity, and serve it on CPU.

The export sits inside the model folder next to the PyTorch weights (``model.onnx``, ``model_int8.onnx``) with
``onnx_parity.json``, the record of how every variant compares with PyTorch on every labelled seed unit. The graph
returns the logits *and* the mean-pooled last layer, so it serves the Predictor exactly as
:func:`models.classifier.forward_logits` does. onnxruntime is an optional dependency (the ``onnx`` extra): it is
imported only by the functions that need it.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedTokenizerBase

from data.errors import ModelError
from data.labeled_units import load_labeled, record_context
from models.classifier import (
    MeanPoolingClassifier,
    encode_inputs,
    forward_logits,
    load_classifier,
    load_tokenizer,
    mean_pool,
    padded_batches,
    softmax,
)
from models.classifier_config import ClassifierConfig, load_saved_config
from models.export_config import ExportConfig, OnnxSection
from models.folder_layout import ONNX_FILES, PARITY_RECORD, load_calibration, require_model_folder
from models.smooth_quant import smooth_matmul_inputs

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _LogitsAndEmbeddings(nn.Module):
    """The classifier with the mean pooling of its last layer inside the graph: one run gives both outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            output_hidden_states=True)
        return output.logits, mean_pool(output.hidden_states[-1], attention_mask)


def session_options(config: OnnxSection) -> Any:
    """Threads for a 2-core machine: one op at a time (inter-op 1) on ``threads`` cores, or on one core per batch
    slice when ``batch_slices`` runs the slices side by side."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1 if config.batch_slices else config.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # spinning threads burn the other process's CPU time while waiting; off by default on shared machines
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    options.log_severity_level = 3
    return options


class OnnxClassifier:
    """One ONNX Runtime session over an exported file, with the transformers config of its folder.

    With ``batch_slices`` each batch is cut into ``threads`` row slices that run at once on a single-threaded
    session (ONNX Runtime releases the GIL and allows concurrent runs): on 2 cores that beat one run on 2 intra-op
    threads at batch 32 (benchmarks/int8_variants.py), since BERT's many small element-wise ops scale poorly across
    threads.
    """

    def __init__(self, path: str | Path, settings: OnnxSection) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: ONNX file not found; run `chainstage export {path.parent} --onnx`")
        self.path = path
        self.config: PretrainedConfig = AutoConfig.from_pretrained(path.parent)
        try:
            self.session = ort.InferenceSession(str(path), session_options(settings),
                                                providers=["CPUExecutionProvider"],
                                                disabled_optimizers=settings.session_fusions_off)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types, all plain Exceptions
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0]})") from err
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.slices = settings.threads if settings.batch_slices else 1
        self.pool = ThreadPoolExecutor(self.slices) if self.slices > 1 else None

    def run(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Logits and mean-pooled embeddings of one padded batch."""
        feed = {name: features[name].astype(np.int64) for name in self.input_names}
        rows = len(feed[self.input_names[0]])
        if self.pool is None or rows < 2:
            logits, embeddings = self.session.run(["logits", "embeddings"], feed)
            return logits, embeddings
        slices = np.array_split(np.arange(rows), min(self.slices, rows))
        outputs = list(self.pool.map(lambda part: self.session.run(["logits", "embeddings"],
                                                                   {name: value[part] for name, value in feed.items()}),
                                     slices))
        return np.concatenate([out[0] for out in outputs]), np.concatenate([out[1] for out in outputs])


def onnx_forward_logits(model: OnnxClassifier, tokenizer: PreTrainedTokenizerBase, encoded: dict[str, list[list[int]]],
                        batch_size: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits and embeddings for every encoded unit, in input order: the ONNX twin of ``forward_logits``."""
    ids = encoded["input_ids"]
    logits = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    embeddings = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    for batch, features in padded_batches(tokenizer, encoded, batch_size, "np",
                                          progress="classifying (onnx)" if progress else None):
        logits[batch], embeddings[batch] = model.run(features)
    return logits, embeddings


# ----------------------------------------------------------------------------------------------------------------
# Choosing a backend


def read_parity(folder: Path) -> dict[str, Any] | None:
    """The parity record of a folder's export, or None when it has none."""
    path = Path(folder) / PARITY_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise ModelError(f"{path}: not valid JSON ({err}); run `chainstage export` again") from err


def choose_backend(folder: Path, requested: str | None, record: dict[str, Any] | None = None
                   ) -> tuple[str, Path | None]:
    """``("torch", None)`` or ``("onnx", file)``: the requested backend, or by default the fastest that passed parity.

    Speeds come from the export's parity record (``record``, by default read from the folder), measured on the same
    units for every backend; an explicit ``onnx`` takes the fastest ONNX variant that passed.
    """
    if requested not in (None, *BACKENDS):
        raise ModelError(f"unknown backend '{requested}' (choose one of {', '.join(BACKENDS)})")
    if requested == "torch":
        return "torch", None
    record = record if record is not None else read_parity(folder)
    passing = [variant for variant in (record or {"variants": {}})["variants"].values()
               if variant["passed"] and (folder / variant["file"]).is_file()]
    fastest = max(passing, key=lambda variant: variant["units_per_second"], default=None)
    if fastest is None:
        if requested == "onnx":
            raise ModelError(f"{folder}: no ONNX export that passed parity; run `chainstage export {folder} --onnx "
                             "--int8` or use --backend torch")
        return "torch", None
    if requested is None and fastest["units_per_second"] <= record["torch"]["units_per_second"]:
        return "torch", None
    return "onnx", folder / fastest["file"]


# ----------------------------------------------------------------------------------------------------------------
# Export


def _eager_model(folder: Path, head: str) -> nn.Module:
    """The classifier with eager attention: ORT's attention fusion recognises that graph, not the SDPA one."""
    cls = MeanPoolingClassifier if head == "mean" else AutoModelForSequenceClassification
    return cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def _torch_export(model: nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path, opset: int) -> list[str]:
    """TorchScript export with dynamic batch and sequence axes; returns the graph's input names."""
    sample = tokenizer(["query: 加强基础研究。", "query: 推动科技成果转化和产业化，培育高新技术企业。"], padding=True,
                       return_tensors="pt")
    names = [name for name in GRAPH_INPUTS if name in sample]
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"},
                                                                       "embeddings": {0: "batch"}}
    with warnings.catch_warnings():
        # the legacy exporter is deprecated in favour of torch.export, whose graph ORT's BERT fusions do not match;
        # tracer warnings concern Python-side shape checks that hold for every padded batch
        warnings.simplefilter("ignore")
        torch.onnx.export(_LogitsAndEmbeddings(model), tuple(sample[name] for name in names), str(path),
                          input_names=names, output_names=["logits", "embeddings"], dynamic_axes=dynamic,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    return names


def _optimize(raw: Path, out: Path, config: PretrainedConfig, settings: OnnxSection) -> dict[str, int]:
    """Fuse the BERT graph, except the fusions named in ``fusions_off``; returns the fused-op counts."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_multi_head_attention = settings.attention_op == "MultiHeadAttention"
    for name in settings.fusions_off:
        if not hasattr(options, f"enable_{name}"):
            raise ModelError(f"config key 'onnx.fusions_off': no fusion '{name}' in onnxruntime's FusionOptions")
        setattr(options, f"enable_{name}", False)
    optimized = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size, optimization_options=options)
    optimized.save_model_to_file(str(out))
    return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def _quantize(fp32: Path, out: Path, config: OnnxSection) -> None:
    """Dynamic int8: weights quantised once, activations per batch at run time; ``int8_exclude`` nodes stay fp32.

    ``fp32`` should be smoothed first (models/smooth_quant.py): the Mul nodes it adds stay fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    patterns = [re.compile(pattern) for pattern in config.int8_exclude]
    nodes = onnx.load(str(fp32), load_external_data=False).graph.node
    kept = [node for node in nodes if any(p.search(node.name) or p.fullmatch(node.op_type) for p in patterns)]
    # the quantizer first rewrites every Gemm (the pooler, the head) as MatMul + Add, naming the MatMul
    # "<name>_MatMul", and excludes by the new name: a kept Gemm must be named both ways
    keep = [node.name for node in kept] + [f"{node.name}_MatMul" for node in kept if node.op_type == "Gemm"]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it warns on the root logger to run a pre-processing step meant for CNNs
    try:
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=config.int8_per_channel,
                         reduce_range=config.int8_reduce_range, op_types_to_quantize=list(IntegerOpsRegistry),
                         nodes_to_exclude=keep,
                         # the contrib ops (Gelu) defeat ONNX shape inference; their outputs are float32
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def export_onnx(folder: str | Path, config: ExportConfig, int8: bool = True, progress: bool = True) -> dict[str, Any]:
    """Export a classifier folder to ONNX (and int8), check parity on every labelled unit, write the record."""
    folder = Path(folder)
    classifier = _classifier_config(folder)
    tokenizer = load_tokenizer(str(folder))
    (folder / PARITY_RECORD).unlink(missing_ok=True)  # a half-finished export must never be trusted
    for name in ONNX_FILES.values():
        (folder / name).unlink(missing_ok=True)

    started = time.monotonic()
    model = _eager_model(folder, classifier.model.head)
    raw = folder / ".model.raw.onnx"
    try:
        logger.info("exporting %s to ONNX (opset %d)", folder, config.onnx.opset)
        inputs = _torch_export(model, tokenizer, raw, config.onnx.opset)
        fused = (_optimize(raw, folder / ONNX_FILES["fp32"], model.config, config.onnx)
                 if config.onnx.optimize else {})
        if not config.onnx.optimize:
            raw.rename(folder / ONNX_FILES["fp32"])
    finally:
        raw.unlink(missing_ok=True)
    del model
    smoothed = 0
    if int8:
        source = folder / ONNX_FILES["fp32"]
        if config.onnx.int8_smooth_alpha is not None:
            logger.info("smoothing MatMul inputs on %s (alpha %.2f)", config.onnx.int8_calibration_units,
                        config.onnx.int8_smooth_alpha)
            source = folder / ".model.smoothed.onnx"
            smoothed = smooth_matmul_inputs(folder / ONNX_FILES["fp32"], source,
                                            calibration_feeds(classifier, tokenizer, config, inputs),
                                            config.onnx.int8_smooth_alpha)
        logger.info("quantising to int8")
        try:
            _quantize(source, folder / ONNX_FILES["int8"], config.onnx)
        finally:
            if source != folder / ONNX_FILES["fp32"]:
                source.unlink(missing_ok=True)
    export_seconds = time.monotonic() - started

    variants = ["fp32", "int8"] if int8 else ["fp32"]
    record = check_parity(folder, variants, config, progress=progress)
    record |= {
        "inputs": inputs,
        "fused_operators": fused,
        "export_seconds": round(export_seconds, 1),
        "smoothed_matmul_inputs": smoothed,
        "settings": {"opset": config.onnx.opset, "optimize": config.onnx.optimize,
                     "fusions_off": config.onnx.fusions_off, "attention_op": config.onnx.attention_op,
                     "int8_per_channel": config.onnx.int8_per_channel,
                     "int8_reduce_range": config.onnx.int8_reduce_range, "int8_exclude": config.onnx.int8_exclude,
                     "int8_smooth_alpha": config.onnx.int8_smooth_alpha,
                     "int8_calibration_units": config.onnx.int8_calibration_units},
        "exported_with": {name: _version(name) for name in ("torch", "transformers", "onnx", "onnxruntime")},
    }
    (folder / PARITY_RECORD).write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    return record


def encoded_units(classifier: ClassifierConfig, tokenizer: PreTrainedTokenizerBase, path: Path
                   ) -> tuple[list[dict[str, Any]], dict[str, list[list[int]]]]:
    """Labelled units and their model inputs, encoded as the classifier encodes units."""
    records = load_labeled(path)
    contexts = [record_context(r) for r in records] if classifier.model.context == "heading" else None
    return records, encode_inputs(tokenizer, [r["text"] for r in records], contexts, classifier.model.prefix,
                                  classifier.model.max_length)


def calibration_feeds(classifier: ClassifierConfig, tokenizer: PreTrainedTokenizerBase,
                       config: ExportConfig, inputs: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """The calibration units as padded graph inputs, the batches SmoothQuant measures activation ranges on."""
    _, encoded = encoded_units(classifier, tokenizer, config.onnx.calibration_path())
    for _, features in padded_batches(tokenizer, encoded, config.parity.batch_size, "np"):
        yield {name: features[name].astype(np.int64) for name in inputs}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _classifier_config(folder: Path) -> ClassifierConfig:
    """The folder's training config, after checking it is a model folder with the PyTorch weights to export."""
    return load_saved_config(require_model_folder(folder, weights=True))


# ----------------------------------------------------------------------------------------------------------------
# Parity


def check_parity(folder: Path, variants: list[str], config: ExportConfig, progress: bool = True) -> dict[str, Any]:
    """Run PyTorch and every ONNX variant on every labelled unit; compare labels, probabilities, macro-F1, speed."""
    classifier = _classifier_config(folder)
    tokenizer = load_tokenizer(str(folder))
    records, encoded = encoded_units(classifier, tokenizer, config.parity.units_path())
    temperature = load_calibration(folder).temperature
    torch.set_num_threads(classifier.train.threads)

    model = load_classifier(str(folder), classifier.model.head)
    label2id = {name: index for index, name in model.config.id2label.items()}
    unknown = sorted({r["label"] for r in records} - set(label2id))
    if unknown:
        raise ModelError(f"{config.parity.units_path()}: labels {unknown} are not labels of {folder}")
    gold = np.array([label2id[r["label"]] for r in records])
    label_ids = list(range(model.config.num_labels))

    def macro_f1(predicted: np.ndarray) -> float:
        return float(f1_score(gold, predicted, labels=label_ids, average="macro", zero_division=0))

    started = time.monotonic()
    logits, embeddings = forward_logits(model, tokenizer, encoded, config.parity.batch_size, progress=progress)
    torch_speed = len(records) / (time.monotonic() - started)
    del model
    probs = softmax(logits, temperature)
    reference = {"units_per_second": round(torch_speed, 1), "macro_f1": round(macro_f1(probs.argmax(1)), 4)}
    record: dict[str, Any] = {"units": len(records), "units_file": config.parity.units,
                              "thresholds": {"min_label_agreement": config.parity.min_label_agreement,
                                             "max_macro_f1_drop": config.parity.max_macro_f1_drop},
                              "torch": reference, "variants": {}}
    for variant in variants:
        session = OnnxClassifier(folder / ONNX_FILES[variant], config.onnx)
        started = time.monotonic()
        other_logits, other_embeddings = onnx_forward_logits(session, tokenizer, encoded, config.parity.batch_size,
                                                             progress=progress)
        speed = len(records) / (time.monotonic() - started)
        other = softmax(other_logits, temperature)
        agreement = float((other.argmax(1) == probs.argmax(1)).mean())
        f1_drop = reference["macro_f1"] - macro_f1(other.argmax(1))
        cosine = (other_embeddings * embeddings).sum(1) / (
            np.linalg.norm(other_embeddings, axis=1) * np.linalg.norm(embeddings, axis=1)).clip(min=1e-12)
        record["variants"][variant] = {
            "file": ONNX_FILES[variant],
            "bytes": (folder / ONNX_FILES[variant]).stat().st_size,
            "label_agreement": round(agreement, 4),
            "labels_changed": int((other.argmax(1) != probs.argmax(1)).sum()),
            "max_probability_difference": round(float(np.abs(other - probs).max()), 4),
            "min_embedding_cosine": round(float(cosine.min()), 4),
            "macro_f1": round(reference["macro_f1"] - f1_drop, 4),
            "macro_f1_drop": round(f1_drop, 4),
            "units_per_second": round(speed, 1),
            "passed": agreement >= config.parity.min_label_agreement and f1_drop <= config.parity.max_macro_f1_drop,
        }
        logger.info("%s: label agreement %.4f, largest probability difference %.4f, %.1f units/s", variant,
                    agreement, record["variants"][variant]["max_probability_difference"], speed)
    backend, path = choose_backend(folder, None, record)
    record["default_backend"] = backend if path is None else f"{backend} ({path.name})"
    return record
