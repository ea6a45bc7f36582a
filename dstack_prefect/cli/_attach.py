"""An attached `dstack run`: its log lines and final status as they come, and Ctrl-C (once:
stop or detach; twice: abort)."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from rich.markup import escape

from dstack_prefect.cli._app import console, err_console
from dstack_prefect.settings import Settings


def status_text(status: str) -> str:
    from dstack_prefect.engine import STATUS_COLORS  # noqa: PLC0415

    return f"[{STATUS_COLORS.get(status, 'white')}]{status.capitalize()}[/]"


T = TypeVar("T")


class _Interrupts:
    """Ctrl-C for an attached run: counted, and held back while the CLI prints or talks to the
    server, so an interrupt never lands inside rich's output machinery or half a request."""

    def __init__(self) -> None:
        self.count = 0
        self._shielded = 0
        self._deferred = False

    def handler(self, signum: int, frame: object) -> None:
        self.count += 1
        if self._shielded:
            self._deferred = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
            if not self._shielded and self._deferred:
                self._deferred = False
                raise KeyboardInterrupt


def _quietly(ctrl_c: _Interrupts, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``action`` with Ctrl-C held back; one that arrived meanwhile is counted, not raised."""
    try:
        with ctrl_c.shield():
            result = action(*args, **kwargs)
    except KeyboardInterrupt:
        pass
    return result


def _stop(ctrl_c: _Interrupts, api: Any, row: Any, *, abort: bool) -> None:
    """Ask the run to stop (or abort), and say so; a run that ended meanwhile (while the
    question waited) is left as it ended, and said to have."""
    from dstack_prefect.engine import is_finished, request_stop  # noqa: PLC0415

    after = _quietly(ctrl_c, request_stop, api, row, abort=abort)
    if after is not None and is_finished(after.status):
        said = f"The run '{row.name}' had already finished"
    else:
        said = f"{'Aborting' if abort else 'Stopping'} the run '{row.name}'..."
    _quietly(ctrl_c, err_console.print, ("\n" if abort else "") + said, highlight=False)


def _ask_stop(name: str) -> bool:
    """Ask whether to stop (True) or detach (False); a Ctrl-C here raises KeyboardInterrupt."""
    sys.stderr.write(f"\nStop the run '{name}'? y stops it, N detaches and leaves it running [y/N]: ")
    sys.stderr.flush()
    try:
        answer = input()
    except EOFError:  # nobody can answer (no terminal): an interrupt means stop
        return True
    return answer.strip().lower() in ("y", "yes")


def attach(api: Any, flow_run_id: str, name: str, *, multi: bool, settings: Settings) -> int:
    """Stream logs and status. Ctrl-C once: stop or detach; twice: abort."""
    ctrl_c = _Interrupts()
    previous = signal.signal(signal.SIGINT, ctrl_c.handler)
    try:
        return _attached(api, flow_run_id, name, multi, ctrl_c, settings)
    finally:
        signal.signal(signal.SIGINT, previous)


def _attached(
    api: Any, flow_run_id: str, name: str, multi: bool, ctrl_c: _Interrupts, settings: Settings
) -> int:
    from dstack_prefect.engine import follow, run_row  # noqa: PLC0415
    from dstack_prefect.engine._runs import LogLine  # noqa: PLC0415

    final = None
    held: list[str] = []
    shown = _Shown()
    stream = follow(api, flow_run_id, settings=settings)
    while True:
        try:
            for item in stream:
                with ctrl_c.shield():
                    if isinstance(item, LogLine):
                        if item.note and not item.step and item.level >= logging.ERROR:
                            held.append(item.message)  # the run's error: the last line says it
                        else:
                            print_line(item, multi)
                        shown.add(item)
                    else:
                        final = item
            break
        except KeyboardInterrupt:
            row = _quietly(
                ctrl_c, lambda: run_row(api.flow_run(flow_run_id) or {"name": name, "id": flow_run_id})
            )
            abort = ctrl_c.count >= 2
            if not abort:
                try:
                    stop = _ask_stop(name)
                except KeyboardInterrupt:  # Ctrl-C again: abort
                    abort = True
                else:
                    if not stop:
                        detach = f"Detaching... the run goes on; `dstack logs {name} -a` follows it"
                        _quietly(ctrl_c, err_console.print, detach)
                        return 0
                    _stop(ctrl_c, api, row, abort=False)
                    abort = ctrl_c.count >= 3  # Ctrl-C while stopping: abort
            if abort:
                _stop(ctrl_c, api, row, abort=True)
            stream = follow(api, flow_run_id, settings=settings, reader=shown.reader(api, flow_run_id))
    for message in held:
        if final is None or message != final.error:
            err_console.print(
                f"dstack: {message}", style="dim", highlight=False, markup=False, soft_wrap=True
            )
    if final is None:
        return 1
    error = f": {escape(final.error)}" if final.error else ""
    console.print(f"{status_text(final.status)}{error}", highlight=False, soft_wrap=True)
    return 0 if final.status == "done" else 1


class _Shown:
    """The lines an attached run has shown, by id: after a Ctrl-C (which ends the follower
    wherever it was) the next follower prints what came meanwhile, the lines logged while the
    question was on screen included, and nothing twice."""

    LOOK_BACK = timedelta(seconds=5)

    def __init__(self) -> None:
        self.ids: OrderedDict[str, datetime] = OrderedDict()
        """In the order shown: the oldest go first, at a steady cost per line (a copy of all
        of them now and then cost a burst's every line once 20000 fell within 5 s)."""
        self.last: datetime | None = None

    def add(self, line: Any) -> None:
        if not line.id:
            return
        self.ids[line.id] = line.timestamp
        self.last = line.timestamp if self.last is None else max(self.last, line.timestamp)
        forget = self.last - self.LOOK_BACK  # what the next follower reads again is the last 5 s
        while self.ids and next(iter(self.ids.values())) < forget:
            self.ids.popitem(last=False)

    def reader(self, api: Any, flow_run_id: str) -> Any:
        from dstack_prefect.engine._runs import LogReader  # noqa: PLC0415

        since = None if self.last is None else self.last - self.LOOK_BACK
        reader = LogReader(api, flow_run_id, since, workers=1)
        reader.seen = OrderedDict(self.ids)
        return reader


def print_line(line: Any, multi: bool, *, live: bool = True) -> None:
    """One log line as the step printed it: never wrapped or padded by us (a terminal wraps
    it; a pipe or a file gets the line whole, for grep, written as is: rich's rendering of each
    line cost ~0.1 ms, most of `dstack logs` for a long run). ``live``: flushed at once, for a
    reader at the other end of a pipe (`dstack logs -a | grep`); a whole log read leaves it to
    the buffer."""
    if not line.note and not console.is_terminal:
        prefix = f"{line.step} | " if multi and line.step else ""
        sys.stdout.write(f"{prefix}{line.message}\n")
        if live:
            sys.stdout.flush()
        return
    if line.note:
        sys.stdout.flush()  # the lines before it first, when both go to one place (2>&1)
        err_console.print(
            f"{line.step or 'dstack'}: {line.message}",
            style="dim",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    elif multi and line.step:
        console.print(f"[cyan]{line.step}[/] | ", end="", highlight=False, soft_wrap=True)
        console.print(line.message, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(line.message, markup=False, highlight=False, soft_wrap=True)
