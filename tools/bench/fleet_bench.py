"""fleet: simulated concentrators through Mosquitto into head-end workers
(`wattkeeper worker --partition i/n`: each owns a share of the boards;
PARTITIONED = False for the shared subscription) on PostgreSQL.

A fleet of 32-meter boards (tools/fleet.py: each with its journal, key,
counters and the firmware's defaults, concentrator/config.py: 10 s ack
timeout, resends backed off x2 +/- 25 % up to 300 s with the firmware's
Jitter; all boards over one multiplexed MQTT connection). Two phases:

1. the burst: every board sends its 32 readings on the same boundary (as
   with upload_spread_s = 0) and a status message: how fast the workers
   drain a burst (messages acknowledged per second, R);
2. the firmware's spread: each board sends its readings at its own offset
   into the interval (concentrator.mqtt.Jitter("up:" + dev) % upload_spread_s,
   default record_s / 2, as core_init.py computes it) and a status every
   status_s (300 s) at its own phase. A fleet of F boards then offers
   F / spread_s + F / status_s messages a second. F is first estimated from
   R at 80 % load, F = 0.8 R / (1/spread_s + 1/status_s), then SIMULATED: the
   boards here play the fleet with their offsets and status phases scaled
   by boards/F (time-compressed: the same message rate as F boards; the ack
   timeout and resend back-off stay real seconds). Each run lasts at least
   MIN_RUN_S real seconds (60; --quick 6): as many intervals as that takes,
   so a fleet above what the workers sustain builds a backlog for the whole
   run and shows (a run of a few seconds is drained within the ack timeout
   whatever the fleet: such a run proves nothing). F is kept when every
   records message is acknowledged within the ack timeout and resends stay
   <= 0.1 %; then a fleet twice as large is tried, until one does not keep
   up; then the geometric middle of the largest that kept up and the
   smallest that did not, until they are within 10 % or the runs (10;
   --quick 2) are spent: fleet_concentrators_failed says where the search
   ended (0: every run kept up, the figure is a floor, not the limit). A
   run stops offering messages as soon as a records message has waited the
   ack timeout (it did not keep up; more would only pile up resends) and is
   drained. When the first does not keep up, it is lowered by a third and
   simulated again. When this process sent the messages more
   slowly than planned (a loaded machine), the fleet it really played,
   F x planned / actual time, is what counts. A run of T seconds passes a
   fleet up to about 1 + ack timeout / T times what the workers sustain
   (its backlog is drained within the timeout): --quick's 6 s runs are
   coarse, the full run's 60 s ones within ~17 %.

All the boards share ONE MQTT connection here (a real board has its own):
Mosquitto's max_queued_messages (MAX_QUEUED) is per client, so here it
bounds the downlinks of the whole fleet queued at once. What the broker
dropped is counted ($SYS/broker/publish/messages/dropped) and so are the
downlinks a board never got (a counter below its highest that never came):
their own figures, not hidden in fleet_errors.

    fleet_boards_measured           boards simulated here (--quick: fewer)
    fleet_workers                   head-end worker processes
    fleet_workers_partitioned       1: each worker owns a share of the boards (`worker --partition i/n`,
                                    replies published directly; 28 % more boards than the shared
                                    subscription here, docs/scale-design.md); 0: the shared subscription
    fleet_burst_drain_s             phase 1: time from the boundary to the last ack (slowest interval)
    fleet_msgs_per_s                phase 1: uplink messages acknowledged per second while draining (R)
    fleet_concentrators_burst       the largest fleet whose boundary burst (everyone at once) is acked
                                    within the ack timeout at R (the figure before the spread)
    fleet_concentrators_realtime    phase 2: the largest fleet (F) simulated with the firmware's
                                    spread and back-off whose records are all acked within the ack
                                    timeout (goal >= 100,000)
    fleet_spread_ack_max_s          phase 2: the slowest records message's ack at that F
    fleet_spread_ack_p99_s          phase 2: its 99th percentile
    fleet_resend_fraction           phase 2: records sent again / records recorded (goal <= 0.001)
    fleet_burst_resend_fraction     phase 1: the same in the burst
    fleet_concentrators_failed      the smallest fleet simulated that did not keep up (0: none did)
    fleet_run_s                     the real seconds each simulated fleet ran at least
    fleet_downlinks                 downlinks the boards accepted (whole bench)
    fleet_downlink_duplicates       downlinks a board got twice (dropped as replays; harmless)
    fleet_downlinks_lost            counters below a board's highest that never came
    fleet_broker_dropped            messages Mosquitto dropped ($SYS/broker/publish/messages/dropped)
    fleet_credits_per_records_msg   credit downlinks the boards got per records message they sent: a
                                    board bills its meters itself (the firmware's Credits here), so a
                                    credit goes only where its charge does not tell it the balance, and
                                    once an hour per meter (services/pushes.py); was 32
    fleet_errors                    readings lost or doubled, balances off, downlinks out of order, and
                                    meters whose board's local credit is not the ledger's balance after
                                    the drain (must be 0)
"""
import math
import secrets
import sys
import time

