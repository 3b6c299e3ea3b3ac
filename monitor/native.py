"""Which code this process runs: the mypyc-compiled detection and rules engine, or their source.

``python -m devenv.native`` compiles the modules of :data:`compiled_sources` in place, as one
group (calls between detection and the rules engine stay native), and writes ``native.stamp``:
the digest of the sources it compiled. Compiled modules load before their ``.py`` beside them,
so a module edited after compiling would silently run old code; when the digest no longer
matches, or ``MONITOR_NATIVE=0`` asks for it, every one of them is loaded from source instead
(the group is one build: half of it compiled against the other half's source would not agree
on their classes' layout). Imported by :mod:`monitor.detect` and :mod:`rules` before any of
their modules, and never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
STAMP = Path(__file__).with_name("native.stamp")
GROUP = "monitor.compiled"
"""The group's shared library is named inside ``monitor``, so that it is found wherever the
package is."""
_DETECTION = ROOT / "monitor" / "detect"
_RULES_ENGINE = ROOT / "rules" / "engine.py"
"""Only the engine of :mod:`rules`: the rest is pydantic models, loading and watching files."""

_log = logging.getLogger(__name__)


def compiled_sources() -> list[Path]:
    """The modules that are compiled, in a stable order: every detection module (a new
    detector is compiled without being listed) and the rules engine."""
    detection = [p for p in _DETECTION.glob("*.py") if p.stem != "__init__"]
    return sorted([*detection, _RULES_ENGINE])


def digest(sources: Sequence[Path], root: Path = ROOT) -> str:
    sha = hashlib.sha256()
    for source in sources:
        name = source.relative_to(root).as_posix()
        sha.update(name.encode() + b"\0" + source.read_bytes() + b"\0")
    return sha.hexdigest()


def compiled_files() -> list[Path]:
    """The compiled modules and the group's shared library, beside the sources."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    folders = {STAMP.parent, *(source.parent for source in compiled_sources())}
    return sorted(p for folder in folders for p in folder.iterdir() if p.name.endswith(suffixes))


def module_name(source: Path, root: Path = ROOT) -> str:
    return ".".join(source.relative_to(root).with_suffix("").parts)


def choose(stamp: str | None, current: str, compiled: bool, env: str | None) -> tuple[bool, str]:
    """(use the compiled modules?, why not, or "" when they are used)."""
    if not compiled:
        return False, "not compiled (python -m devenv.native compiles it)"
    if env == "0":
        return False, "MONITOR_NATIVE=0"
    if stamp != current:
        return False, (
            f"the compiled copy is older than the sources of {', '.join(_packages())}; "
            "running the source (scripts/bootstrap.sh or python -m devenv.native recompiles)"
        )
    return True, ""


def _packages() -> list[str]:
    return sorted({module_name(s).rpartition(".")[0] for s in compiled_sources()})


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules as their ``.py`` files, ahead of their compiled copies."""

    def __init__(self, sources: Mapping[str, Path]) -> None:
        self._sources = sources

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._sources.get(fullname)
        if source is None or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _select() -> tuple[bool, str]:
    sources = compiled_sources()
    stamp = STAMP.read_text().strip() if STAMP.is_file() else None
    compiled, env = bool(compiled_files()), os.getenv("MONITOR_NATIVE")
    use, why = choose(stamp, digest(sources), compiled, env)
    if not use:
        sys.meta_path.insert(0, _SourceFinder({module_name(s): s for s in sources}))
        if compiled and env != "0":
            _log.warning("native: %s", why)
    return use, why


COMPILED, WHY_NOT = _select()
"""Whether this process runs the compiled detection and rules engine, and if not, why."""
