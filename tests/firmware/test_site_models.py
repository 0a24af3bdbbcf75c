"""Meter models in the site file (issue 14, check 6): a meter that is not in
profiles.py, with its energy in holding registers (FC 03) and its voltage
and current as word-swapped floats in input registers (FC 04), described
only in this test's site.json, read exactly through a pymodbus RTU server
on a pseudo-terminal by the firmware's own bus layer."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.firmware.test_pymodbus_interop import _wait_until_up, pty_pair  # noqa: F401
from concentrator import model_check  # noqa: E402
from concentrator.meters import MeterBus  # noqa: E402
from concentrator.profiles import PROFILES  # noqa: E402
from sim.serial_uart import SerialHal, SerialUart  # noqa: E402
from tools.provision import ProvisionError, check_config  # noqa: E402

SERVER = textwrap.dedent('''
    import struct, sys, logging
    logging.disable(logging.WARNING)
    from pymodbus import FramerType
    from pymodbus.server import StartSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def f32_swapped(x):
        hi, lo = struct.unpack(">HH", struct.pack(">f", x))
        return [lo, hi]

    ir = [0] * 0x10
    ir[0x00:0x02] = f32_swapped(231.4)              # voltage, V
    ir[0x06:0x08] = f32_swapped(5.25)               # current, A
    hr = [0] * 0x110
    hr[0x0100:0x0102] = list(struct.unpack(">HH", struct.pack(">I", 12345678)))  # 0.01 kWh
    hr[0x0104] = struct.unpack(">H", struct.pack(">h", -1210))[0]               # W, exporting

    def regs(values):
        return [SimData(0, values=values, datatype=DataType.REGISTERS)]

    def bits():
        return [SimData(0, count=16, values=False, datatype=DataType.BITS)]

    dev = SimDevice(7, simdata=(bits(), bits(), regs(hr), regs(ir)))
    StartSerialServer(context=[dev], port=sys.argv[1], framer=FramerType.RTU,
                      baudrate=9600, parity="N", stopbits=1)
''')

SITE = {
    "dev": "site-models-1", "key": "5a" * 32, "wifi": {"ssid": "site", "password": "pw"},
    "models": {
        "acme-dds2": {
            "proto": "modbus", "baud": 9600, "parity": "N", "timeout_ms": 1000,
            "blocks": [
                {"fc": 3, "regs": [
                    {"name": "energy_wh", "addr": 256, "type": "u32", "scale": 10},
                    {"name": "power_w", "addr": 260, "type": "s16"}]},
                {"fc": 4, "words": "lo", "regs": [
                    {"name": "voltage_dv", "addr": 0, "type": "f32", "scale": 10},
                    {"name": "current_ma", "addr": 6, "type": "f32", "scale": 1000}]},
            ],
            "billing": ["energy_wh", "power_w"],
            "extra": ["voltage_dv", "current_ma"], "extra_every": 1,
            "relay": {"kind": "gpio"},
        }
    },
    "meters": [{"id": "X7", "addr": 7, "model": "acme-dds2", "relay": 0}],
}


@pytest.fixture
def site_json(tmp_path):
    p = tmp_path / "site.json"
    p.write_text(json.dumps(SITE, indent=1))
    return str(p)


def test_unseen_meter_read_exactly_from_the_site_file(pty_pair, site_json):  # noqa: F811
    assert "acme-dds2" not in PROFILES
    with open(site_json) as f:
        site = json.load(f)
    cfg = check_config(site, {})                    # what provisioning checks
    profiles, bad = model_check.table(cfg["models"])     # what the board does at boot
    assert bad == []
    a, b = pty_pair
    srv = subprocess.Popen([sys.executable, "-c", SERVER, a],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    uart = SerialUart(b, 9600, min_gap_ms=20)
    try:
        mb = MeterBus(SerialHal(uart), cfg["meters"], profiles)
        _wait_until_up(mb, srv)
        r = mb.poll(0)
        assert r is not None and r.ok
        assert r.energy_wh == 123456780 and isinstance(r.energy_wh, int)   # 123456.78 kWh
        assert r.power_w == -1210
        assert (r.voltage_dv, r.current_ma) == (2314, 5250)
        st = mb.stats(0)
        assert st["requests"] >= 2 and st["crc"] == st["exceptions"] == 0
    finally:
        uart.close()
        srv.terminate()
        srv.wait(5)


def test_a_bad_model_is_refused_with_its_reason(site_json):
    site = json.loads(open(site_json).read())
    site["models"]["acme-dds2"]["blocks"][1]["fc"] = 5
    with pytest.raises(ProvisionError, match="models.acme-dds2: regs.2.. ?fc must be 3"):
        check_config(site, {})
    site["models"]["acme-dds2"]["blocks"][1]["fc"] = 4
    site["models"]["acme-dds2"]["billing"] = ["power_w"]
    with pytest.raises(ProvisionError, match="billing must include energy_wh"):
        check_config(site, {})
    # the board itself leaves the model out and runs (its meters stay offline)
    table, bad = model_check.table({"broken": {"proto": "modbus", "regs": "x"}, "ok": {
        "proto": "dlt645", "table": "dlt645-2007", "timeout_ms": 900}})
    assert [b[0] for b in bad] == ["broken"] and "ok" in table and "broken" not in table
    assert table["sdm120"] is PROFILES["sdm120"]


def test_a_site_model_overrides_a_builtin_one():
    slow = dict(PROFILES["prepaid-int"], timeout_ms=900)
    slow["regs"] = [dict(e) for e in slow["regs"]]
    table, bad = model_check.table({"prepaid-int": slow})
    assert bad == [] and table["prepaid-int"]["timeout_ms"] == 900
    assert PROFILES["prepaid-int"]["timeout_ms"] == 300


def test_the_board_uses_the_site_models_and_survives_a_bad_one(tmp_path):
    from concentrator import protocol as P
    from tests.firmware.offline import Board
    mine = dict(PROFILES["prepaid-int"])
    mine["regs"] = [dict(e) for e in mine["regs"]]
    b = Board.__new__(Board)
    from tests.firmware.offline import Site, TARIFF, START, free_port
    b.site = Site(concentrators=1, meters=2, broker=("127.0.0.1", free_port()),
                  workdir=str(tmp_path), start_unix=START, tariff=TARIFF)
    b.vc = b.site.concentrators[0]
    b.vc.cfg["models"] = {"my-prepaid": mine, "junk": {"proto": 7}}
    for m in b.vc.cfg["meters"]:
        if m["model"] == "prepaid-int":
            m["model"] = "my-prepaid"
    b.vc.power_on()
    b.n = 0
    assert b.fw.bus.profiles["my-prepaid"]["regs"] == mine["regs"]
    assert "junk" not in b.fw.bus.profiles
    b.run(180)
    assert all(b.fw.meters.online)
    ev = b.events(P.EV_STATE_REJECTED)
    assert [P.STATE_PARTS[e[4][1]] for e in ev] == ["models"]
