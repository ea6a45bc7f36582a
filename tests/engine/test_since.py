"""`dstack logs -s`: relative times and ISO times, as old dstack read them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dstack_prefect.engine import parse_since
from dstack_prefect.errors import DstackError

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        (" 3h ", timedelta(hours=3)),
    ],
)
def test_relative_times_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - ago


def test_an_iso_time_with_a_zone_is_taken_as_written() -> None:
    assert parse_since("2026-11-26T10:00:00+02:00") == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def five_hours_west() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "EST+5"  # a POSIX zone: needs no tzdata
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_an_iso_time_without_a_zone_is_local_time(five_hours_west: None) -> None:
    """A user five hours west of UTC typing 10:00 means 10:00 there, 15:00 UTC."""
    assert parse_since("2026-11-26T10:00") == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["5y", "yesterday", "1.5h", "-1h", ""])
def test_anything_else_is_an_error_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(DstackError) as info:
        parse_since(text, now=NOW)

    assert info.value.message == f"cannot read the time '{text}'"
    assert info.value.hint is not None and "Ns, Nm, Nh, Nd, Nw" in info.value.hint


@pytest.mark.parametrize(
    "text", ["99999999999999w", "0001-01-01T00:00+05:00"], ids=["huge-count", "before-year-1-in-utc"]
)
def test_a_time_before_any_log_means_every_line(text: str) -> None:
    """A count or time too far back for a datetime reads as "from the start" (it was a
    traceback, OverflowError)."""
    assert parse_since(text, now=NOW) == datetime(1970, 1, 1, tzinfo=UTC)


def test_a_time_past_the_last_datetime_is_an_error() -> None:
    """9999-12-31T23:59-05:00 is after the last time a datetime holds, in UTC."""
    with pytest.raises(DstackError) as info:
        parse_since("9999-12-31T23:59-05:00", now=NOW)

    assert info.value.message == "cannot read the time '9999-12-31T23:59-05:00'"
