"""Progress bars (Rich) that every long loop uses; quiet when not on a terminal or when asked."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("MLCASEBOOK_NO_PROGRESS")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=True)


@contextlib.contextmanager
def bar(total: int | None, description: str, disable: bool = False) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a bar on a terminal, nothing otherwise."""
    if disable or not enabled():
        yield lambda n=1: None
        return
    with _progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def track(items: Iterable[T], description: str, total: int | None = None, disable: bool = False) -> Iterator[T]:
    """Iterate with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, description, disable) as advance:
        for item in items:
            yield item
            advance(1)
