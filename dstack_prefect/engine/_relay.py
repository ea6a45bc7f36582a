"""`ports: ["APP:LOCAL"]` for steps on the host network: a TCP relay from 127.0.0.1:LOCAL to
127.0.0.1:APP for as long as the step runs, where old dstack 0.9.2 had `ssh -L LOCAL:host:APP`.

The app binds APP ($PORT_i); the user opens http://127.0.0.1:LOCAL. Each connection gets two
pump threads; closing the relay closes the listener and every live connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from dstack_prefect.errors import DstackError

BUFFER = 1 << 16


class PortRelay:
    """Listen on 127.0.0.1:``local`` and relay each connection to 127.0.0.1:``target``."""

    def __init__(self, local: int, target: int) -> None:
        self.local, self.target = local, target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", local))
        except OSError as exc:
            self._listener.close()
            msg = f"local port {local} (mapped to the app's port {target}) is not free: {exc.strerror}"
            raise DstackError(msg, hint=f'free it, or map another one: ports: ["{target}:LOCAL"]') from exc
        self._listener.listen(64)
        self._listener.settimeout(0.5)  # the accept loop notices close() within half a second
        self._closed = threading.Event()
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"relay-{local}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:  # the app is not listening (yet): the client sees the connection close
            conn.close()
            return
        upstream.settimeout(None)
        conn.settimeout(None)
        with self._lock:
            if self._closed.is_set():
                conn.close()
                upstream.close()
                return
            self._live.update((conn, upstream))
        back = threading.Thread(target=self._pump, args=(upstream, conn), daemon=True)
        back.start()
        self._pump(conn, upstream)
        back.join()
        with self._lock:
            self._live.difference_update((conn, upstream))
        conn.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(BUFFER):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._live.clear()
        self._thread.join(timeout=2)


def open_relays(local_ports: list[int | None], ports: list[int]) -> list[PortRelay]:
    """A relay for each mapped port (``local_ports[i]`` set and unlike ``ports[i]``); on an
    error, the relays opened so far are closed again."""
    relays: list[PortRelay] = []
    try:
        for local, port in zip(local_ports, ports, strict=True):
            if local is not None and local != port:
                relays.append(PortRelay(local, port))
    except DstackError:
        for relay in relays:
            relay.close()
        raise
    return relays
