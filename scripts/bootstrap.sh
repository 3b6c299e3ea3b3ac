#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need, and only what is missing:
# mosquitto and the PostgreSQL server programs (apt-get), and .venv with the project's
# packages (reinstalled when pyproject.toml changes). Safe to re-run; silent when all is there.
# It never starts, stops or reconfigures services: the tests start their own broker and
# PostgreSQL cluster on free ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bootstrap: $*"; }
fail() { echo "bootstrap: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        fail "need root (or sudo) for: $*"
    fi
}

have_mosquitto() { command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; }

have_postgres_server() {
    command -v initdb >/dev/null && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
    command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]
}

# The newest python3.x on PATH that is at least 3.11.
find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

python=""
if [ ! -x .venv/bin/python ]; then
    python=$(find_python) || fail "Python >= 3.11 is needed (python3.11 or newer on PATH)"
fi

packages=()
have_mosquitto || packages+=(mosquitto)
have_postgres_server || packages+=(postgresql)
# Debian's own python3 ships venv without ensurepip; the python3-venv package adds it.
if [ -n "$python" ] && ! "$python" -c 'import ensurepip' 2>/dev/null; then
    packages+=("python3-venv")
fi

if [ ${#packages[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || fail "missing ${packages[*]}; install them (no apt-get here)"
    say "installing ${packages[*]} (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi

stamp=.venv/.bootstrap-pyproject.sha256
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    say "installing the project and its dev packages into .venv (pyproject.toml changed)"
    log=.venv/.bootstrap-pip.log
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]' >"$log" 2>&1; then
        cat "$log" >&2
        fail "pip install -e '.[dev]' failed (output above, also in $log)"
    fi
    echo "$wanted" >"$stamp"
fi

# Detection and the rules engine compiled with mypyc run in about half the time per message.
# Without a working C compiler they run from source: slower, the same results.
log=.venv/.bootstrap-native.log
if .venv/bin/python -m devenv.native --if-stale >"$log" 2>&1; then
    sed -n 's/^devenv.native: /bootstrap: /p' "$log"
else
    say "compiling detection and rules failed (see $log); they run from source, slower"
fi
