"""The firmware's pure modules pass the same cases under CPython and inside the
real MicroPython VM (npm WebAssembly port): protocol (HMAC, seal/verify,
check_record), Modbus CRC/decoding/f32_to_int, DL/T 645 codec, config.check,
credit. The cases are written once in tests/vm_cases/pure_cases.py."""
import os
import sys

import pytest

from tests.support import ROOT

from sim.mpvm import run_micropython  # noqa: E402
from tests.firmware.vm_cases import pure_cases  # noqa: E402

CASES = pure_cases.cases()
SRC = os.path.join(ROOT, "tests", "firmware", "vm_cases", "pure_cases.py")


@pytest.fixture(scope="module")
def vm_results():
    with open(SRC) as f:
        src = f.read()
    out = run_micropython("import pure_cases\npure_cases.run_all()\n",
                          files={"/pure_cases.py": src}, timeout=120)
    res = {}
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        name = rest.split(":")[0]
        res[name] = (status, line)
    return res


@pytest.mark.parametrize("name", CASES)
def test_cpython(name):
    getattr(pure_cases, name)()


@pytest.mark.parametrize("name", CASES)
def test_micropython_vm(name, vm_results):
    assert name in vm_results, "case did not run in the VM"
    status, line = vm_results[name]
    assert status == "ok", line


def test_every_case_ran_in_the_vm(vm_results):
    assert sorted(vm_results) == CASES
