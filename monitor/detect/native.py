"""Which code this process detects with: the mypyc-compiled detection or its Python source.

``python -m devenv.native`` compiles this package in place (half the cost per message) and
writes ``native.stamp``: the digest of the sources it compiled. Compiled modules load before
their ``.py`` beside them, so a module edited after compiling would silently run old code; when
the digest no longer matches, or ``MONITOR_NATIVE=0`` asks for it, the Python source is loaded
instead. Imported by the package before any of its modules, and never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = __name__.rpartition(".")[0]
HERE = Path(__file__).parent
STAMP = HERE / "native.stamp"
NOT_COMPILED = frozenset({"__init__", "native"})

_log = logging.getLogger(__name__)


def compiled_sources() -> list[Path]:
    """The package's modules that are compiled, in a stable order."""
    return sorted(p for p in HERE.glob("*.py") if p.stem not in NOT_COMPILED)


def digest(sources: Sequence[Path]) -> str:
    sha = hashlib.sha256()
    for source in sources:
        sha.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return sha.hexdigest()


def compiled_files() -> list[Path]:
    """The compiled modules (and their shared library) beside the sources."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [p for p in HERE.iterdir() if p.name.endswith(suffixes)]


def choose(stamp: str | None, current: str, compiled: bool, env: str | None) -> tuple[bool, str]:
    """(use the compiled modules?, why not, or "" when they are used)."""
    if not compiled:
        return False, "not compiled (python -m devenv.native compiles it)"
    if env == "0":
        return False, "MONITOR_NATIVE=0"
    if stamp != current:
        return False, (
            f"the compiled copy is older than the sources in {HERE}; running the source "
            "(scripts/bootstrap.sh or python -m devenv.native recompiles)"
        )
    return True, ""


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds this package's modules as ``.py`` files, ahead of their compiled copies."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        source = HERE / f"{name}.py"
        if package != PACKAGE or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _select() -> tuple[bool, str]:
    sources = compiled_sources()
    stamp = STAMP.read_text().strip() if STAMP.is_file() else None
    compiled, env = bool(compiled_files()), os.getenv("MONITOR_NATIVE")
    use, why = choose(stamp, digest(sources), compiled, env)
    if not use:
        sys.meta_path.insert(0, _SourceFinder())
        if compiled and env != "0":
            _log.warning("detection: %s", why)
    return use, why


COMPILED, WHY_NOT = _select()
"""Whether this process runs the compiled detection, and if not, why."""
