#!/usr/bin/env bash
# The test suite: installs what is missing, then pytest with any arguments given
# (always -q; add -v or -vv for more). Exits with pytest's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
