"""Power-cut fuzzing: "readings survive anything" (issue 3).

    python -m sim.powercut [--days 30] [--cuts 1000] [--seed 1] [--meters 32]

One concentrator (real firmware, littlefs on an emulated NOR flash) with 32
simulated meters, 15-minute records, a real broker (Mosquitto) reached
through a fault proxy (sim/netfault.py) and the real head-end in its own
process. Over the simulated period it injects, at random:

* power cuts inside random flash operations: the flash is armed to fail on
  one of the next few program/erase operations (partial programs and partial
  erases: a random prefix of the operation reaches the flash); the board
  power-cycles (RAM lost, littlefs re-mounted on the same bytes, TCP dropped
  without DISCONNECT) and boots again, possibly into another cut;
* broker outages (the broker process is stopped and started again);
* black holes (the proxy swallows every byte of the board's connection
  without closing it; the board must notice by itself and reconnect);
* head-end restarts (terminated, or killed, while batches are in flight).

At the end the loads are stopped, the final readings taken, every record
drained to the head-end, and the result is checked against the simulated
meters' ground truth.

Definitions (what the figures count)
------------------------------------
A *record* is a journal entry with a sequence number (`seq`). Records that
were appended in RAM but not yet flushed when the power failed never
existed as far as the system is concerned: they were never sent (the board
sends only flushed records) and their sequence numbers are given again after
the reboot, so the sequence space stays contiguous.

* `lost`: sequence numbers 1..last (the board's highest) missing from the
  head-end's database, plus records the head-end holds with content other
  than what the board sent under that seq, plus (meter, 15-minute interval)
  pairs between a meter's first and last reading that hold no reading at all
  (neither a reading nor one flagged missing), plus "journal behind the
  head-end" events (the board lost records the head-end had committed).
* `duplicates`: a seq stored more than once, a seq the board sent twice
  with different content (a flushed record that vanished from flash and
  whose seq was reused), and records stored beyond the board's last seq.
* `money_error`: sum over accounts of |balance - (opening balance -
  price x (final register - opening register))| + |balance - ledger sum|
  (mu), with the flat price chosen so that 1 Wh is a whole number of mu:
  there is no rounding to hide behind.
* `interval_rereads` (counted in `duplicates`): intervals of a meter that
  hold more than one reading. The board keeps the time of each meter's last
  record in its state file (written just before the journal is flushed), so
  after a reboot it records an interval only if that interval has no record
  yet; only when the journal lost the batch the state file describes does it
  record again at once.

What a power cut may cost: the records appended since the last flush (at
most one step's worth: the core flushes in every step that appended). Those
readings are taken again right after the reboot, within the same interval.
"""
import argparse
import json
import random
import sys
import time

from sqlmodel import select

from sim.firmware import setup as _setup_firmware

_setup_firmware()
from concentrator import protocol as P  # noqa: E402
from headend.models import Account, Concentrator as ConcRow, Event, LedgerEntry, Meter, Reading
from sim.load import ConstantLoad
from sim.netfault import FaultProxy, route_site
from sim.stack import Stack

PRICE = 6000          # mu per kWh: 6 mu per Wh exactly
OPENING_MU = 10 ** 10  # large: nobody runs out of credit in this test
RECORD_S = 900
DAY = 86400


class _Capture:
    """Remembers the content of every record the board sends, by seq."""

    def __init__(self):
        self.sent = {}
        self.conflicts = 0
        self.fw = None

    def attach(self, vc):
        fw = vc.fw
        if fw is self.fw:
            return
        self.fw = fw
        link = fw.link
        orig = link.publish
        cap = self

        def publish(topic, payload, _orig=orig):
            try:
                body = json.loads(bytes(payload).split(b"\n", 1)[0])
                if body.get("t") == P.RECORDS:
                    for r in body["recs"]:
                        seq = r[0]
                        r = json.dumps(r[1:])
                        old = cap.sent.get(seq)
                        if old is not None and old != r:
                            cap.conflicts += 1
                        cap.sent[seq] = r
            except Exception:
                pass
            return _orig(topic, payload)
        link.publish = publish


def _schedule(rng, t_end, days, cuts, outages, blackholes, restarts):
    ev = []
    for _ in range(cuts):
        ev.append((rng.randrange(3600, t_end - 2 * 3600), "cut"))
    for _ in range(outages):
        ev.append((rng.randrange(3600, t_end - 4 * 3600), "outage"))
    for _ in range(blackholes):
        ev.append((rng.randrange(3600, t_end - 4 * 3600), "blackhole"))
    for _ in range(restarts):
        ev.append((rng.randrange(3600, t_end - 4 * 3600), "restart"))
    ev.sort()
    return ev


