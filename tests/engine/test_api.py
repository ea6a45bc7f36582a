"""The REST client against a small real HTTP server in a thread (what Prefect Cloud checks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dstack_prefect.engine import PrefectAPI
from dstack_prefect.errors import ServerError
from tests.conftest import QuietHandler, http_server


class Recorder(QuietHandler):
    """Answers every POST with `[]` (or HTML for /html) and keeps each request's headers."""

    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.seen.append(dict(self.headers))
        self.reply(b"<html>not prefect</html>" if self.path.endswith("/html") else b"[]")


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen.clear()
    with http_server(Recorder) as port:
        yield f"http://127.0.0.1:{port}/api"


def test_an_api_key_is_sent_as_a_bearer_token(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PREFECT_API_KEY set (Prefect Cloud), every request carries it; without, none does."""
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_test")
    with PrefectAPI(server) as api:
        api.call("POST", "/flow_runs/filter", {})
    monkeypatch.delenv("PREFECT_API_KEY")
    with PrefectAPI(server) as api:
        api.call("POST", "/flow_runs/filter", {})

    assert ["Bearer pnu_test", None] == [h.get("Authorization") for h in Recorder.seen]


def test_an_answer_that_is_not_json_is_a_clear_error(server: str) -> None:
    """A URL that reaches some other web server fails saying to check PREFECT_API_URL."""
    with PrefectAPI(server) as api, pytest.raises(ServerError) as info:
        api.call("POST", "/html", {})

    assert "did not answer like a Prefect server" in info.value.message
    assert "PREFECT_API_URL" in (info.value.hint or "")
