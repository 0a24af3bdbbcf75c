"""The technician's console on a virtual board running the real firmware,
driven over the pseudo-terminal with pyserial at 115200 baud, as a technician
with a laptop would. Issue 5, check 4."""
import json
import os
import re
import sys
import time

import pytest
import serial

from tests.support import ROOT

from sim.dlt645_meter import Dlt645Meter  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter  # noqa: E402
from sim.vboard_bus import VboardBus  # noqa: E402
from sim.vboard_host import VirtualBoard  # noqa: E402
from tools.provision import build_image  # noqa: E402

pytestmark = pytest.mark.timeout(120)
KEY = "c0" * 32


class Console:
    def __init__(self, port):
        self.s = serial.Serial(port, 115200, timeout=0.1)

    def read_until(self, token, timeout=10):
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end and token not in buf:
            buf += self.s.read(4096)
        return buf.decode("utf-8", "replace")

    def cmd(self, line, timeout=15):
        self.s.reset_input_buffer()
        self.s.write(line.encode() + b"\r")
        out = self.read_until(b"\r\n>>> ", timeout)
        assert out.endswith("\r\n>>> "), out
        body = out[:-len("\r\n>>> ")]
        echo, _, rest = body.partition("\r\n")
        assert echo == line
        return rest.replace("\r\n", "\n")


