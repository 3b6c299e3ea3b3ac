"""An SMTP server of one's own that keeps every message it receives (aiosmtpd, in a thread).

Run ``python -m devenv.smtp_sink [--port N]`` for a demo: it prints its port on the first
line of stdout, then one line per received message, until SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Callable, Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

from devenv.ports import LOOPBACK, free_port
from devenv.service import LocalService

_START_ATTEMPTS = 3
_PARSER = BytesParser(_class=EmailMessage, policy=policy.default)


class SmtpSink(LocalService):
    """A local SMTP server that accepts everything and keeps it, parsed, in :attr:`messages`.

    Use it as a context manager (started on entry, stopped on exit) or call ``start()`` and
    ``stop()``, as often as needed: after the first start it always comes back on the same
    port, so a stop/start pair is an SMTP outage as the monitor sees it.

    Args:
        port: TCP port to listen on. Default: a free one (chosen again if taken before the
            first start).
        on_message: called with each message, in the server's thread, before the server
            answers. If it raises, the server answers ``451`` (try again later) and the
            message is not kept.
        reject: if set, a full SMTP reply such as ``"554 5.7.1 Rejected"`` returned for every
            message instead of accepting it (to simulate a permanent refusal).
    """

    host = LOOPBACK

    def __init__(
        self,
        port: int | None = None,
        *,
        on_message: Callable[[EmailMessage], None] | None = None,
        reject: str | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self._port_fixed = port is not None
        self.on_message = on_message
        self.reject = reject
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._envelopes: list[tuple[str, list[str]]] = []
        self._controller: Controller | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SmtpSink({self.host}:{self.port}, {state}, {len(self.messages)} messages)"

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        """``(MAIL FROM, RCPT TO list)`` of each kept message, in the same order."""
        with self._lock:
            return list(self._envelopes)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()

    def start(self) -> None:
        """Start listening (no-op if running); returns once the server answers."""
        if self._controller is not None:
            return
        attempts = 1 if self._port_fixed else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            controller = Controller(
                _Handler(self), hostname=self.host, port=self.port, enable_SMTPUTF8=True
            )
            try:
                controller.start()
            except Exception:
                if attempt == attempts:
                    raise
                self.port = free_port()  # taken between choosing and binding
                continue
            self._controller = controller
            self._port_fixed = True  # restarts must come back where clients expect it
            return

    def stop(self) -> None:
        """Stop listening (no-op if stopped); the received messages are kept."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _receive(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> str:
        if self.reject is not None:
            return self.reject
        message = _PARSER.parsebytes(content)
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception as exc:
                return f"451 4.3.0 on_message failed: {exc!r}"[:500]
        with self._lock:
            self._messages.append(message)
            self._envelopes.append((mail_from, list(rcpt_tos)))
        return "250 2.0.0 OK: kept"


class _Handler:
    """The aiosmtpd handler: hands each message's envelope to its sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        return self._sink._receive(str(envelope.mail_from), list(envelope.rcpt_tos), raw)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a sink until interrupted, printing its port and then each message's summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    done = threading.Event()

    def show(message: EmailMessage) -> None:
        print(f"{message['To']}: {message['Subject']}", flush=True)

    with SmtpSink(args.port, on_message=show) as sink:
        print(sink.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()


if __name__ == "__main__":
    main()
