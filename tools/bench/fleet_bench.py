"""fleet: simulated concentrators through Mosquitto into head-end workers
(`wattkeeper worker`, shared subscription) on PostgreSQL.

A fleet of 32-meter boards (tools/fleet.py: each with its journal, key,
counters, 10 s ack timeout and resends; all boards over one multiplexed
MQTT connection) records on the same 15-minute boundary, as today's
firmware does: every board sends its 32 readings at once (the boundary
burst) and a status message, and re-sends whatever was not acknowledged
within the ack timeout. Measured over several intervals:

    fleet_boards_measured           boards simulated here (--quick: fewer)
    fleet_workers                   head-end worker processes
    fleet_burst_drain_s             time from the boundary to the last ack (slowest interval)
    fleet_msgs_per_s                uplink messages acknowledged per second while draining
    fleet_concentrators_realtime    the largest fleet whose boundary burst is acknowledged within the
                                    boards' ack timeout at that rate (goal >= 100,000)
    fleet_concentrators_spread      the same if boards spread their uploads over the interval
                                    (a per-board offset: firmware, issue 14)
    fleet_resend_fraction           records sent again / records recorded (goal <= 0.001)
    fleet_errors                    readings lost or doubled, balances off (must be 0)
"""
import secrets
import time

from sqlalchemy import text

METERS = 32
T0 = 1790000000
ACK_TIMEOUT_S = 10.0
RECORD_S = 900


def run(quick=False):
    from headend.core import db, migrate
    from headend.services import ledger
    from headend.services.seed import seed_site
    from sim.brokers import MosquittoBroker
    from tools.fleet import FleetMux, start_workers, stop_workers
    from tools.pgtemp import temp_database
    boards_n, intervals, workers_n = (20, 3, 2) if quick else (120, 4, 2)
    url, drop = temp_database("wk_fleet_")
    engine = db.make_engine(url)
    broker = None
    workers = []
    mux = None
    try:
        migrate.upgrade(engine)
        keys = {"fl%04d" % i: secrets.token_hex(32) for i in range(boards_n)}
        with db.session_factory(engine)() as s:
            seed_site(s, "Fleet", [{"dev": d, "key_hex": k, "meters": [
                {"id": "%s-%02d" % (d, m), "model": "sdm120", "opening_energy_wh": 1000} for m in range(METERS)]}
                for d, k in keys.items()], tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 10)
            s.commit()
        broker = MosquittoBroker(extra="max_inflight_messages 1000\nmax_queued_messages 100000\n").start()
        workers = start_workers(url, broker.url, workers_n)
        mux = FleetMux(broker.host, broker.port)
        boards = [mux.add(d, k, METERS, T0, ack_timeout_s=ACK_TIMEOUT_S) for d, k in keys.items()]
        time.sleep(0.5)
        drains, rates = [], []
        for i in range(intervals):
            t = T0 + RECORD_S * (i + 1)
            start = time.monotonic()
            for b in boards:
                b.record_interval(t)
                b.status(t)
            deadline = start + 120
            while not all(b.done() for b in boards) and time.monotonic() < deadline:
                for b in boards:
                    b.resend_due()
                time.sleep(0.05)
            if not all(b.done() for b in boards):
                raise RuntimeError("the fleet was not acknowledged within 120 s")
            drain = max(b.acked_at for b in boards) - start
            drains.append(drain)
            rates.append(2 * boards_n / drain)
        rate = min(rates[1:] or rates)          # the first interval sets the baselines
        drain = max(drains)
        recorded = sum(b.sent_records for b in boards)
        resent = sum(b.resent for b in boards)
        out = {"fleet_boards_measured": boards_n, "fleet_workers": workers_n,
               "fleet_burst_drain_s": round(drain, 3), "fleet_msgs_per_s": round(rate, 1),
               # the burst: one records message per board must be acked within the timeout
               # (status messages queue behind it: both count)
               "fleet_concentrators_realtime": int(rate * ACK_TIMEOUT_S / 2),
               "fleet_concentrators_spread": int(rate * RECORD_S / 2),
               "fleet_resend_fraction": round(resent / recorded, 4) if recorded else 0.0}
        with engine.connect() as c:
            n, distinct = c.execute(text("SELECT count(*), count(DISTINCT (concentrator_id, seq)) FROM reading")).one()
        with db.session_factory(engine)() as s:
            off = len(ledger.check_cache(s))
        out["fleet_errors"] = abs(n - recorded) + (n - distinct) + off + sum(b.out_of_order for b in boards)
        return out
    finally:
        if mux is not None:
            mux.close()
        stop_workers(workers)
        if broker is not None:
            broker.cleanup()
        engine.dispose()
        drop()


if __name__ == "__main__":
    import sys
    for k, v in run(quick="--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
