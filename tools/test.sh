#!/usr/bin/env bash
# Runs the whole Wattkeeper test suite (installs what it needs first), on
# two pytest-xdist workers: most tests wait on brokers, boards and
# databases, so two at a time take about two thirds of the time of one.
# A test file runs whole on one worker; the files that share the machine's
# Mosquitto take turns (tests/conftest.py).
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k modbus`;
# WK_TEST_WORKERS=0 runs everything in one process (pdb, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
workers=${WK_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
