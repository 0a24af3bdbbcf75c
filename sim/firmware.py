"""Make the real firmware package importable under CPython.

The firmware is MicroPython code; under CPython it needs the micropython-lib
umqtt.simple fetched at install time (build/mplib) and the u-prefixed module
names MicroPython provides.
"""
import binascii
import os
import struct
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
MPLIB = os.path.join(ROOT, "build", "mplib")


def setup():
    for p in (FIRMWARE, MPLIB):
        if p not in sys.path:
            sys.path.insert(0, p)
    sys.modules.setdefault("ustruct", struct)
    sys.modules.setdefault("ubinascii", binascii)
    if "usocket" not in sys.modules:
        # umqtt.simple imports usocket at import time; the firmware's MQTT
        # link replaces it with the HAL's socket module before connecting.
        sys.modules["usocket"] = types.ModuleType("usocket")
    if not os.path.exists(os.path.join(MPLIB, "umqtt", "simple.py")):
        raise RuntimeError(
            "umqtt.simple is missing from build/mplib: run `bash tools/bootstrap.sh`")


setup()