from sqlalchemy import text

from concentrator.config import DEFAULTS as FW

METERS = 32
T0 = 1790000000
RECORD_S = FW["record_s"]                                            # 900
STATUS_S = FW["status_s"]                                            # 300
ACK_TIMEOUT_S = float(FW["ack_timeout_s"])                           # 10
RESEND_MAX_S = FW["resend_max_s"]                                    # 300
SPREAD_S = RECORD_S // 2 if FW["upload_spread_s"] is None else FW["upload_spread_s"]   # 450
MAX_QUEUED = 100000                # Mosquitto's max_queued_messages (per client: the simulator is ONE client)
MIN_RUN_S = 6 * ACK_TIMEOUT_S      # real seconds each simulated fleet runs at least (--quick: MIN_RUN_QUICK_S)
MIN_RUN_QUICK_S = 0.6 * ACK_TIMEOUT_S
MAX_RUNS, MAX_RUNS_QUICK = 10, 2   # --quick (CI, ~40 s in all): a smoke test, its figure often a floor
PARTITIONED = True                 # the workers each own a share of the boards (worker --partition i/n);
                                   # False: the shared subscription (tests/headend/test_shared_workers.py)


class BrokerMonitor:
    """Mosquitto's own counters ($SYS, every second): how many messages it
    dropped (a client's queue over max_queued_messages / max_queued_bytes)."""

    def __init__(self, host, port):
        import paho.mqtt.client as mqtt
        self.values = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-sys", clean_session=True)
        self.client.on_message = self._on
        self.client.connect(host, port, keepalive=60)
        self.client.subscribe("$SYS/broker/publish/messages/dropped", qos=0)
        self.client.loop_start()

    def _on(self, _c, _u, msg):
        self.values[msg.topic] = msg.payload.decode(errors="replace")

    def dropped(self):
        time.sleep(1.2)                    # one more $SYS interval
        return int(self.values.get("$SYS/broker/publish/messages/dropped", "0") or 0)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _drain(boards, deadline):
    while not all(b.done() for b in boards) and time.monotonic() < deadline:
        for b in boards:
            b.resend_due()
        time.sleep(0.05)
    if not all(b.done() for b in boards):
        raise RuntimeError("the fleet was not acknowledged within 120 s")


