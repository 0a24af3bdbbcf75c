"""The board's MQTT link and journal under network faults and resets
(issue 3): broker restart, a black-holed TCP connection, the head-end
restarting mid-batch, the watchdog resetting a hung board.

Real parts: Mosquitto, the head-end in its own process, the real firmware on
littlefs over the emulated NOR flash, a TCP fault proxy (sim/netfault.py).
"""
import time

from sqlmodel import select

from headend.models import Event, Reading
from sim.netfault import FaultProxy, route_site
from sim.stack import Stack

KEEPALIVE_S = 2
STEP_BUDGET_S = 5.0


def stack(**kw):
    kw.setdefault("meters", 4)
    return Stack(broker="mosquitto", concentrators=1, flash="littlefs",
                 keepalive_s=KEEPALIVE_S, poll_s=60, **kw)


def drain(st, wall_s=40):
    vc = st.site.concentrators[0]
    ok = st.site.settle(wall_s, until=lambda: st.site.pending() == 0 and vc.fw.link.connected)
    assert ok, "records not acknowledged: %d pending, link %s" % (
        st.site.pending(), vc.fw.link.last_error)


def seqs_exactly_once(st):
    fw = st.site.concentrators[0].fw
    with st.session() as s:
        seqs = [r.seq for r in s.exec(select(Reading))]
        seqs += [e.seq for e in s.exec(select(Event)) if e.seq is not None]
    assert sorted(seqs) == list(range(1, fw.journal.last_seq + 1)), "lost or duplicated records"


def run_wall(st, virtual_s, wall_s, until=None):
    """Advance virtual time slowly enough that wall-clock network timers run."""
    t_end = time.monotonic() + wall_s
    per = max(1, int(virtual_s / max(1, wall_s * 20)))
    while time.monotonic() < t_end:
        st.site.tick(per * 1000000)
        if until is not None and until():
            return True
        time.sleep(0.05)
    return until() if until is not None else True


def test_broker_restart_reconnects_and_loses_nothing():
    with stack() as st:
        vc = st.site.concentrators[0]
        st.site.run(3600, tick_s=5)
        drain(st)
        st.broker.stop()
        st.site.run(2 * 3600, tick_s=5)          # readings pile up in the journal
        assert not vc.fw.link.connected
        assert vc.fw.journal.last_seq - vc.fw.journal.acked_seq >= 8 * 4
        st.broker.start()
        t0 = time.monotonic()
        drain(st, wall_s=90)                     # back-off is at most 60 s
        assert time.monotonic() - t0 < 75
        seqs_exactly_once(st)
        assert vc.watchdog.max_step_wall_s < STEP_BUDGET_S
        assert vc.watchdog_resets == 0


def test_black_hole_is_detected_and_link_recovers():
    with stack() as st:
        vc = st.site.concentrators[0]
        px = FaultProxy((st.broker.host, st.broker.port)).start()
        try:
            route_site(st.site, px)
            st.site.run(1800, tick_s=5)
            drain(st)
            assert px.connections() == 1
            connects = vc.fw.link.connects
            px.set_mode("blackhole")
            t0 = time.monotonic()
            # the connection stays open and silent: only the board's own
            # keepalive watch can find out (1.5 keepalive of silence)
            assert run_wall(st, 600, 15, until=lambda: not vc.fw.link.connected), \
                "black hole not detected"
            detect = time.monotonic() - t0
            assert detect <= 1.5 * KEEPALIVE_S + 2.0, detect
            # while the hole lasts, reconnect attempts hit it too: each one
            # must give up inside a step's budget
            run_wall(st, 600, 6)
            assert not vc.fw.link.connected
            assert px.stats["blackholed"] >= 2, px.stats
            px.set_mode("pass")
            t1 = time.monotonic()
            assert run_wall(st, 600, 40, until=lambda: vc.fw.link.connected), "no reconnect"
            assert time.monotonic() - t1 < 35
            assert vc.fw.link.connects > connects
            drain(st)
            seqs_exactly_once(st)
            assert vc.watchdog.max_step_wall_s < STEP_BUDGET_S, vc.watchdog.max_step_wall_s
            assert vc.watchdog_resets == 0
            # a reset of every connection (cut) is survived as well
            px.cut()
            st.site.run(900, tick_s=5)
            drain(st)
            seqs_exactly_once(st)
        finally:
            px.stop()


def test_headend_restart_mid_batch():
    with stack(meters=8) as st:
        vc = st.site.concentrators[0]
        st.site.run(3600, tick_s=5)
        drain(st)
        # a batch on its way when the head-end dies (killed: no clean shutdown)
        st.site.run(900, tick_s=5, until=lambda: vc.fw.inflight != 0)
        assert vc.fw.inflight != 0
        st.stop_headend(kill=True)
        st.site.run(1800, tick_s=5)
        assert vc.fw.journal.last_seq > vc.fw.journal.acked_seq
        st.start_headend()
        drain(st, wall_s=60)
        seqs_exactly_once(st)
        # again, with the batch re-sent while it is down and stored once
        st.site.run(900, tick_s=5, until=lambda: vc.fw.inflight != 0)
        st.stop_headend()
        st.site.settle(3)
        st.start_headend()
        st.site.run(900, tick_s=5)
        drain(st, wall_s=60)
        seqs_exactly_once(st)
        for mc in vc.cfg["meters"]:
            assert st.ledger_sum(mc["id"]) == st.balance(mc["id"])


def test_watchdog_resets_a_hung_board_and_journal_recovers():
    with stack() as st:
        vc = st.site.concentrators[0]
        st.site.run(3600, tick_s=5)
        before = vc.fw.journal.last_seq
        # the bus driver hangs (an endless loop): the wall-clock watchdog bites
        fw = vc.fw
        vc.watchdog.wall_s = 1.0

        def hang(i):
            while True:
                pass
        fw.bus.poll = hang
        st.site.run(900, tick_s=5)
        assert vc.watchdog_resets == 1, vc.watchdog.last_reason
        assert vc.fw is not fw, "the board was not reset"
        vc.watchdog.wall_s = STEP_BUDGET_S
        assert vc.fw.journal.last_seq >= before, "the journal lost flushed records"
        # a step that waits on the bus for a minute of virtual time: reset too
        fw = vc.fw
        orig = fw.bus.poll

        def slow(i):
            fw.hal.sleep_ms(60000)
            return orig(i)
        fw.bus.poll = slow
        st.site.run(900, tick_s=5)
        assert vc.watchdog_resets == 2, vc.watchdog.last_reason
        assert "virtual" in vc.watchdog.last_reason
        st.site.run(1800, tick_s=5)
        drain(st)
        seqs_exactly_once(st)
        assert vc.fw.boots == 3
