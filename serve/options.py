"""Command-line options and arguments that several commands share, declared once so their flags and help cannot
drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from data.read import SUPPORTED_SUFFIXES
from serve.tables import OutputFormat

_SUFFIXES = " ".join(SUPPORTED_SUFFIXES)

ReportFilesArgument = Annotated[list[Path], typer.Argument(help=f"Report files: {_SUFFIXES}")]
ReportFileArgument = Annotated[Path, typer.Argument(help=f"Report file: {_SUFFIXES}")]
ArchiveArgument = Annotated[Path, typer.Argument(help=f"Folder of reports, searched recursively: {_SUFFIXES}")]
ModelOption = Annotated[Path | None, typer.Option("--model", "-m", help="Model folder (default: the trained default)")]
BackendOption = Annotated[str | None, typer.Option("--backend", help="torch or onnx (default: the fastest backend "
                                                   "that passed the export's parity check)")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="table, jsonl or csv")]
# each command says in its help which configs/*.yaml it reads
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a key of the command's config file, "
                                                     "repeatable: --set key=value")]
