"""Macro-F1 under leave-one-report-out for PyTorch, ONNX fp32 and ONNX int8: the export may cost at most 0.01.

    .venv/bin/python benchmarks/onnx_loro.py [--set train.epochs=1 ...]

For each seed report: fine-tune on the other four (configs/classifier.yaml plus --set overrides), save the model
folder, export it with `export_onnx` (fused fp32 and dynamic int8) and run the export's parity check on the held-out
report's units only, so that the record's macro-F1 figures are the fold's held-out scores for each backend. Prints
per-fold and mean macro-F1 and label agreement; asserts nothing. It trains five models: minutes per fold on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override configs/classifier.yaml, e.g. --set train.epochs=1")
    args = parser.parse_args()

    from data.labeled_units import load_labeled
    from data.labels import load_labels
    from models.classifier_config import load_classifier_config
    from models.export_config import load_export_config
    from models.onnx_backend import export_onnx
    from training.model_folder import save_model_folder
    from training.train import fit_classifier

    config = load_classifier_config(overrides=args.overrides)
    labels = load_labels()
    records = load_labeled(ROOT / config.data.labeled)
    reports = sorted({r["report_id"] for r in records})
    max_drop = load_export_config().parity.max_macro_f1_drop
    rows = []
    with tempfile.TemporaryDirectory(prefix="chainstage-onnx-loro-") as scratch:
        for held in reports:
            started = time.perf_counter()
            train = [r for r in records if r["report_id"] != held]
            test = [r for r in records if r["report_id"] == held]
            fold = Path(scratch) / held
            fitted = fit_classifier(train, config, labels, fold / "trainer", progress=False)
            save_model_folder(fitted, config, labels, train, fold / "model")
            units = fold / "held-out.jsonl"
            units.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in test), encoding="utf-8")
            export = load_export_config(overrides=[f"parity.units={units}"])
            record = export_onnx(fold / "model", export, int8=True, progress=False)
            rows.append((held, len(test), record))
            print(f"fold {held}: {time.perf_counter() - started:.0f} s", flush=True)

    print(f"\nleave-one-report-out, {len(records)} seed units; --set {' '.join(args.overrides) or '(none)'}\n")
    print("| held-out report | units | macro-F1 PyTorch | macro-F1 ONNX fp32 | macro-F1 ONNX int8 | "
          "label agreement fp32 | label agreement int8 | max prob. diff int8 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for held, count, record in rows:
        fp32, int8 = record["variants"]["fp32"], record["variants"]["int8"]
        print(f"| {held[:3]} | {count} | {record['torch']['macro_f1']:.4f} | {fp32['macro_f1']:.4f} | "
              f"{int8['macro_f1']:.4f} | {fp32['label_agreement']:.4f} | {int8['label_agreement']:.4f} | "
              f"{int8['max_probability_difference']:.4f} |")
    means = {name: sum(r["variants"][name]["macro_f1"] if name != "torch" else r["torch"]["macro_f1"]
                       for _, _, r in rows) / len(rows) for name in ("torch", "fp32", "int8")}
    print(f"| mean | {len(records)} | {means['torch']:.4f} | {means['fp32']:.4f} | {means['int8']:.4f} | | | |")
    for name in ("fp32", "int8"):
        drop = means["torch"] - means[name]
        verdict = "within" if drop <= max_drop else "OVER"
        print(f"ONNX {name}: mean LORO macro-F1 drop {drop:+.4f} ({verdict} the {max_drop} allowed)")


if __name__ == "__main__":
    main()
