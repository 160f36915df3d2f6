"""Command-line options that several commands share, declared once so their flags and help cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelOption = Annotated[Path | None, typer.Option("--model", "-m", help="Model folder (default: the trained default)")]
BackendOption = Annotated[str | None, typer.Option("--backend", help="torch or onnx (default: the fastest backend "
                                                   "that passed the export's parity check)")]
