"""What a chatty step's output costs on its way to the user: an attached `dstack run` keeps pace
with a burst of lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from dstack_prefect.cli._attach import _Shown
from dstack_prefect.engine._runs import LogLine


def test_an_attached_run_keeps_pace_with_a_burst() -> None:
    """40000 lines printed in a moment (all within the 5 s a resumed follower reads again) are
    remembered at a steady cost per line: each line past 20000 used to copy every id kept
    (about a minute for this burst, half an hour for 200000 lines). What a follower resumed
    after a Ctrl-C skips is still every line of the last 5 s, and nothing older is kept."""
    start = datetime.now(UTC)
    old = [LogLine("s", "old", start - timedelta(seconds=60), note=False, id=f"old-{i}") for i in range(10)]
    burst = [LogLine("s", str(i), start, note=False, id=f"id-{i}") for i in range(40000)]
    shown = _Shown()

    began = time.perf_counter()
    for line in [*old, *burst]:
        shown.add(line)
    took = time.perf_counter() - began

    assert took < 5, f"{took:.1f} s to remember 40010 lines"
    assert set(shown.reader(None, "run").seen) == {line.id for line in burst}
