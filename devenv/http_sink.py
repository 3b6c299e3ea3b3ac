"""An HTTP server of one's own that keeps every request it receives (stdlib, in a thread).

Run ``python -m devenv.http_sink [--port N]`` for a demo: it prints its URL on the first line
of stdout, then one line per received request, until SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devenv.ports import LOOPBACK, free_port
from devenv.service import LocalService

_START_ATTEMPTS = 3


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case (``headers["x-a"]`` finds ``X-A``)."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        self._by_name = {name.lower(): value for name, value in self._items}

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived, and the status the sink answered it with."""

    method: str
    path: str
    headers: Headers
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HttpSink(LocalService):
    """A local HTTP server that answers every request and keeps it in :attr:`requests`.

    Use it as a context manager (started on entry, stopped on exit) or call ``start()`` and
    ``stop()``, as often as needed: after the first start it always comes back on the same
    port. Connections are closed after each response (HTTP/1.0), so a stopped sink really
    refuses the next request.

    Args:
        port: TCP port to listen on. Default: a free one.
        status: the status every request is answered with, unless :meth:`answer` queued
            another for the next few requests.
        on_request: called with each request, in the server's thread, before it is answered.
    """

    host = LOOPBACK

    def __init__(
        self,
        port: int | None = None,
        *,
        status: int = 200,
        on_request: Callable[[ReceivedRequest], None] | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self._port_fixed = port is not None
        self.status = status
        self.on_request = on_request
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._queued: deque[int] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"HttpSink({self.url}, {state}, {len(self.requests)} requests)"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; append any path, the sink accepts them all."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, oldest first, whatever the answer."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[ReceivedRequest]:
        """The requests answered with a 2xx status."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def answer(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``, then :attr:`status` again."""
        with self._lock:
            self._queued.extend([status] * times)

    def clear(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    def start(self) -> None:
        """Start listening (no-op if running)."""
        if self._server is not None:
            return
        attempts = 1 if self._port_fixed else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                server = _Server((self.host, self.port), _Handler, self)
            except OSError:
                if attempt == attempts:
                    raise
                self.port = free_port()  # taken between choosing and binding
                continue
            self._server = server
            self._port_fixed = True  # restarts must come back where clients expect it
            self._thread = threading.Thread(
                # A short poll interval: shutdown() waits up to one interval.
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"http-sink-{self.port}",
                daemon=True,
            )
            self._thread.start()
            return

    def stop(self) -> None:
        """Stop listening (no-op if stopped); the received requests are kept."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _receive(self, method: str, path: str, headers: Headers, body: bytes) -> int:
        with self._lock:
            status = self._queued.popleft() if self._queued else self.status
        request = ReceivedRequest(method, path, headers, body, status)
        if self.on_request is not None:
            self.on_request(request)
        with self._lock:
            self._requests.append(request)
        return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sink: HttpSink
    ) -> None:
        self.sink = sink
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in the sink, not on stderr."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = Headers([(name, str(value)) for name, value in self.headers.items()])
        status = self.server.sink._receive(self.command, self.path, headers, body)
        reply = json.dumps({"ok": 200 <= status < 300}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a sink until interrupted, printing its URL and then each request."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)

    def show(request: ReceivedRequest) -> None:
        print(f"{request.method} {request.path} {request.body[:200]!r}", flush=True)

    with HttpSink(args.port, on_request=show) as sink:
        print(sink.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
