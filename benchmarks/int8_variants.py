"""How each export choice moves ONNX int8 speed and parity: the ablation behind configs/export.yaml's onnx section.

    .venv/bin/python benchmarks/int8_variants.py [MODEL_DIR] [--repeats 5] [--profile] [--variant NAME ...]

Exports MODEL_DIR (by default the default model) once per variant into scratch folders of links, so MODEL_DIR is
never written to. Each variant is the shipped config plus a few ``--set`` overrides, from every fusion with the FFN
output projections fp32 to the shipped one, and the shipped one with attention fused the other way or the head int8
too (``--variant`` picks some). For each it prints the int8 speed at batch 32 (median of ``--repeats`` passes over
the seed units, the variants timed in turn), label agreement with PyTorch on the seed units (the export's parity
record) and on the devset units no model trained on, and with ``--profile`` the time per operator type from ONNX
Runtime's profiler. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from models.export_config import OnnxSection

FUSED_AND_SKIPPED = ["onnx.fusions_off=[]", "onnx.session_fusions_off=[]", "onnx.attention_op=Attention"]
SHIPPED = "+ batch slices (shipped config)"
ATTENTION_FUSED = "onnx.fusions_off=[skip_layer_norm,bias_skip_layer_norm,bias_gelu]"
VARIANTS = {
    "all fusions, FFN outputs fp32": [
        *FUSED_AND_SKIPPED, "onnx.int8_exclude=['layer\\.\\d+/output/dense/MatMul',pooler/dense,classifier/]",
        "onnx.int8_smooth_alpha=null", "onnx.batch_slices=false"],
    "all fusions, every MatMul int8": [*FUSED_AND_SKIPPED, "onnx.int8_smooth_alpha=null", "onnx.batch_slices=false"],
    "fusions off, every MatMul int8": ["onnx.int8_smooth_alpha=null", "onnx.batch_slices=false"],
    "+ SmoothQuant alpha 0.5": ["onnx.int8_smooth_alpha=0.5", "onnx.batch_slices=false"],
    "+ SmoothQuant alpha 0.75": ["onnx.int8_smooth_alpha=0.75", "onnx.batch_slices=false"],
    "+ SmoothQuant alpha 0.85": ["onnx.batch_slices=false"],
    "+ SmoothQuant alpha 0.95": ["onnx.int8_smooth_alpha=0.95", "onnx.batch_slices=false"],
    SHIPPED: [],
    "shipped config, but attention fused as MultiHeadAttention": [ATTENTION_FUSED],
    "shipped config, but attention fused as Attention": [ATTENTION_FUSED, "onnx.attention_op=Attention"],
    "shipped config, but the head int8 too": ["onnx.int8_exclude=[]"],
}


def _profile(file: Path, settings: OnnxSection, tokenizer: PreTrainedTokenizerBase,
             encoded: dict[str, list[list[int]]]) -> list[tuple[str, float]]:
    """Seconds per operator type over one pass at batch 32, from ONNX Runtime's own profiler."""
    import onnxruntime as ort

    from models.classifier import padded_batches
    from models.onnx_backend import session_options

    options = session_options(settings)
    options.enable_profiling = True
    options.profile_file_prefix = str(file.parent / "profile")
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=settings.session_fusions_off)
    names = [node.name for node in session.get_inputs()]
    for _, features in padded_batches(tokenizer, encoded, 32, "np"):
        session.run(None, {name: features[name].astype(np.int64) for name in names})
    seconds: collections.Counter = collections.Counter()
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            seconds[event["args"]["op_name"]] += event["dur"] / 1e6
    return seconds.most_common(6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="classifier folder (default: the default model)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per variant; the median is reported")
    parser.add_argument("--held-out", type=Path, default=ROOT / "data/labeled/devset.jsonl")
    parser.add_argument("--profile", action="store_true", help="also print seconds per operator type")
    parser.add_argument("--variant", action="append", choices=VARIANTS, metavar="NAME",
                        help="run only this variant, named as in the table (repeatable)")
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variant} if args.variant else VARIANTS

    import torch

    from models.classifier import forward_logits, load_classifier, load_tokenizer
    from models.classifier_config import load_saved_config
    from models.export_config import load_export_config
    from models.folder_layout import ONNX_FILES, PARITY_RECORD, default_model_dir
    from models.onnx_backend import OnnxClassifier, encoded_units, export_onnx, onnx_forward_logits

    model_dir = (args.model_dir or default_model_dir()).resolve()
    config = load_saved_config(model_dir)
    torch.set_num_threads(config.train.threads)
    seeds_tokenizer = load_tokenizer(str(model_dir))
    _, seeds = encoded_units(config, seeds_tokenizer, load_export_config().parity.units_path())
    _, held_out = encoded_units(config, seeds_tokenizer, args.held_out)
    model = load_classifier(str(model_dir), config.model.head)
    started = time.perf_counter()
    forward_logits(model, seeds_tokenizer, seeds, 32)
    torch_speed = len(seeds["input_ids"]) / (time.perf_counter() - started)
    held_out_torch = forward_logits(model, seeds_tokenizer, held_out, 32)[0].argmax(1)
    del model
    print(f"PyTorch fp32 at batch 32: {torch_speed:.1f} units/s (one pass, for scale)\n")

    with tempfile.TemporaryDirectory(prefix="chainstage-int8-") as scratch:
        sessions, rows = {}, {}
        for index, (name, overrides) in enumerate(variants.items()):
            export = load_export_config(overrides=overrides)
            folder = Path(scratch) / str(index)
            folder.mkdir()
            for path in model_dir.iterdir():
                if path.is_file() and not path.name.endswith((".onnx", PARITY_RECORD)):
                    (folder / path.name).symlink_to(path)
            record = export_onnx(folder, export, int8=True, progress=False)
            sessions[name] = OnnxClassifier(folder / ONNX_FILES["int8"], export.onnx)
            held = onnx_forward_logits(sessions[name], seeds_tokenizer, held_out, 32)[0].argmax(1)
            int8 = record["variants"]["int8"]
            rows[name] = [int8["label_agreement"], float((held == held_out_torch).mean()),
                          int8["max_probability_difference"], record["fused_operators"]]
            print(f"  exported {name}", flush=True)
            if args.profile:
                profile_settings = dataclasses.replace(export.onnx, batch_slices=False)  # one run: one timeline
                print("    " + ", ".join(f"{op} {seconds:.2f} s" for op, seconds in
                                         _profile(folder / ONNX_FILES["int8"], profile_settings, seeds_tokenizer,
                                                  seeds)))
        # round-robin passes: the machine's speed drifts by 10-20 % over minutes, and every variant sees the drift
        passes: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.repeats):
            for name, session in sessions.items():
                started = time.perf_counter()
                onnx_forward_logits(session, seeds_tokenizer, seeds, 32)
                passes[name].append(len(seeds["input_ids"]) / (time.perf_counter() - started))

    print(f"\n{len(seeds['input_ids'])} seed units and {len(held_out['input_ids'])} held-out units "
          f"({args.held_out.name}); int8 at batch 32, median of {args.repeats} passes; agreement is with PyTorch "
          "fp32\n")
    # each pass against the reference's pass of the same round: a steadier comparison than two medians when the
    # machine's speed drifts within a run
    reference = SHIPPED if SHIPPED in passes else next(iter(passes))
    print(f"× {reference}: median over the rounds of each pass's speed over the reference's pass in that round\n")
    print("| export variant | int8 units/s | × reference | seed agreement | held-out agreement | max prob. diff "
          "| fused operators |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, (agreement, held, diff, fused) in rows.items():
        speed = float(np.median(passes[name]))
        paired = float(np.median(np.divide(passes[name], passes[reference])))
        ops = ", ".join(f"{op} {count}" for op, count in fused.items())
        print(f"| {name} | {speed:.1f} | {paired:.2f}× | {agreement:.4f} | {held:.4f} | {diff:.4f} | {ops} |")


if __name__ == "__main__":
    main()
