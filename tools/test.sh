#!/usr/bin/env bash
# Runs the whole Wattkeeper test suite (installs what it needs first).
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k modbus`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
