"""``chainstage export``: ONNX (and int8) next to a model folder's PyTorch weights, with a parity record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from data.errors import ModelError
from serve.options import SetOption


def export_command(
    model_dir: Annotated[Path, typer.Argument(help="Model folder written by `chainstage train`")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX (model.onnx)")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also quantise to dynamic int8 (model_int8.onnx)")] = False,
    overrides: SetOption = None,
) -> None:
    """Export a trained classifier for fast CPU inference and check it against PyTorch on every labelled seed unit.

    The files land inside MODEL_DIR beside the PyTorch weights, with `onnx_parity.json`; afterwards
    `classify`, `summarize` and `score` use the fastest backend that passed parity unless `--backend` says otherwise.

    Settings: configs/export.yaml (`--set onnx.int8_per_channel=true`).

    Example: `chainstage export ~/.cache/chainstage/models/classifier-default --onnx --int8`
    """
    from models.export_config import load_export_config
    from models.onnx_backend import export_onnx

    if not onnx:
        raise ModelError("nothing to export: pass --onnx (and --int8 for the quantised model too)")
    record = export_onnx(model_dir, load_export_config(overrides=overrides), int8=int8)
    table = Table(title=f"parity on {record['units']} units of {record['units_file']} (vs PyTorch fp32)")
    for column in ("backend", "file MB", "label agreement", "max prob. diff", "macro-F1", "units/s", "passed"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    torch_row = record["torch"]
    table.add_row("torch", "", "", "", f"{torch_row['macro_f1']:.4f}", f"{torch_row['units_per_second']:.1f}", "")
    for name, variant in record["variants"].items():
        table.add_row(f"onnx {name}", f"{variant['bytes'] / 1e6:.1f}", f"{variant['label_agreement']:.4f}",
                      f"{variant['max_probability_difference']:.4f}", f"{variant['macro_f1']:.4f}",
                      f"{variant['units_per_second']:.1f}", "yes" if variant["passed"] else "NO")
    console = Console()
    console.print(table)
    console.print(f"fused: {record['fused_operators'] or 'nothing'}; default backend now: {record['default_backend']}")
    if not any(variant["passed"] for variant in record["variants"].values()):
        raise typer.Exit(code=1)
