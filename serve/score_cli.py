"""`chainstage score`: a thin command over serve/score_job.py, which notebooks can call directly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from serve.options import ArchiveArgument, BackendOption, ModelOption, SetOption
from serve.score_config import load_score_config
from serve.score_job import score_archive


def score_command(
    archive: ArchiveArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; run again to resume or update the job")],
    model: ModelOption = None,
    engine: Annotated[str | None, typer.Option(help="local or ray (default: engine in configs/score.yaml)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet or jsonl (default: configs/score.yaml)")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes or Ray actors, each loads the model once")]
    = None,
    backend: BackendOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar (for cron)")] = False,
    overrides: SetOption = None,
) -> None:
    """Score every report under a folder into sharded Parquet tables: resumable, exactly once, local or on Ray.
    --set overrides a key of configs/score.yaml.

    Example: `chainstage score reports/ --out scored/ --engine ray --workers 2`
    """
    flags = {"engine": engine, "format": fmt, "workers": workers}
    config = load_score_config(overrides=[*(overrides or []), *(f"{key}={value}" for key, value in flags.items()
                                                                   if value is not None)])
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    summary = score_archive(archive, out, model, config, progress=not quiet, backend=backend)
    Console().print(summary.line(), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(code=1)

