"""Errors as a user sees them: one line on stderr each, and a batch of report files that goes on past a bad one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import typer
from rich.console import Console

from data.errors import ChainstageError

T = TypeVar("T")


def print_error(err: BaseException) -> None:
    """One line on stderr, without a traceback (``main`` re-raises instead under --debug)."""
    Console(stderr=True).print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)


class EachFile(Generic[T]):
    """``(path, read(path))`` for each file in turn; a file that raises a ChainstageError gets one error line and is
    skipped, so one bad file in a batch never hides the others' results. ``finish`` then sets the exit code."""

    def __init__(self, files: Iterable[Path], read: Callable[[Path], T]) -> None:
        self.files = files
        self.read = read
        self.failed = 0

    def __iter__(self) -> Iterator[tuple[Path, T]]:
        for path in self.files:
            try:
                result = self.read(path)
            except ChainstageError as err:
                print_error(err)
                self.failed += 1
                continue
            yield path, result

    def finish(self) -> None:
        """Exit with code 1 if any file failed, once the command has done what it can with the rest."""
        if self.failed:
            raise typer.Exit(code=1)
