"""Issue 13, check 3: three head-end workers on a shared subscription
($share/wk-headend/wk/+/up) on Mosquitto and PostgreSQL, one killed
(SIGKILL) while messages are in flight: every reading stored and billed
once, no board message refused as a replay, every downlink in counter
order at the boards."""
import secrets
import signal
import time

import pytest
from sqlalchemy import text

from concentrator import protocol
from headend.core import db, migrate
from headend.core.events import EV_UPLINK_REJECTED
from headend.services import ledger
from headend.services.seed import seed_site
from sim.brokers import MosquittoBroker
from tools.fleet import FleetBoard, start_workers, stop_workers
from tools.pgtemp import temp_database

BOARDS, METERS, INTERVALS = 6, 8, 24
T0 = 1790000000


@pytest.fixture
def pg():
    url, drop = temp_database()
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    yield url, engine
    engine.dispose()
    drop()


def test_three_workers_one_killed_mid_batch(pg):
    url, engine = pg
    keys = {"sw%d" % b: secrets.token_hex(32) for b in range(BOARDS)}
    with db.session_factory(engine)() as s:
        seed_site(s, "Shared", [{"dev": dev, "key_hex": k, "meters": [
            {"id": "%s-m%d" % (dev, i), "model": "sdm120", "opening_energy_wh": 1000} for i in range(METERS)]}
            for dev, k in keys.items()], tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 9)
        s.commit()
    broker = MosquittoBroker().start()
    workers = start_workers(url, broker.url, 3, env={"WK_WORKER_STATS_S": "1"})
    boards = []
    try:
        boards = [FleetBoard(dev, k, METERS, broker.host, broker.port, T0, ack_timeout_s=3) for dev, k in keys.items()]
        time.sleep(0.5)
        for i in range(INTERVALS):
            t = T0 + 900 * (i + 1)
            for b in boards:
                b.record_interval(t)
                if i % 4 == 3:
                    b.status(t)
            if i == INTERVALS // 3:
                workers[0].send_signal(signal.SIGKILL)       # mid-batch: messages queued and in flight
            time.sleep(0.05)
        deadline = time.monotonic() + 90
        while not all(b.done() for b in boards) and time.monotonic() < deadline:
            for b in boards:
                b.resend_due()
            time.sleep(0.2)
        assert all(b.done() for b in boards), [(b.dev, b.acked, b.seq) for b in boards]
        assert workers[0].wait(5) == -signal.SIGKILL
        assert sum(b.out_of_order for b in boards) == 0, "a downlink left out of counter order"
        time.sleep(1.5)
        # what an operator sees of it: each survivor's `stats` line, nothing rejected, no errors
        last = {}
        for i, w in enumerate(workers[1:], 1):
            lines = [x.split() for x in w.log if x.startswith("stats ")]
            assert lines, "worker %d printed no stats line: %s" % (i, w.log[-5:])
            last[i] = dict(kv.split("=") for kv in lines[-1][1:])
            assert last[i]["rejected"] == last[i]["errors"] == "0", last[i]
        assert sum(int(d["accepted"]) for d in last.values()) > 0, last
    finally:
        for b in boards:
            b.close()
        stop_workers(workers)
        broker.cleanup()
    with engine.connect() as c:
        n, distinct = c.execute(text("SELECT count(*), count(DISTINCT (concentrator_id, seq)) FROM reading")).one()
        assert n == distinct == BOARDS * METERS * INTERVALS
        # billing is cumulative: a reading that arrives after a newer one is stored
        # and already covered; every meter is charged exactly its energy, once
        per_meter = c.execute(text("SELECT meter_id, max(energy_wh), sum(COALESCE(billed_mu, 0)) FROM reading "
                                   "GROUP BY meter_id")).all()
        assert len(per_meter) == BOARDS * METERS
        assert all(mu == (wh - 1000) * 6 for _m, wh, mu in per_meter), per_meter     # 0.60/kWh = 6 mu/Wh
        entries, refs, charged = c.execute(text("SELECT count(*), count(DISTINCT reference), -sum(amount_mu) "
                                                "FROM ledger_entry WHERE kind = 'consumption'")).one()
        assert entries == refs                                    # each reading charged at most once
        assert charged == c.execute(text("SELECT sum(billed_mu) FROM reading")).scalar()
        replays = c.execute(text("SELECT count(*) FROM event WHERE code = :c AND detail = :d"),
                            {"c": EV_UPLINK_REJECTED, "d": protocol.REJECT_REASONS.index("replay")}).scalar()
        assert replays == 0
    with db.session_factory(engine)() as s:
        assert ledger.check_cache(s) == []
