"""The "APP:LOCAL" relay on real loopback sockets (no Prefect needed)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest

from dstack_prefect.engine._relay import PortRelay, open_relays
from dstack_prefect.errors import DstackError
from dstack_prefect.server import free_port
from tests.conftest import QuietHandler, http_server


class Hello(QuietHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]  # an HTTPServer: (host, port)
        self.reply(f"hello from {port} {'x' * 200_000}".encode())


@pytest.fixture
def app() -> Iterator[int]:
    with http_server(Hello) as port:
        yield port


def get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return bytes(resp.read())


def test_the_local_port_answers_with_the_apps_content(app: int) -> None:
    """A request to LOCAL gets the app's whole answer (200 KB, several reads), twice over."""
    local = free_port()
    relay = PortRelay(local, app)
    try:
        first, second = get(local), get(local)
    finally:
        relay.close()

    assert first == second == get(app)
    assert first.startswith(f"hello from {app} ".encode())


def test_after_close_the_local_port_refuses(app: int) -> None:
    local = free_port()
    PortRelay(local, app).close()

    with pytest.raises(OSError):
        get(local)


def test_a_busy_local_port_is_a_clear_error_and_opens_nothing(app: int) -> None:
    """The second mapping's port is taken: no relay stays open, and the error names both ports."""
    first, busy = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", busy))
        taken.listen(1)
        with pytest.raises(DstackError) as err:
            open_relays([first, busy], [app, app])

    assert f"local port {busy} (mapped to the app's port {app}) is not free" in err.value.message
    with pytest.raises(OSError):
        get(first)


def test_unmapped_and_same_number_ports_get_no_relay(app: int) -> None:
    assert open_relays([None, app], [free_port(), app]) == []
