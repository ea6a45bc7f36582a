"""A step's raw output, re-split into the lines a terminal would show.

Both executors read output in chunks that cut lines anywhere; :class:`LineBuffer` turns them
into lines for ``StepJob.on_line``. A carriage return rewrites its line, as progress bars do
(tqdm, pip, curl, wget): a finished line is delivered as its last rewrite, and a line still
being rewritten is delivered as its latest complete rewrite at most once per
``progress_every`` seconds. So a ten-minute tqdm bar shows in the logs as a handful of
snapshots and its final state, not as one line holding every frame (old dstack's #96).

    lines = LineBuffer(job.on_line)
    for chunk in chunks:
        lines.feed(chunk)
    lines.close()                  # delivers a last line that has no newline
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

#: How often a line that is still being rewritten (a progress bar) is delivered as it stands.
PROGRESS_EVERY = 5.0

#: A line longer than this is delivered in pieces of at most this size (Prefect truncates a log
#: message near 1 MB anyway), so output without newlines never piles up in memory. Each piece
#: but the last ends with :data:`CUT`; a character is never split.
MAX_LINE = 1_000_000

CUT = f" [line cut at {MAX_LINE} bytes: it goes on in the next line]"


def _text(raw: bytes) -> str:
    """What a terminal shows of ``raw``: invalid UTF-8 as U+FFFD, NUL as nothing (a Prefect
    server on Postgres refuses a log holding one)."""
    return raw.replace(b"\0", b"").decode("utf-8", errors="replace")


def _cut(raw: bytes) -> int:
    """Where to cut ``raw`` (longer than MAX_LINE): at MAX_LINE, or before the UTF-8
    character that straddles it."""
    at = MAX_LINE
    while at > MAX_LINE - 3 and raw[at] & 0xC0 == 0x80:  # a continuation byte
        at -= 1
    return at


def last_frame(raw: bytes) -> bytes:
    """What a terminal shows for ``raw`` (one line, no newline): the text after its last carriage
    return that is followed by something; ``b"a\\rb\\r"`` is ``b"b"``."""
    return raw.rstrip(b"\r").rsplit(b"\r", 1)[-1]


class LineBuffer:
    """Re-splits raw output chunks into lines for ``on_line``; see the module docstring."""

    def __init__(
        self,
        on_line: Callable[[str], None],
        progress_every: float = PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_line = on_line
        self.received = 0
        self._pending = b""
        self._every = progress_every
        self._clock = clock
        self._rewriting_since: float | None = None  # when the open line was last delivered/begun
        self._shown: bytes | None = None  # the open line's last delivered frame

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            self._finish(self._cut_long(raw))
        if b"\r" in self._pending:
            self._progress()
        self._pending = self._cut_long(self._pending)

    def catch_up(self, chunks: Iterable[bytes]) -> None:
        """Feed the part of the complete output ``chunks`` beyond what was already received."""
        seen = 0
        for chunk in chunks:
            skip = min(len(chunk), max(0, self.received - seen))
            seen += len(chunk)
            if skip < len(chunk):
                self.feed(chunk[skip:])
                seen = self.received

    def close(self) -> None:
        if self._pending:
            self._finish(self._pending)
            self._pending = b""

    def _cut_long(self, raw: bytes) -> bytes:
        """Deliver ``raw`` (a line or its start) in MAX_LINE pieces that say so while it is
        longer than that; return the rest."""
        while len(raw) > MAX_LINE:
            at = _cut(raw)
            self._finish(raw[:at], CUT)
            raw = raw[at:]
        return raw

    def _finish(self, raw: bytes, cut: str = "") -> None:
        frame = last_frame(raw)
        if frame != self._shown or cut:
            self.on_line(_text(frame) + cut)
        self._shown = None
        self._rewriting_since = None

    def _progress(self) -> None:
        """The open line has carriage returns: deliver its latest complete frame when due, and
        keep only what :meth:`_finish` still needs of it."""
        now = self._clock()
        if self._rewriting_since is None:
            self._rewriting_since = now
        *done, current = self._pending.split(b"\r")
        latest = next((frame for frame in reversed(done) if frame), b"")
        if latest and latest != self._shown and now - self._rewriting_since >= self._every:
            self.on_line(_text(latest))
            self._shown = latest
            self._rewriting_since = now
        self._pending = latest + b"\r" + current


def stream_lines(chunks: Iterable[bytes], on_line: Callable[[str], None]) -> None:
    """Deliver raw output ``chunks`` to ``on_line`` line by line, the last partial line included."""
    lines = LineBuffer(on_line)
    for chunk in chunks:
        lines.feed(chunk)
    lines.close()
