"""Two head-end workers that each own a share of the boards
(`wattkeeper worker --partition i/2`, transport/partition.py) on Mosquitto
and PostgreSQL: every message handled by exactly one worker, every reading
stored and billed once, nothing deferred, replies published directly (the
outbox holds only what people caused), and a sale's credit sent by the
board's own worker, in counter order with the replies."""
import secrets
import time

import pytest
from sqlalchemy import text
from sqlmodel import select

from headend.core import db
from headend.models import Concentrator, Downlink
from headend.services import ledger, sales
from headend.services.actor import system_actor
from sim.brokers import MosquittoBroker
from tests.conftest import assert_each_reading_stored_and_billed_once
from tools.fleet import FleetBoard, play, seed_boards, settle, start_workers, stop_workers, worker_stats

BOARDS, METERS, INTERVALS = 6, 8, 12
T0 = 1790000000


def test_two_partitioned_workers_share_the_boards_without_meeting(pg):
    url, engine = pg
    keys = {"pw%d" % b: secrets.token_hex(32) for b in range(BOARDS)}
    with db.session_factory(engine)() as s:
        seed_boards(s, "Partitioned", keys, METERS, tariff_price_mu_per_kwh=6000, opening_balance_mu=10 ** 9)
        s.commit()
        ids = dict(s.exec(select(Concentrator.dev, Concentrator.id)).all())
    assert {i % 2 for i in ids.values()} == {0, 1}          # both workers have boards
    broker = MosquittoBroker().start()
    workers = start_workers(url, broker.url, 2, env={"WK_WORKER_STATS_S": "1"}, partitioned=True)
    boards = []
    sale_dev = "pw1"
    try:
        boards = [FleetBoard(dev, k, METERS, broker.host, broker.port, T0, ack_timeout_s=3) for dev, k in keys.items()]
        time.sleep(0.5)

        def sell(i):
            if i == INTERVALS // 2:
                with db.session_factory(engine)() as s:      # a sale at the desk: its credit via the outbox
                    acc = s.execute(text("SELECT m.account_id FROM meter m JOIN concentrator c ON "
                                         "c.id = m.concentrator_id WHERE c.dev = :d AND m.index = 0"),
                                    {"d": sale_dev}).scalar()
                    sales.sell(s, system_actor(s), acc, 5_000_000)
                    s.commit()
        play(boards, INTERVALS, T0, at=sell)
        settle(boards, 60)
        assert all(b.done() for b in boards), [(b.dev, b.acked, b.seq) for b in boards]
        time.sleep(1.5)
        assert sum(b.out_of_order for b in boards) == 0 and sum(b.duplicates for b in boards) == 0
        assert all(not b.missing() for b in boards)
        stats = [worker_stats(w) for w in workers]
        assert all(stats), [w.log[-5:] for w in workers]
    finally:
        for b in boards:
            b.close()
        stop_workers(workers)
        broker.cleanup()
    sent = sum(b.n for b in boards)                 # every uplink message the boards published
    assert sum(st["accepted"] for st in stats) == sent, (sent, stats)      # each by exactly one worker
    assert all(st["accepted"] > 0 and st["other_partition"] > 0 for st in stats), stats
    assert all(st["rejected"] == 0 and st["errors"] == 0 for st in stats), stats
    # no worker waits for another; only the desk's sale holds its board a moment (ledger.lock_boards_of)
    assert sum(st["deferred"] for st in stats) <= 2 * (INTERVALS + INTERVALS // 4), stats
    assert_each_reading_stored_and_billed_once(engine, BOARDS * METERS * INTERVALS, 1000, 6)
    with db.session_factory(engine)() as s:
        assert ledger.check_cache(s) == []
        queued = s.exec(select(Downlink)).all()
    # the outbox holds only the sale's credit (the replies went out directly), sent, and the board has it
    assert [d.concentrator_id for d in queued] == [ids[sale_dev]] and queued[0].sent is not None
    board = next(b for b in boards if b.dev == sale_dev)
    assert queued[0].n in board.seen_n


@pytest.mark.parametrize("value", ["2/2", "x", "1/0", "0/65"])
def test_a_bad_partition_stops_the_worker_with_what_is_wrong(tmp_path, value):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.path.join(root, "firmware")]))
    p = subprocess.run([sys.executable, "-m", "headend.cli", "--db", "sqlite:///%s" % (tmp_path / "x.db"),
                        "worker", "--partition", value], cwd=root, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "WK_MQTT_PARTITION" in p.stderr and "Traceback" not in p.stderr, p.stderr
