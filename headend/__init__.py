"""Wattkeeper head-end: FastAPI + SQLModel server, MQTT ingest, ledger, dashboard."""
import os as _os
import sys as _sys

# The head-end imports the very same wire-format and tariff modules that run
# on the board (firmware/concentrator). Make them importable from a checkout.
_FIRMWARE = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "firmware")
try:
    import concentrator.protocol  # noqa: F401
except ImportError:
    if _os.path.isdir(_FIRMWARE) and _FIRMWARE not in _sys.path:
        _sys.path.insert(0, _FIRMWARE)
