"""Issue 6: meters as they are in the field. One RS485 bus at 9600 8E1 with
Modbus meters (an SDM120 behind a GPIO contactor, a prepaid meter with its own
relay) and DL/T 645-2007 meters (plain and prepaid, relays switched by 0x1C)
runs a simulated week: real firmware, real Mosquitto, the head-end in its own
process. Billing must come out exact and every relay must open when credit
runs out and close after a recharge."""
import os
import sys

from tests.support import ROOT

from headend.services.billing import cost_mu  # noqa: E402
from sim.dlt645_meter import Dlt645Meter  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter, SDM120Meter  # noqa: E402
from sim.stack import Stack  # noqa: E402

PRICE = 6000                 # mu per kWh
HOUR = 3600
DAY = 24 * HOUR
OPENING = 100_000            # mu: 16.7 kWh at PRICE
# meter id -> constant load (W). At OPENING credit they run out after
# 41.7 h, 33.3 h, 27.8 h and 23.8 h. Recharged on day 3 (at 54 h): C1-104
# gets 50 kWh (71 h: out again on day 6), the others 100 kWh (>= 139 h:
# they last the week).
LOADS = {"C1-101": 400, "C1-102": 500, "C1-103": 600, "C1-104": 700}
RECHARGE = {"C1-101": 600_000, "C1-102": 600_000, "C1-103": 600_000, "C1-104": 300_000}
POLL_S = 300


def _pairs(st):
    vc = st.site.concentrators[0]
    out = {}
    for i, (mc, sm) in enumerate(zip(vc.cfg["meters"], vc.meters)):
        sm.advance(vc.clock.now_us)
        out[mc["id"]] = (i, mc, sm)
    return vc, out


def _energized(sm):
    return sm.relay_closed and sm.supply_closed


