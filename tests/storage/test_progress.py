"""The rich progress bar the CLI shows for transfers."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dstack_prefect.errors import StorageError
from dstack_prefect.storage import rich_progress


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100), out


def test_a_bar_with_no_phase_prints_nothing() -> None:
    """A command that fails before any transfer starts (an unknown path, a wrong name) prints
    no empty bar line before its error."""
    console, out = _console()

    with pytest.raises(StorageError), rich_progress(console):
        raise StorageError("nothing to copy")

    assert "" == out.getvalue()


def test_a_bar_shows_each_phase_with_its_files() -> None:
    """Each phase the store begins is a row with its name and its files done of the total."""
    console, out = _console()

    with rich_progress(console) as progress:
        progress.begin("download", 2, 30)
        progress.advance(2, 30)
        progress.begin("verify", 2, 30)
        progress.advance(2, 30)

    text = out.getvalue()
    assert "download" in text and "verify" in text and "2/2 files" in text


def test_a_phase_with_nothing_to_do_shows_no_bar() -> None:
    """A phase with no files (an empty folder tagged with -a, every blob already stored) shows
    no bar: it printed '0/? bytes 0/0 files' rows."""
    console, out = _console()

    with rich_progress(console) as progress:
        progress.begin("hash", 0, 0)
        progress.begin("upload", 0, 0)

    assert "" == out.getvalue()
