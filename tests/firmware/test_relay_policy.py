"""The board's local relay policy, on the real firmware with simulated meters
and a virtual clock: no broker (the board is offline), downlink messages are
handed to it signed as the head-end would sign them."""

from concentrator import protocol as P
from sim.load import ConstantLoad
from tests.firmware.offline import Board


def test_opens_within_one_poll_of_zero_credit(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 0})
    # 1.2 kW at 0.6/kWh = 120 mu per minute: 6000 mu last 50 minutes
    b.credit(0, bal=6000)
    b.credit(1, bal=100000)
    t_zero = None
    for minute in range(70):
        b.run(60)
        c = b.fw.credit_of(0)
        if t_zero is None and c <= 0:
            t_zero = minute
        if not b.closed(0):
            break
    assert t_zero is not None and not b.closed(0)
    assert minute - t_zero <= 1, "relay must open within one poll of reaching zero"
    assert -120 * 2 <= b.fw.credit_of(0) <= 0
    assert b.closed(1), "the other tenant keeps power"
    ev = b.events(P.EV_RELAY_OPEN, 0)
    assert len(ev) == 1 and ev[0][4][1] == P.R_CREDIT


def test_friendly_hours_never_disconnect(tmp_path):
    # 22:00-07:00 friendly; start 21:00 local; credit runs out at ~22:30
    start = 1793462400 + 86400 + 21 * 3600      # Monday 2026-11-02 21:00 local
    b = Board(tmp_path, start=start, policy={"friendly": [["22:00", "07:00"]], "min_switch_s": 0})
    b.credit(0, bal=120 * 90)
    b.run(85 * 60)
    assert b.closed(0)                 # 22:27, still credit
    b.run(30 * 60)                     # 22:57: out of credit, but friendly
    assert b.fw.credit_of(0) < 0
    assert b.closed(0), "no disconnection during friendly hours"
    b.run(8 * 3600 - 5 * 60)           # 06:52: still friendly
    assert b.closed(0)
    b.run(10 * 60)                     # 07:02: friendly hours are over
    assert not b.closed(0), "disconnect when friendly hours end"


def test_emergency_credit_once_per_topup_and_reconnect_threshold(tmp_path):
    pol = {"emergency_mu": 2400, "reconnect_mu": 12000, "min_switch_s": 0}
    b = Board(tmp_path, policy=pol)
    b.credit(0, bal=1200, top=1)       # 10 minutes of credit, then 20 of emergency
    b.run(20 * 60)
    assert b.fw.credit_of(0) < 0 and b.closed(0), "emergency credit keeps the power on"
    b.run(15 * 60)
    assert not b.closed(0), "relay opens when the emergency credit is used up"
    debt = -b.fw.credit_of(0)
    assert 2400 <= debt <= 2400 + 240
    # a top-up that does not cover debt + minimum does not reconnect
    b.credit(0, bal=6000, top=2)
    b.run(120)
    assert not b.closed(0), "reconnect only above the threshold"
    b.credit(0, bal=13000, top=3)
    b.run(60)
    assert b.closed(0)
    # emergency is re-armed by the top-up: 13000 + 2400 last 128 minutes
    b.run(120 * 60)
    assert b.closed(0)
    b.run(15 * 60)
    assert not b.closed(0)
    assert len(b.events(P.EV_RELAY_OPEN, 0)) == 2


def test_no_chatter_min_time_between_operations(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 600})
    b.credit(0, bal=0)
    b.run(120)
    assert not b.closed(0)
    # credit comes and goes quickly: the relay may not follow faster than 10 min
    for k in range(10):
        b.credit(0, bal=30, top=2 + k)
        b.run(60)
    ops = b.events(P.EV_RELAY_OPEN, 0) + b.events(P.EV_RELAY_CLOSE, 0)
    times = sorted(r[3] for r in ops)
    assert all(t2 - t1 >= 600 for t1, t2 in zip(times, times[1:])), times


def test_load_limit_trips_and_resets(tmp_path):
    b = Board(tmp_path, watts=3000, policy={"load_limit_w": 2500, "load_reset_s": 600,
                                            "min_switch_s": 0})
    b.credit(0, bal=10 ** 7)
    b.credit(1, bal=10 ** 7)
    b.run(20 * 60)       # power is read every few polls
    assert not b.closed(0)
    ev = b.events(P.EV_RELAY_OPEN, 0)
    assert ev and ev[0][4][1] == P.R_LOAD_LIMIT
    for sm in b.vc.meters:
        sm.load = ConstantLoad(1000)
    b.run(15 * 60)
    assert b.closed(0), "relay closes again after the reset time"


def test_staff_override_with_expiry(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 0})
    b.credit(0, bal=0)
    b.run(120)
    assert not b.closed(0)
    now = b.fw.hal.time()
    b.push(P.COMMAND, op="relay", m=0, state="closed", until=now + 3600, exp=now + 300)
    b.run(30 * 60)
    assert b.closed(0), "keep-power-on override holds despite zero credit"
    b.run(40 * 60)
    assert not b.closed(0), "override expired: credit policy again"
    b.credit(1, bal=10 ** 7)
    now = b.fw.hal.time()
    b.push(P.COMMAND, op="relay", m=1, state="open", until=now + 600, exp=now + 300)
    b.run(120)
    assert not b.closed(1)
    b.run(15 * 60)
    assert b.closed(1), "force-off override expired: power back"


def test_relay_readback_mismatch_is_retried_and_alarmed(tmp_path):
    b = Board(tmp_path, policy={"min_switch_s": 0})
    # meter 0 is an SDM120 behind a contactor with auxiliary-contact feedback
    b.vc.contactors[0].stuck = True            # welded closed
    b.credit(0, bal=0)
    b.run(180)
    assert b.events(P.EV_RELAY_MISMATCH, 0), "a welded contactor must raise an alarm"
