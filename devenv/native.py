"""Compiles detection and the rules engine with mypyc, in place: ``python -m devenv.native
[--if-stale]``.

They are most of the daemon's cost per message; compiled, they take about half the time.
The compiled modules sit beside their sources and ``monitor/native.stamp`` records the
sources' digest, so that :mod:`monitor.native` runs the source instead once they change.
Exits non-zero if compiling fails; the monitor then runs the Python source, only slower.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections.abc import Sequence

from mypyc.build import mypycify
from setuptools import setup

from monitor import native


def compile_native() -> None:
    # Unlinked, not overwritten: a process that has the old copies loaded keeps its own.
    native.STAMP.unlink(missing_ok=True)
    for path in native.compiled_files():
        path.unlink()
    sources = native.compiled_sources()
    with tempfile.TemporaryDirectory(prefix="mypyc-") as build, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools' notes on pyproject.toml, not ours
        setup(
            name="monitor-native",
            # One group, so that calls between the modules stay native.
            ext_modules=mypycify(
                [str(s) for s in sources], target_dir=build, group_name=native.GROUP
            ),
            script_args=[
                *("-q", "build_ext", "--inplace"),
                *("--build-temp", build, "--build-lib", build),
            ],
        )
    native.STAMP.write_text(native.digest(sources) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.native", description=__doc__)
    parser.add_argument(
        "--if-stale", action="store_true", help="do nothing if the compiled copy is up to date"
    )
    args = parser.parse_args(argv)
    if args.if_stale and native.COMPILED:
        return 0
    try:
        compile_native()
    except (SystemExit, Exception) as exc:  # setuptools reports a failed build by exiting
        print(f"devenv.native: compiling failed ({exc}); the source runs", file=sys.stderr)
        return 1
    print(f"devenv.native: compiled {len(native.compiled_sources())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
