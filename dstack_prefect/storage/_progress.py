"""Progress reporting: a two-method sink the store calls, and a rich bar for the CLI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Progress(Protocol):
    """What the store reports to. Calls may come from worker threads."""

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        """A phase (``hash``, ``upload``, ``download``, ``verify``) starts with this much work."""

    def advance(self, files: int, nbytes: int) -> None:
        """This much more of the current phase is done."""


class NullProgress:
    """Reports nowhere."""

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        pass

    def advance(self, files: int, nbytes: int) -> None:
        pass


class CountingProgress:
    """Keeps totals per phase; handy in tests and scripts (``counts["upload"] == [files, bytes]``)."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.phase = ""
        self._lock = threading.Lock()

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        with self._lock:
            self.phase = phase
            self.counts.setdefault(phase, [0, 0])

    def advance(self, files: int, nbytes: int) -> None:
        with self._lock:
            row = self.counts.setdefault(self.phase, [0, 0])
            row[0] += files
            row[1] += nbytes


class _RichProgress:
    """A rich bar per phase: bytes done/total, files done/total, transfer rate.

    The bar appears with the first phase: a command that fails before any transfer starts
    prints its error alone, not after an empty bar line.
    """

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._started = False
        self._task: Any = None
        self._files = 0
        self._total_files = 0
        self._lock = threading.Lock()

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        with self._lock:
            if not files and not nbytes:  # nothing to do: no '0/? bytes 0/0 files' row
                self._task = None
                return
            if not self._started:
                self._bar.start()
                self._started = True
            self._files, self._total_files = 0, files
            self._task = self._bar.add_task(phase, total=nbytes or None, files=f"0/{files}")

    def advance(self, files: int, nbytes: int) -> None:
        with self._lock:
            if self._task is None:
                return
            self._files += files
            self._bar.update(self._task, advance=nbytes, files=f"{self._files}/{self._total_files}")

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._bar.stop()


@contextmanager
def rich_progress(console: Any = None, *, transient: bool = False) -> Iterator[Progress]:
    """Show a rich progress bar while the body runs; yields the sink to pass as ``progress=``."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichBar  # noqa: PLC0415

    bar = RichBar(
        TextColumn("[bold]{task.description:>8}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[files]} files"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
    sink = _RichProgress(bar)
    try:
        yield sink
    finally:
        sink.stop()
