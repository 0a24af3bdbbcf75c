#!/usr/bin/env bash
# Runs the main job: the head-end with a simulated site on the embedded
# defaults (SQLite file, embedded amqtt broker, accelerated clock).
# Extra arguments go to `wattkeeper demo`, e.g. `bash tools/demo.sh --speed 600`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
exec .venv/bin/wattkeeper demo "$@"
