"""Make the real firmware run under CPython.

The firmware package itself (`concentrator`) is installed with the project
(pyproject.toml maps it to firmware/concentrator). What it needs besides is
the u-prefixed module names MicroPython provides and micropython-lib's
umqtt.simple, fetched at install time into build/mplib (tools/bootstrap.sh):
it is loaded from there by file, not through sys.path.
"""
import binascii
import importlib.util
import os
import struct
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPLIB = os.path.join(ROOT, "build", "mplib")
UMQTT_SIMPLE = os.path.join(MPLIB, "umqtt", "simple.py")


def load_umqtt(path=UMQTT_SIMPLE):
    """Import micropython-lib's umqtt/simple.py from `path` as `umqtt.simple`."""
    if not os.path.exists(path):
        raise RuntimeError("umqtt.simple is missing (%s): run `bash tools/bootstrap.sh`" % path)
    pkg = sys.modules.get("umqtt")
    if pkg is None:
        pkg = types.ModuleType("umqtt")
        pkg.__path__ = [os.path.dirname(path)]
        sys.modules["umqtt"] = pkg
    spec = importlib.util.spec_from_file_location("umqtt.simple", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["umqtt.simple"] = mod
    spec.loader.exec_module(mod)
    pkg.simple = mod
    return mod


def setup():
    sys.modules.setdefault("ustruct", struct)
    sys.modules.setdefault("ubinascii", binascii)
    if "usocket" not in sys.modules:
        # umqtt.simple imports usocket at import time; the firmware's MQTT
        # link replaces it with the HAL's socket module before connecting.
        sys.modules["usocket"] = types.ModuleType("usocket")
    if "umqtt.simple" not in sys.modules:
        load_umqtt()


setup()
