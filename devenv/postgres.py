"""A PostgreSQL cluster of one's own for tests: ``initdb`` into a temp dir, start, delete."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from devenv.ports import LOOPBACK, free_port
from devenv.service import LocalService

SERVER_URL_VARIABLE = "MONITOR_TEST_POSTGRES_URL"
INSTALL_HINT = "run scripts/bootstrap.sh or apt-get install -y postgresql"
SUPERUSER = "postgres"

# A throw-away cluster trades durability for speed: a crash loses it, and that is fine.
_SETTINGS = """
# Added by devenv.ThrowawayPostgres
listen_addresses = '{host}'
unix_socket_directories = '{sockets}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
jit = off
log_min_messages = warning
"""
_START_ATTEMPTS = 3
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or a cluster or database could not be made."""


def find_bindir() -> Path:
    """The directory with ``initdb`` and ``pg_ctl``: PATH, ``pg_config --bindir``, Debian's."""
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return directory
    raise PostgresError(
        "PostgreSQL server programs (initdb, pg_ctl) are not installed: not on PATH, not in "
        f"`pg_config --bindir`, not in /usr/lib/postgresql/*/bin. Fix: {INSTALL_HINT}"
    )


class ThrowawayPostgres(LocalService):
    """A PostgreSQL server for tests, and fresh empty databases on it.

    Unless given a server, it makes its own cluster in a temp dir: 127.0.0.1 and a free port
    only, its unix socket in that dir, trust authentication for the ``postgres`` superuser,
    durability off for speed. As root it runs the server as the ``postgres`` system user
    (PostgreSQL refuses to run as root). Use it as a context manager (started on entry,
    stopped on exit) or call ``start()`` and ``stop()``.

    Args:
        server_url: an existing server to use instead, whose user may create databases; it
            is neither started nor stopped, only the databases made here are dropped.
            Default: the ``MONITOR_TEST_POSTGRES_URL`` environment variable, if set.
        start_timeout: seconds to wait for the own cluster to accept connections.
    """

    def __init__(self, server_url: str | None = None, *, start_timeout: float = 60.0) -> None:
        self._server_url = server_url or os.environ.get(SERVER_URL_VARIABLE) or None
        self._start_timeout = start_timeout
        self._url: URL | None = None
        self._directory: Path | None = None
        self._bindir: Path | None = None
        self._databases: set[str] = set()

    def __repr__(self) -> str:
        where = "not started" if self._url is None else self.url
        return f"ThrowawayPostgres({where})"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's ``postgres`` database, e.g.
        ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
        if self._url is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return self._url.render_as_string(hide_password=False)

    @property
    def log_path(self) -> Path | None:
        """The own cluster's server log; None when using an existing server or stopped."""
        return None if self._directory is None else self._directory / "postgres.log"

    def start(self) -> None:
        """Make and start the cluster (or check the given server). No-op if started."""
        if self._url is not None:
            return
        if self._server_url is not None:
            url = _sqlalchemy_url(self._server_url)
            _admin(url, sql.SQL("SELECT 1"))
        else:
            url = self._start_cluster()
        self._url = url

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (lower-case letters, digits, ``_``); its URL."""
        if not _DATABASE_NAME.fullmatch(name):
            raise PostgresError(
                f"database name {name!r} is not a plain identifier: use 1-63 lower-case "
                "letters, digits and underscores, not starting with a digit"
            )
        url = self._admin_url()
        _admin(url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.add(name)
        return url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database``, closing its open connections."""
        _admin(
            self._admin_url(),
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )
        self._databases.discard(name)

    def stop(self) -> None:
        """Stop the own cluster and delete it; on a given server, drop the databases made."""
        try:
            if self._directory is not None:
                self._stop_cluster(self._directory)
            elif self._url is not None:
                for name in sorted(self._databases):
                    self.drop_database(name)
        finally:
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._url = None
            self._databases.clear()

    def pause(self) -> None:
        """Stop the own cluster's server but keep its data, to simulate a database outage."""
        if self._directory is None or self._url is None:
            raise PostgresError("pause() needs an own, started cluster")
        self._run("pg_ctl", "stop", "-D", "data", "--mode=fast", "--wait")

    def resume(self) -> None:
        """Start a paused cluster again on the same port."""
        if self._directory is None or self._url is None:
            raise PostgresError("resume() needs an own cluster that was started")
        self._run(
            "pg_ctl", "start", "-D", "data", "-l", "postgres.log", "--wait",
            f"--timeout={int(self._start_timeout)}", "-o", f"-p {self._url.port}",
        )  # fmt: skip

    def _admin_url(self) -> URL:
        if self._url is None:
            raise PostgresError("the PostgreSQL server is not started; call start() first")
        return self._url

    def _start_cluster(self) -> URL:
        self._bindir = find_bindir()
        directory = self._directory = Path(tempfile.mkdtemp(prefix="monitor-postgres-"))
        account = _server_account()
        if account is not None:
            os.chown(directory, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", "data", "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        with (directory / "data" / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(host=LOOPBACK, sockets=directory))
        port = self._start_server()
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host=LOOPBACK, port=port, database="postgres"
        )

    def _start_server(self) -> int:
        attempts_left = _START_ATTEMPTS
        while True:
            port = free_port()
            try:
                self._run(
                    "pg_ctl", "start", "-D", "data", "-l", "postgres.log", "--wait",
                    f"--timeout={int(self._start_timeout)}", "-o", f"-p {port}",
                )  # fmt: skip
            except PostgresError:
                attempts_left -= 1
                # Someone took the free port before the server bound it: try another one.
                if attempts_left == 0 or "could not bind" not in self._log():
                    raise
            else:
                return port

    def _stop_cluster(self, directory: Path) -> None:
        if (directory / "data" / "postmaster.pid").exists():
            # Immediate: no shutdown checkpoint, the cluster is deleted next anyway.
            self._run("pg_ctl", "stop", "-D", "data", "--mode=immediate", "--wait")

    def _run(self, tool: str, *args: str) -> None:
        assert self._bindir is not None
        assert self._directory is not None
        account = _server_account()
        result = subprocess.run(
            [str(self._bindir / tool), *args],
            cwd=self._directory,
            capture_output=True,
            text=True,
            check=False,
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(
                f"{tool} {' '.join(args)} failed (exit {result.returncode}) in "
                f"{self._directory}:\n{output}\nServer log:\n{self._log() or '(empty)'}"
            )

    def _log(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace").strip()


def _server_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError(
            "running as root, but there is no 'postgres' system user to run PostgreSQL as "
            f"(it refuses to run as root). Fix: {INSTALL_HINT}, or run as a non-root user"
        ) from None


def _sqlalchemy_url(raw: str) -> URL:
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin(url: URL, statement: sql.SQL | sql.Composed) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement)
    except psycopg.Error as exc:
        where = url.render_as_string(hide_password=True)
        raise PostgresError(f"{statement.as_string()} on {where} failed: {exc}") from exc


def _version(bindir: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", bindir.parent.name)
    return tuple(int(part) for part in digits)
