"""tools/provision against a blank virtual board (real MicroPython VM on a pty),
with the real mpremote and mpy-cross: the board ends up polling its simulated
meters and reporting over MQTT. Issue 5, check 2."""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import ROOT

from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter  # noqa: E402
from sim.vboard_bus import VboardBus  # noqa: E402
from sim.vboard_host import VirtualBoard  # noqa: E402

MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
KEY = "5a" * 32
pytestmark = pytest.mark.timeout(180)


def site_config(dev, broker_port=1883):
    return {"dev": dev, "key": KEY, "poll_s": 2, "record_s": 10,
            "wifi": {"ssid": "site", "password": "pw"},
            "broker": {"host": "127.0.0.1", "port": broker_port, "keepalive_s": 30},
            "meters": [{"id": "P1", "addr": 1, "model": "prepaid-int"},
                       {"id": "S3", "addr": 3, "model": "sdm120", "parity": "N", "relay": 0}]}


def provision(*args, timeout=150):
    return subprocess.run([sys.executable, "-m", "tools.provision", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_blank_board_becomes_a_concentrator(tmp_path):
    import paho.mqtt.client as mqtt
    dev = "vbprov-%d" % os.getpid()
    got = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-" + dev)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", 1883)
    sub.subscribe("wk/%s/up" % dev)
    sub.loop_start()
    meters = [PrepaidIntMeter(1, load=ConstantLoad(3600), energy_wh=5000),
              SDM120Meter(3, load=ConstantLoad(0), energy_wh=7000)]
    bus = VboardBus(meters).start()
    vb = VirtualBoard(str(tmp_path / "flash"), bus=bus.address).start()
    try:
        bus.contactor(vb.state_dir, 25, [meters[1]], feedback_pin=34)
        assert os.listdir(tmp_path / "flash") == []          # blank: bare MicroPython
        (tmp_path / "site.json").write_text(json.dumps(site_config(dev)))
        r = provision("--port", vb.port, "--config", str(tmp_path / "site.json"),
                      "--board", os.path.join(ROOT, "boards", "esp32-wroom-max485.json"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "[7/7] board status:" in r.stdout
        assert "dev %s " % dev in r.stdout and "mqtt connected" in r.stdout
        assert "meters 2: 2 online, 0 offline, 0 relay open" in r.stdout
        # what is on the flash: compiled firmware, .py entry points, the two JSON files
        flash = tmp_path / "flash"
        names = sorted(os.listdir(flash / "fw" / "a" / "concentrator"))
        assert "core.mpy" in names and not [n for n in names if n.endswith(".py")]
        assert (flash / "main.py").exists() and (flash / "boot.py").exists()
        assert (flash / "fwboot.mpy").exists() and not (flash / "concentrator").exists()
        assert json.loads((flash / "boot.json").read_text())["run"] == "a"
        assert (flash / "lib" / "umqtt" / "simple.mpy").exists()
        assert json.loads((flash / "config.json").read_text())["dev"] == dev
        assert json.loads((flash / "board.json").read_text())["name"] == "esp32-wroom-max485"
        # after provisioning the board runs by itself: readings arrive over MQTT
        t_end = time.monotonic() + 40
        while time.monotonic() < t_end and not any(b'"t":"rd"' in p.replace(b" ", b"")
                                                   and b"[5" in p for p in got):
            time.sleep(0.2)
        rd = [p for p in got if b'"t":"rd"' in p.replace(b" ", b"")]
        assert rd, got[:3]
        body = json.loads(rd[-1].split(b"\n")[0])
        readings = [rec for rec in body["recs"] if rec[1] == 0 and rec[2] == 0]
        assert readings and readings[-1][4][0] >= 5000     # the meter's register, Wh
    finally:
        vb.stop()
        bus.stop()
        sub.loop_stop()
        sub.disconnect()


def test_missing_port_is_one_clear_line(tmp_path):
    (tmp_path / "site.json").write_text(json.dumps(site_config("x1")))
    r = provision("--port", str(tmp_path / "ttyNOPE"), "--config", str(tmp_path / "site.json"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "provision: port %s not found (board not plugged in? see `mpremote devs`)"
        % (tmp_path / "ttyNOPE")]


def test_no_board_answers(tmp_path):
    import pty
    master, slave = pty.openpty()          # a serial port with nothing behind it
    try:
        (tmp_path / "site.json").write_text(json.dumps(site_config("x2")))
        r = provision("--port", os.ttyname(slave), "--config", str(tmp_path / "site.json"))
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("provision: no board answers on "), r.stderr
        assert "Traceback" not in r.stdout + r.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_wrong_micropython_version_is_refused(tmp_path):
    # an mpy-cross that makes .mpy v5 (MicroPython 1.12-1.18) for this v6 board
    fake = tmp_path / "mpy-cross-old"
    fake.write_text("#!%s\nimport sys\nout = sys.argv[sys.argv.index('-o') + 1]\n"
                    "open(out, 'wb').write(b'M\\x05\\x00\\x1f')\n" % sys.executable)
    fake.chmod(0o755)
    vb = VirtualBoard(str(tmp_path / "flash")).start()
    try:
        (tmp_path / "site.json").write_text(json.dumps(site_config("x3")))
        r = provision("--port", vb.port, "--config", str(tmp_path / "site.json"),
                      "--mpy-cross", str(fake))
        assert r.returncode == 1
        assert r.stderr.strip() == (
            "provision: MicroPython 1.27.0 on the board loads .mpy v6, mpy-cross makes v5: "
            "flash a matching MicroPython or install the matching mpy-cross")
        assert os.listdir(tmp_path / "flash") == []        # nothing was written
    finally:
        vb.stop()


def test_bad_config_names_the_field(tmp_path):
    cfg = site_config("x4")
    cfg["key"] = "abc"
    (tmp_path / "site.json").write_text(json.dumps(cfg))
    r = provision("--port", "/dev/null", "--config", str(tmp_path / "site.json"))
    assert r.returncode == 1
    assert r.stderr.strip() == "provision: config: key: hex device key missing (at least 16 bytes)"