def _spread_run(boards, fleet, t, intervals):
    """The boards playing a fleet of `fleet` boards with the firmware's
    upload offsets and status phases, time scaled by len(boards)/fleet:
    -> (ack latencies of records messages, records resent, records recorded, board time, how much
    longer than planned the messages took to send: the fleet really played is fleet / that,
    whether it stopped early: a records message waited the ack timeout)."""
    k = len(boards) / float(fleet)           # real seconds per fleet second
    events = []
    for i in range(intervals):
        bt = t + RECORD_S * (i + 1)
        base = RECORD_S * i
        for j, b in enumerate(boards):
            events.append((k * (base + b.up_offset_s), 0, j, bt))
            phase = (b.up_offset_s * 7 + j * 131) % STATUS_S          # a status phase per board (its boot time)
            for n in range(RECORD_S // STATUS_S):
                events.append((k * (base + phase + n * STATUS_S), 1, j, bt))
    events.sort()
    start = time.monotonic()
    last_poll = start
    stopped = False
    for at, kind, j, bt in events:
        while True:
            now = time.monotonic()
            if now - last_poll >= 0.05:
                for b in boards:
                    b.resend_due(now)
                last_poll = now
                # a records message unacknowledged for the ack timeout: this fleet did not keep
                # up; stop offering (a longer run would only pile up resends) and drain
                if any(now - a >= ACK_TIMEOUT_S for b in boards for a in b.waiting_since()):
                    stopped = True
                    break
            wait = start + at - now
            if wait <= 0:
                break
            time.sleep(min(wait, 0.05))
        if stopped:
            break
        if kind == 0:
            boards[j].record_interval(bt)
        else:
            boards[j].status(bt)
    # what the fleet offered if this process could not send as fast as planned (a loaded machine)
    late = (time.monotonic() - start) / events[-1][0] if events[-1][0] > 0 and not stopped else 1.0
    _drain(boards, time.monotonic() + 120)
    lat = [x for b in boards for x in b.latencies]
    return (lat, sum(b.resent for b in boards), sum(b.sent_records for b in boards), t + RECORD_S * intervals,
            max(1.0, late), stopped)


def run(quick=False):
    from headend.core import db, migrate
    from sqlmodel import select

    from headend.models import Account, Concentrator, Meter, Property
    from headend.services import billing, ledger, tariffs
    from sim.brokers import MosquittoBroker
    from tools.fleet import FleetMux, seed_boards, start_workers, stop_workers, upload_offset_s, wait_workers, worker_stats
    from tools.pgtemp import temp_database
    boards_n, intervals, workers_n = (20, 3, 2) if quick else (120, 4, 2)
    spread_intervals = 2 if quick else 4
    t_setup = time.monotonic()
    url, drop = temp_database("wk_fleet_")
    engine = db.make_engine(url)
    broker = None
    monitor = None
    workers = []
    mux = None
    try:
        migrate.upgrade(engine)
        broker = MosquittoBroker(extra="max_inflight_messages 1000\nmax_queued_messages %d\nsys_interval 1\n"
                                 % MAX_QUEUED).start()
        monitor = BrokerMonitor(broker.host, broker.port)
        # the workers start (imports, connections) while the boards are seeded
        workers = start_workers(url, broker.url, workers_n, wait=False, env={"WK_WORKER_STATS_S": "10"},
                                partitioned=PARTITIONED)
        keys = {"fl%04d" % i: secrets.token_hex(32) for i in range(boards_n)}
        with db.session_factory(engine)() as s:
            seed_boards(s, "Fleet", keys, METERS, tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 10)
            s.commit()
            prop = s.exec(select(Property)).one()
            versions = billing.tariff_spec(tariffs.property_versions(s, prop.id))
        wait_workers(workers)
        mux = FleetMux(broker.host, broker.port)
        boards = [mux.add(d, k, METERS, T0, ack_timeout_s=ACK_TIMEOUT_S, resend_max_s=RESEND_MAX_S,
                          versions=versions) for d, k in keys.items()]
        for b in boards:
            b.up_offset_s = upload_offset_s(b.dev, RECORD_S, SPREAD_S)
        time.sleep(0.5)
        print("# fleet: database, broker, workers and boards ready in %.1f s" % (time.monotonic() - t_setup),
              file=sys.stderr, flush=True)
        drains, rates = [], []
        for i in range(intervals):
            t = T0 + RECORD_S * (i + 1)
            start = time.monotonic()
            for b in boards:
                b.record_interval(t)
                b.status(t)
            _drain(boards, start + 120)
            drain = max(b.acked_at for b in boards) - start
            drains.append(drain)
            rates.append(2 * boards_n / drain)
        rate = min(rates[1:] or rates)          # the first interval sets the baselines
        burst_resent = sum(b.resent for b in boards)
        burst_recorded = sum(b.sent_records for b in boards)
        out = {"fleet_boards_measured": boards_n, "fleet_workers": workers_n,
               "fleet_workers_partitioned": int(PARTITIONED),
               "fleet_burst_drain_s": round(max(drains), 3), "fleet_msgs_per_s": round(rate, 1),
               # the burst: one records message per board must be acked within the timeout
               # (status messages queue behind it: both count)
               "fleet_concentrators_burst": int(rate * ACK_TIMEOUT_S / 2)}
        per_board_per_s = 1.0 / SPREAD_S + 1.0 / STATUS_S
        fleet = int(0.8 * rate / per_board_per_s)
        t = T0 + RECORD_S * intervals
        min_run_s, max_runs = (MIN_RUN_QUICK_S, MAX_RUNS_QUICK) if quick else (MIN_RUN_S, MAX_RUNS)
        best = None                             # (fleet, latencies, resent, recorded) of the largest fleet that kept up
        tried = None
        failed = None                           # the smallest fleet that did not keep up
        runs = 0

        def keeps_up(fleet, t):
            t_run = time.monotonic()
            for b in boards:
                b.latencies, b.resent, b.sent_records = [], 0, 0
            # long enough in real time that a fleet above the workers' sustained rate shows:
            # its backlog grows for the whole run (a short run drains within the timeout anyway)
            n = max(spread_intervals, int(math.ceil(min_run_s / (RECORD_S * len(boards) / float(fleet)))))
            lat, resent, recorded, t, late, stopped = _spread_run(boards, fleet, t, n)
            lat.sort()
            ok = bool(not stopped and lat and lat[-1] < ACK_TIMEOUT_S and resent <= 0.001 * recorded)
            print("# fleet %d (played %d, %d intervals): %s, slowest ack %.1f s, %d resent (%.1f s)"
                  % (fleet, fleet / late, n, "kept up" if ok else "did not keep up", lat[-1] if lat else 0, resent,
                     time.monotonic() - t_run), file=sys.stderr, flush=True)
            return (int(fleet / late), lat, resent, recorded), ok, t

        # grow x2 while the fleet keeps up, then halve the interval between the largest that
        # kept up and the smallest that did not (geometric middle) with the runs left
        while runs < max_runs:
            runs += 1
            tried, ok, t = keeps_up(fleet, t)
            if ok:
                best = tried
            else:
                failed = fleet if failed is None else min(failed, fleet)
            if best is None:
                if fleet < 1000:
                    break
                fleet = int(fleet * 2 / 3)      # the first did not keep up: a smaller one
            elif failed is None:
                fleet = fleet * 2
            else:
                if failed / float(best[0]) < 1.1:
                    break                       # within 10 % (or below it: the noise of a loaded machine)
                fleet = int(math.sqrt(best[0] * failed))
        fleet, lat, resent, recorded = best or tried
        ok = best is not None
        out.update({"fleet_concentrators_realtime": fleet if ok else 0,
                    "fleet_spread_ack_max_s": round(lat[-1], 3) if lat else None,
                    "fleet_spread_ack_p99_s": round(lat[int(0.99 * (len(lat) - 1))], 3) if lat else None,
                    "fleet_resend_fraction": round(resent / recorded, 4) if recorded else 0.0,
                    "fleet_burst_resend_fraction": round(burst_resent / burst_recorded, 4) if burst_recorded
                    else 0.0})
        # the outbox empty and a moment for the last downlinks to arrive: then a counter below the
        # highest a board has that never came is lost (dropped by the broker, or never sent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as c:
                if not c.execute(text("SELECT count(*) FROM downlink WHERE sent IS NULL")).scalar():
                    break
            time.sleep(0.2)
        time.sleep(0.5)
        with engine.connect() as c:
            n, distinct = c.execute(text("SELECT count(*), count(DISTINCT (concentrator_id, seq)) FROM reading")).one()
        with db.session_factory(engine)() as s:
            off = len(ledger.check_cache(s))
            balance = {(dev, i): bal for dev, i, bal in s.exec(
                select(Concentrator.dev, Meter.index, Account.balance_mu)
                .join(Meter, Meter.concentrator_id == Concentrator.id)
                .join(Account, Account.id == Meter.account_id)).all()}
        credit_off = sum(1 for b in boards for m in range(METERS)
                         if b.local_credit(m) != balance.get((b.dev, m)))
        records_msgs = sum(b.records_msgs for b in boards)
        recorded = sum(b.seq for b in boards)
        ooo = sum(b.out_of_order for b in boards)
        lost = sum(len(b.missing()) for b in boards)
        out.update({"fleet_concentrators_failed": failed or 0,
                    "fleet_run_s": min_run_s,
                    "fleet_downlinks": sum(b.downlinks for b in boards),
                    "fleet_downlink_duplicates": sum(b.duplicates for b in boards),
                    "fleet_downlinks_lost": lost,
                    "fleet_broker_dropped": monitor.dropped(),
                    "fleet_credits_per_records_msg": round(sum(b.credits_heard for b in boards)
                                                           / float(records_msgs or 1), 3),
                    "fleet_errors": abs(n - recorded) + (n - distinct) + off + ooo + credit_off})
        if out["fleet_errors"] or lost:
            print("# fleet errors: %d readings stored of %d recorded, %d doubled, %d balances off the ledger, "
                  "%d downlinks out of counter order, %d lost, %d twice, broker dropped %d, "
                  "%d meters whose board's credit is not the balance"
                  % (n, recorded, n - distinct, off, ooo, lost, out["fleet_downlink_duplicates"],
                     out["fleet_broker_dropped"], credit_off), file=sys.stderr)
            for b in [b for b in boards if b.ooo_log or b.missing()][:5]:
                # (counter, the highest the board had, kind, seconds after that highest came)
                print("# board %s: out of order %s; never came %s" % (
                    b.dev, ", ".join("%d<%d %s +%.3fs" % x for x in b.ooo_log[:8]), b.missing()[:8]),
                    file=sys.stderr)
            for i, w in enumerate(workers):       # what the workers logged of it (outbox time-outs, ...)
                for line in [x for x in w.log if "outbox" in x or "rror" in x][-10:]:
                    print("# worker %d: %s" % (i, line.rstrip()[:300]), file=sys.stderr)
        for i, w in enumerate(workers):           # each worker's counters at the end (its `stats` line)
            st = worker_stats(w)
            if st:
                print("# worker %d: %s" % (i, " ".join("%s=%d" % kv for kv in st.items())), file=sys.stderr)
        return out
    finally:
        if mux is not None:
            mux.close()
        if monitor is not None:
            monitor.close()
        stop_workers(workers)
        if broker is not None:
            broker.cleanup()
        engine.dispose()
        drop()


if __name__ == "__main__":
    import sys
    for k, v in run(quick="--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