def test_mixed_bus_week_bills_exactly_and_switches_both_kinds_of_relay():
    with Stack(broker="mosquitto", concentrators=1, meters=4, mix="mixed",
               price_mu_per_kwh=PRICE, opening_balance_mu=OPENING,
               poll_s=POLL_S, status_s=900) as st:
        vc, meters = _pairs(st)
        kinds = {mid: (mc["model"], type(sm)) for mid, (i, mc, sm) in meters.items()}
        assert kinds == {"C1-101": ("sdm120", SDM120Meter),
                         "C1-102": ("prepaid-int", PrepaidIntMeter),
                         "C1-103": ("dlt645-2007", Dlt645Meter),
                         "C1-104": ("dlt645-2007-prepaid", Dlt645Meter)}
        # one serial setting for the whole bus
        assert {(sm.baud, sm.parity) for _, _, sm in meters.values()} == {(9600, "E")}
        assert meters["C1-101"][1]["relay"] == 0            # GPIO contactor
        opening_wh = {}
        for mid, (i, mc, sm) in meters.items():
            sm.load = ConstantLoad(LOADS[mid])
            opening_wh[mid] = sm.register_wh()
            assert st.meter(mid).billed_energy_wh == opening_wh[mid]

        # -- days 1-2: every tenant uses up the opening credit
        st.site.run(2 * DAY, tick_s=10)
        vc, meters = _pairs(st)
        for mid, (i, mc, sm) in meters.items():
            assert not _energized(sm), mid + " must be cut off when its credit ran out"
            credit = vc.fw.credits.value(i)
            # opened at the first poll after zero: overshoot < one poll of
            # load + one register step (0.01 kWh)
            limit = (LOADS[mid] * POLL_S // 3600 + 10) * PRICE // 1000 + 1
            assert -limit <= credit <= 0, (mid, credit)
        sdm, pre, dl, dlp = (meters[m][2] for m in ("C1-101", "C1-102", "C1-103", "C1-104"))
        assert sdm.relay_closed and not sdm.supply_closed, "SDM120: the contactor opens"
        assert not pre.relay_closed and pre.by_fc.get(6, 0) >= 1, "prepaid-int: relay opened by FC 06"
        for m in (dl, dlp):
            assert not m.relay_closed
            assert any(ev == "relay 1A" for _, ev in m.log), "DL/T 645 relay trip (0x1C, N1=1A)"
        cut = {mid: sm.energy_wh for mid, (i, mc, sm) in meters.items()}
        st.site.run(6 * HOUR, tick_s=10)
        vc, meters = _pairs(st)
        assert {mid: sm.energy_wh for mid, (i, mc, sm) in meters.items()} == cut, \
            "an open relay must stop consumption"
        assert st.site.settle(20, until=lambda: st.site.pending() == 0)

        # -- day 3: recharges close every relay again
        for mid in LOADS:
            st.recharge(mid, RECHARGE[mid], actor="cashier-1")
        assert st.site.settle(30, until=lambda: all(_energized(sm) for _, _, sm in _pairs(st)[1].values())), \
            "relays did not close after the recharge: %r" % {
                mid: (sm.relay_closed, sm.supply_closed) for mid, (_, _, sm) in _pairs(st)[1].items()}
        assert any(ev == "relay 1B" for _, ev in dl.log), "plain DL/T 645: 'allow close' (1B)"
        assert any(ev == "relay 1C" for _, ev in dlp.log), "prepaid DL/T 645: direct close (1C)"
        assert pre.relay_ctl == 1

        # -- rest of the week
        st.site.run(4 * DAY + 18 * HOUR, tick_s=10)
        vc, meters = _pairs(st)
        assert not _energized(meters["C1-104"][2]), "C1-104 runs out again on day 6"
        for mid in ("C1-101", "C1-102", "C1-103"):
            assert _energized(meters[mid][2]), mid
        # quiet loads, final readings, everything acknowledged
        for mid, (i, mc, sm) in meters.items():
            sm.load = ConstantLoad(0)
        st.site.run(HOUR, tick_s=10)
        assert st.site.settle(30, until=lambda: st.site.pending() == 0), "records not acknowledged"
        # let the head-end bill what it stored
        vc, meters = _pairs(st)
        assert st.site.now() - st.site.start_unix >= 7 * DAY

        for mid, (i, mc, sm) in meters.items():
            rd = st.readings(mid)
            assert rd and rd[-1].energy_wh == sm.register_wh(), (mid, rd[-1].energy_wh, sm.register_wh())
            assert sm.register_wh() - opening_wh[mid] > 16_000, mid + " used the week's energy"
            expect = OPENING + RECHARGE[mid] - (cost_mu(sm.register_wh(), PRICE) - cost_mu(opening_wh[mid], PRICE))
            assert st.ledger_sum(mid) == st.balance(mid) == expect, (mid, st.ledger_sum(mid), expect)
            # a week of 15-minute readings, none lost
            good = [r for r in rd if not r.flags & 1]
            assert len(good) >= 7 * 96, (mid, len(good))
        rows = {r["meter_id"]: r for r in st.http.get("/api/meters").json()}
        assert rows["C1-104"]["relay_closed"] is False and rows["C1-101"]["relay_closed"] is True
        for mid in LOADS:
            assert rows[mid]["meter_online"] is True, mid
        assert vc.bus.silence_violations == 0 and vc.bus.collisions == 0
        assert st.http.get("/api/health").json()["ingest"]["rejected"] == 0


def test_one_bus_two_protocols_keeps_the_silence_and_switches_relays():
    """Fast check of the bus layer under the week test: a Modbus meter and a
    DL/T 645 meter set to 9600 8E1 share a line; polling them in turn never
    breaks the 3.5-character silence (a request sent too early is lost on a
    real line), and both relays switch through MeterBus.set_relay."""
    from concentrator.meters import MeterBus
    from sim.bus import Bus, BusHal

    bus = Bus(seed=3)
    hal = BusHal(bus)
    pre = PrepaidIntMeter(1, load=ConstantLoad(1000), energy_wh=12_340)
    dl = Dlt645Meter("000000001234", load=ConstantLoad(1000), energy_wh=56_780,
                     turnaround_us=20_000)
    dl.baud = 9600
    for m in (pre, dl):
        bus.attach(m)
    cfg = [{"id": "a", "addr": 1, "model": "prepaid-int"},
           {"id": "b", "addr": "000000001234", "model": "dlt645-2007", "baud": 9600, "parity": "E"}]
    mb = MeterBus(hal, cfg)
    for _ in range(20):
        for i in range(2):
            assert mb.poll(i) is not None, (i, mb.stats(i))
        hal.sleep_ms(1000)
    for m in (pre, dl):
        m.advance(bus.clock.now_us)
    assert bus.silence_violations == 0 and bus.collisions == 0 and bus.timeouts == 0
    assert mb.stats(0)["requests"] == 20, "one Modbus request per poll"
    # the last poll read what the registers showed then (< 1 s of load ago)
    assert 0 <= pre.register_wh() - mb.readings.energy_wh[0] <= 10
    assert 0 <= dl.register_wh() - mb.readings.energy_wh[1] <= 10
    assert mb.set_relay(1, False) and not dl.relay_closed
    assert mb.set_relay(0, False) and not pre.relay_closed
    assert mb.poll(1).relay_closed is False and mb.poll(0).relay_closed is False
    assert mb.set_relay(1, True) and dl.relay_closed
    assert mb.set_relay(0, True) and pre.relay_closed
    assert bus.silence_violations == 0
    # without the meter's baud the master would talk 2400 to a 9600 meter
    cfg[1].pop("baud")
    cfg[1].pop("parity")
    mb2 = MeterBus(hal, cfg)
    assert mb2.poll(1) is None