def stop_connected(con, tries=4):
    """Let the loop run a poll round, then stop it at the prompt with the
    broker connection up: the tests below read the link's state there. On a
    busy machine the VM's 2-second socket timeout can cut a connection
    (the link backs off and connects again): then the loop runs on until
    it is back."""
    for _ in range(tries):
        time.sleep(2.5)                       # a poll round
        con.s.write(b"\x03")
        stop = con.read_until(b"\r\n>>> ", 10)
        assert "run() resumes" in stop, stop
        if "mqtt 127.0.0.1:1883 connected" in con.cmd("net()"):
            return
        con.s.write(b"run()\r")
        con.read_until(b"mqtt connected", 30)
    raise AssertionError("the board did not stay connected to the broker")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    meters = [PrepaidIntMeter(1, load=ConstantLoad(0), energy_wh=12340),
              SDM120Meter(3, load=ConstantLoad(0), energy_wh=7000),
              Dlt645Meter("000000001234", events=False, base_w=0)]
    bus = VboardBus(meters).start()
    cfg = {"dev": "vbcon", "key": KEY, "poll_s": 2, "record_s": 10,
           "wifi": {"ssid": "site", "password": "pw"},
           "broker": {"host": "127.0.0.1", "port": 1883},
           "meters": [{"id": "P1", "addr": 1, "model": "prepaid-int"},
                      {"id": "S3", "addr": 3, "model": "sdm120", "parity": "N", "relay": 1}]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    build_image(str(tmp / "flash"), cfg, board)
    vb = VirtualBoard(str(tmp / "flash"), bus=bus.address).start()
    bus.contactor(vb.state_dir, 26, [meters[1]], feedback_pin=35)
    con = Console(vb.port)
    boot = con.read_until(b"mqtt connected", 60)
    assert "wattkeeper 0.1.0 dev vbcon, 2 meters" in boot, boot
    stop_connected(con)
    yield vb, bus, meters, con
    con.s.close()
    vb.stop()
    bus.stop()


def narrow(text):
    for ln in text.split("\n"):
        assert len(ln) <= 80, ln
    assert "Traceback" not in text
    return text


def test_help_lists_every_command(site):
    out = narrow(site[3].cmd("help()"))
    for c in ("status()", "meters()", "read(m)", "relay(m, 'on')", "scan()", "journal()",
              "net()", "config()", "log()", "run()"):
        assert c in out


def test_status_and_meters(site):
    vb, bus, meters, con = site
    out = narrow(con.cmd("status()"))
    assert out.startswith("wattkeeper 0.1.0  dev vbcon  boot 1  up 0d 00:00:")
    assert "mqtt connected 127.0.0.1:1883" in out
    assert "meters 2: 2 online, 0 offline, 0 relay open" in out
    out = narrow(con.cmd("meters()"))
    rows = out.split("\n")[1:]
    assert re.match(r" 0  P1 +prepaid-int +1 +yes +closed +- +12340$", rows[0]), rows[0]
    assert re.match(r" 1  S3 +sdm120 +3 +yes +closed +- +7000$", rows[1]), rows[1]


def test_read_by_index_and_id_and_bad_argument(site):
    vb, bus, meters, con = site
    out = narrow(con.cmd("read(0)"))
    assert "meter 0 P1 addr 1 (prepaid-int)" in out
    assert "energy_wh  12340 Wh" in out and "voltage_dv 230.0 V" in out
    assert "relay      closed" in out
    out = narrow(con.cmd("read('S3')"))
    assert "meter 1 S3 addr 3 (sdm120)" in out and "energy_wh  7000 Wh" in out
    assert narrow(con.cmd("read('X')")) == "read: no meter 'X' (0..1 or an id)"
    assert narrow(con.cmd("read(7)")) == "read: no meter 7 (0..1 or an id)"


def test_relay_switches_and_is_journaled(site):
    vb, bus, meters, con = site
    out = narrow(con.cmd("relay('P1', 'off')"))
    assert out.endswith("relay 0 P1: OPEN (read back OPEN)"), out
    bus.advance()
    assert meters[0].relay_closed is False            # the meter's own latching relay
    out = narrow(con.cmd("relay(1, 'off')"))
    assert out.endswith("relay 1 S3: OPEN (read back OPEN)"), out
    time.sleep(0.3)
    assert vb.pins()["26"] == 0 and meters[1].supply_closed is False   # the contactor
    assert narrow(con.cmd("relay(1, 'maybe')")) == \
        "relay: state 'maybe': use 'on' (closed) or 'off' (open)"
    narrow(con.cmd("relay(0, 'on')"))
    narrow(con.cmd("relay(1, 'on')"))
    bus.advance()
    assert meters[0].relay_closed and meters[1].supply_closed
    out = narrow(con.cmd("journal()"))
    assert re.search(r"journal last \d+ acked \d+ pending \d+", out)
    # the override is a journal record: [seq, 1 (event), meter, ts, [11 override, 3 technician]]
    out = con.cmd("import concentrator.board as b; print(b.APP.journal.pending(64))")
    assert "(11, 3)" in out or "[11, 3]" in out, out
    assert "technician: relay 0 P1 -> off" in narrow(con.cmd("log()"))


def test_net_and_config_hide_secrets(site):
    vb, bus, meters, con = site
    out = narrow(con.cmd("net()"))
    assert "wifi site: connected" in out and "mqtt 127.0.0.1:1883 connected" in out
    out = narrow(con.cmd("config()"))
    assert KEY not in out and "pw" not in out.replace("password': '***", "")
    assert "key            c0c0... (64 hex digits)" in out
    assert '{"id": "S3", "addr": 3, "model": "sdm120", "parity": "N", "relay": 1}' in out \
        or '"id": "S3"' in out


def test_scan_finds_modbus_and_dlt645_meters(site):
    vb, bus, meters, con = site
    out = narrow(con.cmd("scan(1, 4)", timeout=60))
    found = [json.loads(ln) for ln in out.split("\n") if ln.startswith("{")]
    # the format of /config.json "meters" (line settings given where the model's differ)
    assert {"id": "M001", "addr": 1, "model": "prepaid-int"} in found
    assert {"id": "M003", "addr": 3, "model": "sdm120"} in found
    assert {"id": "D001234", "addr": "000000001234", "model": "dlt645-2007"} in found
    assert len(found) == 3
    assert narrow(con.cmd("scan(0, 300)")) == "scan: addresses must be 1 <= first <= last <= 247"


def test_run_resumes_the_loop(site):
    vb, bus, meters, con = site
    con.s.write(b"run()\r")
    out = con.read_until(b"running (Ctrl-C stops)", 5)
    assert "wattkeeper: running" in out
    e0 = vb.info()
    time.sleep(3)                           # the loop polls again: bus traffic
    f0 = bus.frames
    time.sleep(2.5)
    assert bus.frames > f0
    con.s.write(b"\x03")
    out = con.read_until(b">>> ", 10)
    assert "run() resumes" in out
    assert vb.info()["boots"] == e0["boots"]     # no reset meanwhile
    assert narrow(con.cmd("status()")).startswith("wattkeeper 0.1.0  dev vbcon")
