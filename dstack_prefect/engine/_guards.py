"""What keeps a run honest while its flow process lives, and after it dies.

- ``Reaper``: starts engine/_reaper.py and tells it about step process groups, task runs and
  containers; if this process dies it cleans up and marks the run Crashed.
- ``CancelWatcher``: polls the flow run's state; a Cancelling state (from `dstack stop`, the
  Prefect UI, the API) calls back with "stop" (graceful) or "abort" (`dstack stop -x`), and so
  does a stop that came before the flow started (read from the run's history at once).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._runs import state_history, stop_before_start
from dstack_prefect.engine._status import ABORTED, ABORTING


class Reaper:
    def __init__(self, api_url: str, flow_run_id: str) -> None:
        script = Path(__file__).with_name("_reaper.py")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(script), api_url, flow_run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._lock = threading.Lock()

    def tell(self, line: str) -> None:
        with self._lock:
            stdin = self._proc.stdin
            if stdin is None or stdin.closed:
                return
            try:
                stdin.write(line.encode() + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def done(self) -> None:
        self.tell("done")
        with self._lock:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class CancelWatcher(threading.Thread):
    """Calls ``on_cancel("stop" | "abort")`` when the flow run turns Cancelling, or Cancelled
    (a stop of a run that had not started, written as it started).

    Its first look, at once, reads the run's history: a stop that came before the flow started,
    whose Cancelled Prefect's Running then replaced, counts too. ``looked`` is set once that
    look is done: the flow starts no step before it.
    """

    def __init__(
        self, api_url: str, flow_run_id: str, on_cancel: Callable[[str], None], interval: float = 0.5
    ) -> None:
        super().__init__(name="dstack-cancel-watcher", daemon=True)
        self._api = PrefectAPI(api_url, timeout=10)
        self._id = flow_run_id
        self._on_cancel = on_cancel
        self._interval = interval
        self._halt = threading.Event()
        self._mode: str | None = None
        self.looked = threading.Event()

    def run(self) -> None:
        try:
            try:
                self._cancel(stop_before_start(state_history(self._api, self._id)))
            except Exception:  # noqa: BLE001 - a blip of the server: the polls below still see a stop
                pass
            finally:
                self.looked.set()
            while not self._halt.wait(self._interval):
                try:
                    fr = self._api.flow_run(self._id)
                except Exception:  # noqa: BLE001 - a blip of the server must not kill the watcher
                    continue
                state = (fr or {}).get("state") or {}
                if state.get("type") in ("CANCELLING", "CANCELLED"):
                    self._cancel("abort" if state.get("name") in (ABORTING, ABORTED) else "stop")
        finally:
            self._api.close()

    def _cancel(self, mode: str | None) -> None:
        if mode is not None and mode != self._mode:  # a stop may be escalated to an abort
            self._mode = mode
            self._on_cancel(mode)

    def halt(self) -> None:
        self._halt.set()
