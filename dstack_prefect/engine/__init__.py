"""The Prefect side: the run flow, launching runs, and reading/controlling them.

Importing this package does not import prefect; `launch` and the flow import it on use.
"""

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._runs import (
    LogLine,
    LogReader,
    RunRow,
    follow,
    humanize,
    list_runs,
    parse_since,
    remove_run,
    request_stop,
    run_row,
    wait_finished,
)
from dstack_prefect.engine._status import STATUS_COLORS, dstack_status, is_finished

__all__ = [
    "STATUS_COLORS",
    "LogLine",
    "LogReader",
    "PrefectAPI",
    "RunRow",
    "dstack_status",
    "follow",
    "humanize",
    "is_finished",
    "list_runs",
    "parse_since",
    "remove_run",
    "request_stop",
    "run_row",
    "wait_finished",
]
