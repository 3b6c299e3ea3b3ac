"""A Mosquitto broker of one's own, started from the checked-in ``mosquitto.conf``.

Run ``python -m devenv.broker [--port N]`` to start one for a demo: it prints its port on the
first line of stdout and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from devenv.ports import LOOPBACK, free_port
from devenv.service import LocalService

CONFIG = Path(__file__).resolve().parent.parent / "mosquitto.conf"
INSTALL_HINT = "run scripts/bootstrap.sh or apt-get install -y mosquitto"

# Settings the private copy of the config takes from the Broker, not from the checked-in file.
_OVERRIDDEN = frozenset({"persistence_location", "pid_file", "user"})
_START_ATTEMPTS = 3
_LOG = "mosquitto.log"


class BrokerError(RuntimeError):
    """Mosquitto is missing, or would not start or stop."""


def find_mosquitto() -> Path:
    """The ``mosquitto`` executable: on PATH, else where Debian installs it."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError(f"mosquitto is not installed (not on PATH, not in /usr/sbin): {INSTALL_HINT}")


class Broker(LocalService):
    """A private Mosquitto on 127.0.0.1, with its persistence in a temp dir of its own.

    Use it as a context manager (started on entry; stopped and its temp dir removed on exit)
    or call ``start()`` and ``close()``. Between them it may be stopped, started, restarted
    or killed any number of times: it keeps its port and its persistence, so persistent
    sessions and their queued QoS 1 messages survive a ``stop()``/``start()`` or
    ``restart()`` (not necessarily a ``kill()``, which is a crash).

    Args:
        port: TCP port to listen on. Default: a free one, chosen again if it is taken before
            the first start.
        config: the Mosquitto config to start from; its single ``listener`` line gets this
            broker's port. Default: the repository's ``mosquitto.conf``.
        ready_timeout: seconds ``start()`` waits for the port to accept connections.
    """

    host = LOOPBACK

    def __init__(
        self, port: int | None = None, *, config: Path = CONFIG, ready_timeout: float = 10.0
    ) -> None:
        self.port = port if port is not None else free_port()
        self._port_fixed = port is not None
        self._config = config
        self._ready_timeout = ready_timeout
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Broker({self.host}:{self.port}, {state})"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The broker's stderr, kept across restarts; None before start and after close."""
        return None if self._directory is None else self._directory / _LOG

    def log(self) -> str:
        """What the broker has logged so far (errors and warnings, see ``mosquitto.conf``)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    def start(self) -> None:
        """Start the broker and wait until it accepts connections. No-op if it is running."""
        if self.running:
            return
        binary = find_mosquitto()
        attempts = 1 if self._port_fixed else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self._spawn(binary)
            try:
                self.wait_ready()
            except BrokerError:
                self.kill()
                if attempt == attempts or "Address already in use" not in self.log():
                    raise
                self.port = free_port()  # someone took the port between choosing and binding
            else:
                self._port_fixed = True  # restarts must come back where clients expect it
                return

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the broker's port accepts TCP connections.

        Raises:
            BrokerError: the broker exited, or did not accept within ``timeout`` seconds
                (default: ``ready_timeout``); the message includes the broker's log.
        """
        limit = self._ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if not self.running:
                code = None if self._process is None else self._process.returncode
                raise BrokerError(self._explain(f"mosquitto exited (code {code}) before ready"))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerError(self._explain(f"mosquitto did not accept within {limit:g} s"))
            time.sleep(0.02)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker cleanly (SIGTERM), so it writes its persistence. No-op if stopped."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BrokerError(
                self._explain(f"mosquitto did not stop within {timeout:g} s of SIGTERM; killed")
            ) from None

    def restart(self) -> None:
        """Stop cleanly and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """Kill the broker (SIGKILL), like a crash: unsaved persistence is lost."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        if self._process is None:
            raise BrokerError("the broker was never started; call start() first")
        return self._process.wait()

    def close(self) -> None:
        """Stop the broker and delete its temp dir (persistence and log)."""
        try:
            self.stop()
        finally:
            self.kill()
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None

    def _private_directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="monitor-mosquitto-"))
        return self._directory

    def _spawn(self, binary: Path) -> None:
        config = self._write_config()
        with (self._private_directory() / _LOG).open("ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it cleanly.
            self._process = subprocess.Popen(
                [str(binary), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _write_config(self) -> Path:
        try:
            lines = self._config.read_text().splitlines()
        except OSError as exc:
            raise BrokerError(f"cannot read the broker config {self._config}: {exc}") from exc
        listeners = [line for line in lines if _key(line) == "listener"]
        if len(listeners) != 1:
            raise BrokerError(
                f"{self._config} has {len(listeners)} 'listener' lines; the test broker needs "
                "exactly one, which it moves to a free port"
            )
        directory = self._private_directory()
        kept = [
            f"listener {self.port} {self.host}" if _key(line) == "listener" else line
            for line in lines
            if _key(line) not in _OVERRIDDEN
        ]
        kept += [
            "",
            "# Added by devenv.Broker: everything this broker writes stays in its temp dir.",
            f"persistence_location {directory}/",
            f"pid_file {directory}/mosquitto.pid",
            # Run as whoever started it (root stays root) so it can write that temp dir.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        path = directory / "mosquitto.conf"
        path.write_text("\n".join(kept) + "\n")
        return path

    def _explain(self, what: str) -> str:
        log = self.log().strip() or "(empty)"
        return f"{what} on {self.host}:{self.port}. Its log ({self.log_path}):\n{log}"


def _key(line: str) -> str:
    words = line.split(maxsplit=1)
    return words[0] if words and not words[0].startswith("#") else ""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    """Start a broker, print its port, run until SIGINT or SIGTERM; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m devenv.broker",
        description="Run a private Mosquitto from mosquitto.conf until SIGINT or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    # Both, explicitly: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Broker(args.port) as broker:
            print(broker.port, file=out, flush=True)
            code = broker.wait()
            print(f"mosquitto exited (code {code}). Its log:\n{broker.log()}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
