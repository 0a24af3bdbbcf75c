"""Issue 13, check 3: three head-end workers on a shared subscription
($share/wk-headend/wk/+/up) on Mosquitto and PostgreSQL, one killed
(SIGKILL) while messages are in flight: every reading stored and billed
once, no board message refused as a replay, every downlink in counter
order at the boards."""
import secrets
import signal
import time

from sqlalchemy import text

from concentrator import protocol
from headend.core import db
from headend.core.events import EV_UPLINK_REJECTED
from headend.services import ledger
from sim.brokers import MosquittoBroker
from tests.conftest import assert_each_reading_stored_and_billed_once
from tools.fleet import FleetBoard, play, seed_boards, settle, start_workers, stop_workers, worker_stats

BOARDS, METERS, INTERVALS = 6, 8, 24
T0 = 1790000000


def test_three_workers_one_killed_mid_batch(pg):
    url, engine = pg
    keys = {"sw%d" % b: secrets.token_hex(32) for b in range(BOARDS)}
    with db.session_factory(engine)() as s:
        seed_boards(s, "Shared", keys, METERS, tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 9)
        s.commit()
    broker = MosquittoBroker().start()
    workers = start_workers(url, broker.url, 3, env={"WK_WORKER_STATS_S": "1"})
    boards = []
    try:
        boards = [FleetBoard(dev, k, METERS, broker.host, broker.port, T0, ack_timeout_s=3) for dev, k in keys.items()]
        time.sleep(0.5)

        def kill(i):
            if i == INTERVALS // 3:
                workers[0].send_signal(signal.SIGKILL)       # mid-batch: messages queued and in flight
        play(boards, INTERVALS, T0, at=kill)
        settle(boards, 90)
        assert all(b.done() for b in boards), [(b.dev, b.acked, b.seq) for b in boards]
        assert workers[0].wait(5) == -signal.SIGKILL
        assert sum(b.out_of_order for b in boards) == 0, "a downlink left out of counter order"
        time.sleep(1.5)
        # what an operator sees of it: each survivor's `stats` line, nothing rejected, no errors
        last = {i: worker_stats(w) for i, w in enumerate(workers[1:], 1)}
        assert all(last.values()), [w.log[-5:] for w in workers[1:]]
        assert all(st["rejected"] == st["errors"] == 0 for st in last.values()), last
        assert sum(st["accepted"] for st in last.values()) > 0, last
    finally:
        for b in boards:
            b.close()
        stop_workers(workers)
        broker.cleanup()
    # 0.60/kWh = 6 mu/Wh
    assert len(assert_each_reading_stored_and_billed_once(engine, BOARDS * METERS * INTERVALS, 1000, 6)) \
        == BOARDS * METERS
    with engine.connect() as c:
        entries, refs, charged = c.execute(text("SELECT count(*), count(DISTINCT reference), -sum(amount_mu) "
                                                "FROM ledger_entry WHERE kind = 'consumption'")).one()
        assert entries == refs                                    # each reading charged at most once
        assert charged == c.execute(text("SELECT sum(billed_mu) FROM reading")).scalar()
        replays = c.execute(text("SELECT count(*) FROM event WHERE code = :c AND detail = :d"),
                            {"c": EV_UPLINK_REJECTED, "d": protocol.REJECT_REASONS.index("replay")}).scalar()
        assert replays == 0
    with db.session_factory(engine)() as s:
        assert ledger.check_cache(s) == []
