"""What a run whose flow process vanished says: the error its log ends on, and the log's path."""

from __future__ import annotations

from pathlib import Path

from dstack_prefect.engine._runs import gone_message


def test_a_process_that_died_of_an_error_names_it_and_its_log(tmp_path: Path) -> None:
    """A flow process that could not start (a broken install) ends on a traceback: the run's
    message carries its last line, and where the whole traceback is."""
    log = tmp_path / "supervisor.log"
    log.write_text(
        "Traceback (most recent call last):\n"
        '  File "<frozen runpy>", line 198, in _run_module_as_main\n'
        "ImportError: /usr/lib/python3.11/lib-dynload/_ssl.so: undefined symbol: _PyModule_Add\n\n"
    )

    assert (
        "the process running this run is gone (ImportError: /usr/lib/python3.11/lib-dynload/_ssl.so: "
        f"undefined symbol: _PyModule_Add); its log: {log}"
    ) == gone_message(log)


def test_a_killed_process_names_only_its_log(tmp_path: Path) -> None:
    """A process killed from outside (SIGKILL, a reboot) left no error: only the log's path."""
    log = tmp_path / "supervisor.log"
    log.write_text("12:00:01.100 | INFO | Flow run 'x' - step a: running\n")

    assert f"the process running this run is gone; its log: {log}" == gone_message(log)


def test_no_log_no_pointer(tmp_path: Path) -> None:
    """A run started elsewhere has no log here: the message points nowhere."""
    assert "the process running this run is gone" == gone_message(tmp_path / "supervisor.log")
