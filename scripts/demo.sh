#!/usr/bin/env bash
# The demo: installs what is missing, then runs broker, monitor and a simulated fleet
# (scripts/demo.py). Extra arguments go to demo.py (--devices, --days, --seed, --seconds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
