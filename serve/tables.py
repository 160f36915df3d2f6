"""Write rows as a readable rich table, JSONL or CSV: the three output formats every command shares."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.table import Table

OutputFormat = Literal["table", "jsonl", "csv"]


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " / ".join(str(item) for item in value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def write_rows(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: OutputFormat,
    title: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Write rows (dicts) in ``fmt``; table and CSV show ``columns``, JSONL keeps every key of each row."""
    stream = stream or sys.stdout
    if fmt == "jsonl":
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row.get(key)) for key in columns})
    else:
        table = Table(title=title, show_lines=False, expand=True)
        for column in columns:
            table.add_column(column, overflow="fold", ratio=4 if column == "text" else 1)
        for row in rows:
            table.add_row(*(_cell(row.get(key)) for key in columns))
        Console(file=stream).print(table)
