"""LineBuffer: raw output chunks become the lines a terminal would show."""

from __future__ import annotations

from dstack_prefect.executors._lines import MAX_LINE, LineBuffer

CUT = f" [line cut at {MAX_LINE} bytes: it goes on in the next line]"


class Clock:
    """A clock the test moves by hand (LineBuffer's progress snapshots are time-based)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fed(*chunks: bytes, clock: Clock | None = None, every: float = 5.0) -> list[str]:
    lines: list[str] = []
    buf = LineBuffer(lines.append, progress_every=every, clock=clock or Clock())
    for chunk in chunks:
        buf.feed(chunk)
    buf.close()
    return lines


class TestLines:
    def test_chunks_split_into_lines(self) -> None:
        """Chunks re-split on newlines; a multi-byte character split across chunks survives."""
        assert ["a", "bc", "\u00e9", "last"] == fed(b"a\nb", b"c\r\n\xc3", b"\xa9\nlast")

    def test_catch_up_delivers_only_what_was_missed(self) -> None:
        """catch_up skips the bytes already streamed and delivers the rest."""
        lines: list[str] = []
        buf = LineBuffer(lines.append)
        buf.feed(b"one\ntw")
        buf.catch_up([b"one\n", b"two\n", b"tail"])
        buf.close()

        assert ["one", "two", "tail"] == lines

    def test_output_without_newlines_comes_in_pieces_that_say_so(self) -> None:
        """A step that never prints a newline still reaches the logs, in MAX_LINE pieces; each
        piece but the last says where it was cut (nothing is dropped)."""
        lines = fed(b"x" * (MAX_LINE // 2), b"x" * MAX_LINE, b"y\n")

        assert lines == ["x" * MAX_LINE + CUT, "x" * (MAX_LINE // 2) + "y"]

    def test_a_cut_never_splits_a_character(self) -> None:
        """A two-byte character across the MAX_LINE mark goes whole into the next piece."""
        lines = fed(b"x" * (MAX_LINE - 1) + "\u00e9tude\n".encode())

        assert lines == ["x" * (MAX_LINE - 1) + CUT, "\u00e9tude"]

    def test_nul_bytes_are_not_shown(self) -> None:
        """NUL shows as nothing on a terminal, and a Postgres-backed Prefect server refuses it."""
        assert ["ab", "end"] == fed(b"a\0b\n", b"\0end")


class TestProgressBars:
    def test_a_rewritten_line_is_delivered_as_its_last_frame(self) -> None:
        """A quick progress bar ("\\r 10%", "\\r 20%", ..., "\\n") is one line: its final state."""
        frames = [f"\r{p:3d}%|{'#' * (p // 10):10}|".encode() for p in range(0, 101, 10)]

        assert ["100%|##########|", "done"] == fed(*frames, b"\n", b"done\n")

    def test_a_long_bar_shows_a_snapshot_every_interval_and_its_end(self) -> None:
        """While a bar runs for longer than the interval, its latest complete frame is delivered
        once per interval; the final frame follows when the line ends, never twice."""
        clock = Clock()
        lines: list[str] = []
        buf = LineBuffer(lines.append, progress_every=5.0, clock=clock)
        for second in range(13):
            clock.now = float(second)
            buf.feed(f"\rstep {second}".encode())
        buf.feed(b"\n")

        assert ["step 4", "step 9", "step 12"] == lines

    def test_the_final_frame_is_not_repeated_after_its_snapshot(self) -> None:
        """A frame already delivered as a snapshot is not delivered again when its line ends."""
        clock = Clock()
        lines: list[str] = []
        buf = LineBuffer(lines.append, progress_every=1.0, clock=clock)
        buf.feed(b"\rhalf")
        clock.now = 2.0
        buf.feed(b"\rall\r")
        buf.feed(b"\n")

        assert ["all"] == lines

    def test_a_carriage_return_line_ending_is_not_a_rewrite(self) -> None:
        """Windows line endings ("text\\r\\n") keep their text."""
        assert ["one", "two"] == fed(b"one\r\ntwo\r\n")

    def test_a_rewrite_split_across_chunks_is_whole(self) -> None:
        """A frame cut by a chunk boundary is joined before it is delivered."""
        assert ["done 100%"] == fed(b"\rdone 5", b"0%\rdone 1", b"00%", b"\n")
