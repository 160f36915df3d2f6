"""The ``chainstage`` command line: thin Typer commands over the library functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from data.errors import ChainstageError
from data.load import load_report
from data.reading_config import load_reading_config
from serve.tables import OutputFormat, write_rows

app = typer.Typer(
    help="Classify and summarise Chinese S&T government reports along the innovation chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="table, jsonl or csv")]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Options shared by every command (``--debug`` is read in ``main``)."""


@app.command()
def segment(
    files: Annotated[list[Path], typer.Argument(help="Report files: .txt .md .docx .pdf .html")],
    fmt: FormatOption = "table",
) -> None:
    """Cut reports into units (sentences and headings) with their section paths.

    Example: `chainstage segment seeds/001_2040a8d96ddfc16d.txt --format jsonl`
    """
    config = load_reading_config()
    failed = 0
    for path in files:
        try:
            report = load_report(path, config)
        except ChainstageError as err:
            _error(err)
            failed += 1
            continue
        rows = [
            {
                "report_id": unit.report_id,
                "unit_id": unit.unit_id,
                "kind": unit.kind,
                "section_path": list(unit.section_path),
                "start": unit.start,
                "end": unit.end,
                "text": unit.text,
            }
            for unit in report.units
        ]
        write_rows(rows, ["unit_id", "kind", "section_path", "text"], fmt, title=str(path))
    if failed:
        raise typer.Exit(code=1)


def _error(err: BaseException) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point: ChainstageErrors become one line on stderr and exit code 1."""
    try:
        app()
    except ChainstageError as err:
        if "--debug" in sys.argv:
            raise
        _error(err)
        sys.exit(1)
