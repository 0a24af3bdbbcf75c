#!/usr/bin/env bash
# Installs everything Wattkeeper needs, and is quick when it is all there:
#   - Debian packages, when missing: the CJK font of PDF receipts and statements
#     (fonts-wqy-zenhei), postgresql-client (database backups); for the tests
#     socat, mosquitto, chromium, pdftotext
#   - .venv with the project and its dev dependencies
#   - npm packages (the MicroPython VM) in node_modules
#   - micropython-lib's umqtt.simple in build/mplib (for the simulator)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need_apt=()
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # TLS tests make their own CA
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# the dashboard's browser test drives Debian's Chromium (playwright never downloads one)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# receipts and statements are PDFs in Chinese and English: a CJK TrueType font
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need_apt+=(fonts-wqy-zenhei)
# the tests read PDFs back as text
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
# `wattkeeper db backup/restore` on PostgreSQL: pg_dump, pg_restore, psql (Debian's, the server's version)
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.wk-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

if [ -f package.json ]; then
  nstamp=node_modules/.wk-installed
  nwant=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "$nstamp" ] || [ "$(cat "$nstamp")" != "$nwant" ]; then
    echo "bootstrap: installing npm packages"
    npm install --no-audit --no-fund --loglevel=error >/dev/null
    echo "$nwant" > "$nstamp"
  fi
fi

if [ ! -f build/mplib/umqtt/simple.py ]; then
  echo "bootstrap: fetching micropython-lib umqtt.simple"
  tmp=$(mktemp -d)
  TMPDIR=$tmp .venv/bin/pip download -q --no-clean --no-deps -d "$tmp/dl" \
      micropython-umqtt.simple >/dev/null 2>&1 || true
  src=$(find "$tmp" -path '*umqtt/simple.py' | head -n 1)
  if [ -z "$src" ]; then
    echo "bootstrap: could not fetch micropython-umqtt.simple" >&2
    exit 1
  fi
  mkdir -p build/mplib/umqtt
  cp "$src" build/mplib/umqtt/simple.py
  touch build/mplib/umqtt/__init__.py
  rm -rf "$tmp"
fi