def run(days=30, cuts=1000, seed=1, meters=32, broker="mosquitto", outages=None,
        blackholes=None, restarts=None, poll_s=420, tick_s=60, keepalive_s=3,
        log=None, max_cut_gap=16, max_backlog=1500):
    """Run the fuzz; returns a dict of figures (see the module docstring).

    poll_s must stay well below the 15-minute record interval: the core
    records at the first poll of each interval, and polls drift by up to one
    tick, so poll_s close to record_s can skip an interval (a gap that is
    not data loss but shows as one)."""
    say = log or (lambda *a: None)
    rng = random.Random(seed)
    t_end = int(days * DAY)
    if outages is None:
        outages = max(1, int(days))
    if blackholes is None:
        blackholes = max(1, int(days // 2))
    if restarts is None:
        restarts = max(1, int(days // 2))
    # a few more arming points than cuts wanted: an arming can be overtaken
    # by the next one before the board touches the flash
    events = _schedule(rng, t_end, days, 0, outages, blackholes, restarts)
    # power cuts: armed one at a time (a cut on one of the next max_cut_gap
    # flash operations), the next arming a random time after the last cut
    # (half the period: after arming, the cut waits for the next flash write)
    mean_gap_us = int((t_end - 3 * 3600) * 1000000 / max(1, cuts) / 2)
    arm = {"next_us": 3600 * 1000000, "cuts_at_arm": None}
    wall0 = time.monotonic()
    out = {}
    with Stack(broker=broker, concentrators=1, meters=meters, price_mu_per_kwh=PRICE,
               opening_balance_mu=OPENING_MU, flash="littlefs", poll_s=poll_s,
               record_s=RECORD_S, keepalive_s=keepalive_s, seed=seed) as st:
        site = st.site
        vc = site.concentrators[0]
        flash = vc.flash
        opening = {mc["id"]: sm.register_wh() for mc, sm in zip(vc.cfg["meters"], vc.meters)}
        proxy = FaultProxy((st.broker.host, st.broker.port)).start()
        try:
            route_site(site, proxy)
            cap = _Capture()
            cap.attach(vc)
            stats = {"outages": 0, "blackholes": 0, "headend_restarts": 0,
                     "blackhole_detect_wall_s_max": 0.0, "armed": 0}

            def advance(to_s, wall_limit=None):
                t0 = time.monotonic()
                while site.t_us < to_s * 1000000:
                    step_s = min(tick_s, to_s - site.t_us // 1000000)
                    site.tick(step_s * 1000000)
                    cap.attach(vc)
                    if arm["cuts_at_arm"] is not None and vc.cuts != arm["cuts_at_arm"]:
                        arm["cuts_at_arm"] = None      # it fired
                        arm["next_us"] = site.t_us + rng.randrange(0, 2 * mean_gap_us + 1)
                    if (arm["cuts_at_arm"] is None and site.t_us >= arm["next_us"]
                            and site.t_us < (t_end - 2 * 3600) * 1000000):
                        flash.cut_after(rng.randint(1, max_cut_gap), partial=None)
                        arm["cuts_at_arm"] = vc.cuts
                        stats["armed"] += 1
                    if wall_limit is not None and time.monotonic() - t0 > wall_limit:
                        break
                    if site.pending() > max_backlog and vc.fw.link.connected:
                        # the head-end is behind (a real month has more wall
                        # time than this run): let it catch up
                        settle(60, lambda: site.pending() < max_backlog // 4
                               or not vc.fw.link.connected)

            def settle(wall_s, until):
                t_end_w = time.monotonic() + wall_s
                while time.monotonic() < t_end_w:
                    site.tick(1000000)
                    cap.attach(vc)
                    if until():
                        return True
                    time.sleep(0.01)
                return until()

            k = 0
            last_report = time.monotonic()
            for t, kind in events:
                advance(t)
                k += 1
                if kind == "outage":
                    # the broker goes away for a while (virtual time runs on)
                    st.broker.stop()
                    advance(t + rng.randrange(600, 3 * 3600))
                    st.broker.start()
                    stats["outages"] += 1
                elif kind == "blackhole":
                    proxy.set_mode("blackhole")
                    w0 = time.monotonic()
                    was = vc.fw.link.connected
                    # the board has to find out by itself (keepalive, wall time)
                    settle(6 * keepalive_s + 5, lambda: not vc.fw.link.connected)
                    if was:
                        stats["blackhole_detect_wall_s_max"] = max(
                            stats["blackhole_detect_wall_s_max"], time.monotonic() - w0)
                    proxy.set_mode("pass")
                    stats["blackholes"] += 1
                elif kind == "restart":
                    # mid-batch: stop the head-end right after the board sent records
                    settle(5, lambda: vc.fw.inflight != 0)
                    st.stop_headend(kill=rng.random() < 0.5)
                    advance(t + rng.randrange(300, 2 * 3600))
                    st.start_headend()
                    stats["headend_restarts"] += 1
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    say("day %.1f: cuts %d, watchdog %d, pending %d, wall %.0f s"
                        % (site.t_us / 1e6 / DAY, vc.cuts, vc.watchdog_resets,
                           site.pending(), time.monotonic() - wall0))
            advance(t_end)
            # the end: no more faults; quiet loads, final readings, drain
            flash.cut_after(10 ** 12)
            proxy.set_mode("pass")
            for sm in vc.meters:
                sm.advance(vc.clock.now_us)
                sm.load = ConstantLoad(0)
            advance(t_end + 2 * RECORD_S)
            drained = settle(120, lambda: site.pending() == 0 and vc.fw.link.connected)
            # one more interval so that the last readings' acks and credits land
            advance(t_end + 3 * RECORD_S)
            drained = settle(60, lambda: site.pending() == 0) and drained
            out.update(_check(st, vc, cap, opening))
            out["drained"] = drained
            out["cuts"] = vc.cuts
            out["watchdog_resets"] = vc.watchdog_resets
            out["boots"] = vc.fw.boots
            out["records"] = vc.fw.journal.last_seq
            out["max_step_wall_s"] = round(vc.watchdog.max_step_wall_s, 3)
            out["boot_block_reads_max"] = max(vc.boot_block_reads or [0])
            out["thinned"] = vc.fw.journal.thinned
            out["link_failures_last_boot"] = vc.fw.link.failures
            out.update(stats)
            out["proxy"] = dict(proxy.stats)
        finally:
            proxy.stop()
    out["days"] = days
    out["wall_s"] = round(time.monotonic() - wall0, 1)
    return out


def _check(st, vc, cap, opening):
    last = vc.fw.journal.last_seq
    res = {}
    with st.session() as s:
        conc = s.exec(select(ConcRow).where(ConcRow.dev == vc.dev)).one()
        rds = list(s.exec(select(Reading).where(Reading.concentrator_id == conc.id)))
        evs = [e for e in s.exec(select(Event).where(Event.concentrator_id == conc.id))]
        meters = {m.index: m for m in s.exec(select(Meter).where(Meter.concentrator_id == conc.id))}
        stored = {}
        dup = 0
        for r in rds:
            content = json.dumps([P.KIND_READING, r.meter_index, r.ts,
                                  [r.energy_wh, r.power_w, r.flags]
                                  + ([r.charged_mu] if r.charged_mu is not None else [])
                                  + list(r.bands or [])])
            if r.seq in stored:
                dup += 1
            stored[r.seq] = content
        for e in evs:
            if e.seq is None:
                continue
            content = json.dumps([P.KIND_EVENT, e.meter_index, e.ts, list(e.values or [])])
            if e.seq in stored:
                dup += 1
            stored[e.seq] = content
        missing_seq = [q for q in range(1, last + 1) if q not in stored]
        beyond = [q for q in stored if q > last]
        mismatch = 0
        for q, c in stored.items():
            sent = cap.sent.get(q)
            if sent is not None and sent != c:
                mismatch += 1
        resets = sum(1 for e in evs if e.code == 104)   # EV_JOURNAL_RESET
        # interval coverage per meter
        gaps = 0
        rereads = 0
        for idx in meters:
            iv = {}
            for r in rds:
                if r.meter_index == idx:
                    iv[r.ts // RECORD_S] = iv.get(r.ts // RECORD_S, 0) + 1
            if not iv:
                gaps += 1
                continue
            lo, hi = min(iv), max(iv)
            gaps += sum(1 for i in range(lo, hi + 1) if i not in iv)
            rereads += sum(1 for v in iv.values() if v > 1)
        # money
        money = 0
        register_mismatch = 0
        for mc, sm in zip(vc.cfg["meters"], vc.meters):
            sm.advance(vc.clock.now_us)
            m = s.exec(select(Meter).where(Meter.meter_id == mc["id"])).one()
            acc = s.get(Account, m.account_id)
            ledger = sum(e.amount_mu for e in s.exec(select(LedgerEntry)
                                                     .where(LedgerEntry.account_id == acc.id)))
            expect = OPENING_MU - PRICE * (sm.register_wh() - opening[mc["id"]]) // 1000
            money += abs(acc.balance_mu - expect) + abs(acc.balance_mu - ledger)
            if m.billed_energy_wh != sm.register_wh():
                register_mismatch += 1
    res["lost"] = len(missing_seq) + mismatch + gaps + resets
    res["duplicates"] = dup + cap.conflicts + len(beyond) + rereads
    res["money_error"] = money
    res["lost_seqs"] = len(missing_seq)
    res["content_mismatch"] = mismatch
    res["interval_gaps"] = gaps
    res["journal_resets"] = resets
    res["sent_conflicts"] = cap.conflicts
    res["interval_rereads"] = rereads
    res["register_mismatch"] = register_mismatch
    res["readings"] = len(rds)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.powercut", description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--cuts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--meters", type=int, default=32)
    ap.add_argument("--broker", default="mosquitto", choices=("mosquitto", "amqtt"))
    args = ap.parse_args(argv)
    res = run(days=args.days, cuts=args.cuts, seed=args.seed, meters=args.meters,
              broker=args.broker, log=lambda m: print("#", m, file=sys.stderr, flush=True))
    for k, v in res.items():
        print("%s: %s" % (k, v))
    ok = res["lost"] == 0 and res["duplicates"] == 0 and res["money_error"] == 0 and res["drained"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
