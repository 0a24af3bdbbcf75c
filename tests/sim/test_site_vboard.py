"""A whole site where one concentrator is a virtual board: the real firmware
(mpy-cross bytecode) in the real MicroPython VM, its UART on a bus server with
simulated meters, umqtt.simple to a real Mosquitto, the head-end in its own
process. Readings reach the head-end, a zero balance opens the prepaid
meter's relay, and a power cycle loses no journal record. Issue 5, check 3.
Time runs in wall time here: the board polls every 2 s, records every 10 s."""
import json
import os
import sys
import time

import pytest
from sqlmodel import select

from tests.support import ROOT

from headend.models import Concentrator, Event, Reading  # noqa: E402
from headend.services.seed import seed_site  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter  # noqa: E402
from sim.stack import Stack  # noqa: E402
from sim.vboard_bus import VboardBus  # noqa: E402
from sim.vboard_host import VirtualBoard  # noqa: E402
from tools.provision import build_image  # noqa: E402

pytestmark = pytest.mark.timeout(200)
PRICE = 6000                      # mu per kWh
KEY = "9e" * 32
DEV = "vb-site-1"


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError("timed out waiting for " + what)


def seqs(st, dev):
    with st.session() as s:
        c = s.exec(select(Concentrator).where(Concentrator.dev == dev)).one()
        r = [x.seq for x in s.exec(select(Reading).where(Reading.concentrator_id == c.id))]
        e = [(x.seq, x.code, x.meter_index, x.detail) for x in
             s.exec(select(Event).where(Event.concentrator_id == c.id, Event.seq != None))]  # noqa: E711
        return sorted(r), sorted(e), c.acked_seq


def test_virtual_board_in_a_whole_site(tmp_path):
    # P1: prepaid meter with its own relay, 20 kW: 300 mu last about 9 s.
    # S3: SDM120 behind the board's contactor (GPIO 25, feedback 34), plenty of credit.
    p1 = PrepaidIntMeter(1, load=ConstantLoad(20000), energy_wh=5000)
    s3 = SDM120Meter(3, load=ConstantLoad(500), energy_wh=7000)
    with Stack(broker="mosquitto", concentrators=1, meters=2, price_mu_per_kwh=PRICE) as st, \
            VboardBus([p1, s3]) as bus:
        with st.session() as s:
            seed_site(s, st.site.name, [{"dev": DEV, "key_hex": KEY, "meters": [
                {"id": "VB-P1", "model": "prepaid-int", "opening_balance_mu": 300,
                 "opening_energy_wh": 5000},
                {"id": "VB-S3", "model": "sdm120", "opening_balance_mu": 500000,
                 "opening_energy_wh": 7000}]}],
                tariff_price_mu_per_kwh=PRICE, tariff_spec={"kind": "flat", "price": PRICE})
        cfg = {"dev": DEV, "key": KEY, "poll_s": 2, "record_s": 10, "status_s": 10,
               "price": PRICE, "wifi": {"ssid": "site", "password": "pw"},
               "broker": {"host": st.broker.host, "port": st.broker.port, "keepalive_s": 30},
               "meters": [{"id": "VB-P1", "addr": 1, "model": "prepaid-int"},
                          {"id": "VB-S3", "addr": 3, "model": "sdm120", "parity": "N",
                           "relay": 0}]}
        with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
            board = json.load(f)
        build_image(str(tmp_path / "flash"), cfg, board)
        vb = VirtualBoard(str(tmp_path / "flash"), bus=bus.address, name=DEV)
        vb.start()
        try:
            bus.contactor(vb.state_dir, 25, [s3], feedback_pin=34)
            # the simulated site keeps running beside the virtual board
            st.site.run(600, tick_s=5)
            # readings reach the head-end
            wait(lambda: len([m for m in st.readings("VB-S3")]) >= 1, 60, "VB-S3 readings")
            # zero balance: the prepaid meter's own relay opens (Modbus write)
            wait(lambda: (bus.advance() and not p1.relay_closed) or not p1.relay_closed, 60,
                 "VB-P1 relay to open")
            e_cut = (bus.advance(), p1.energy_wh)[1]
            assert s3.supply_closed and vb.pins().get("25") == 1     # S3 still has credit
            time.sleep(3)
            bus.advance()
            assert p1.energy_wh == e_cut, "an open relay stops consumption"
            wait(lambda: st.balance("VB-P1") <= 0, 40, "head-end balance of VB-P1 to reach 0")
            r0, e0, _ = seqs(st, DEV)
            assert any(ev[1] == 2 and ev[2] == 0 and ev[3] == 1 for ev in e0), \
                "relay opened (credit) event reported"
            # power cycle: RAM is lost, the journal is not
            before = max(r0 + [e[0] for e in e0])
            vb.power_cycle()
            bus.contactor(vb.state_dir, 25, [s3], feedback_pin=34)
            assert vb.info()["boot_kind"] == "power"

            def caught_up():
                r, e, acked = seqs(st, DEV)
                boots = [x for x in e if x[1] == 1]
                return len(boots) >= 2 and max(r + [x[0] for x in e]) > before + 2 and \
                    acked == max(r + [x[0] for x in e]) and (r, e)
            r, e = wait(caught_up, 60, "records after the power cycle")
            allseq = sorted(r + [x[0] for x in e])
            assert allseq == list(range(1, allseq[-1] + 1)), "a journal record was lost"
            assert len(set(allseq)) == len(allseq)
            # still cut off after the reboot, and the head-end agrees
            bus.advance()
            assert not p1.relay_closed
            assert st.readings("VB-P1")[-1].energy_wh == p1.register_wh()
            # the simulated concentrator of the same site still works too
            st.site.run(900, tick_s=5)
            assert st.site.settle(20, until=lambda: st.site.pending() == 0)
        finally:
            vb.stop()
