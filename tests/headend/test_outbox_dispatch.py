"""Several outbox dispatchers on PostgreSQL (transport.outbox.pending with
exclusive=True) while messages are queued: every board's messages leave
once each, in counter order, across dispatchers (the fleet bench saw
downlinks sent again and some sent after a higher counter: the dispatch
lock was taken in the reading statement, after its snapshot)."""
import random
import secrets
import threading
import time

import pytest
from sqlalchemy import insert
from sqlmodel import select

from headend.core import db, migrate
from headend.models import Concentrator, Downlink, now_s
from headend.services.seed import seed_site
from headend.transport import downlink, outbox
from tools.pgtemp import temp_database

BOARDS = 6


def test_dispatchers_send_each_board_in_counter_order_once():
    url, drop = temp_database()
    engine = db.make_engine(url)
    try:
        migrate.upgrade(engine)
        sf = db.session_factory(engine)
        with sf() as s:
            seed_site(s, "Outbox", [{"dev": "ob%d" % i, "key_hex": secrets.token_hex(32), "meters": [
                {"id": "ob%d-m" % i, "model": "sdm120"}]} for i in range(BOARDS)], tariff_price_mu_per_kwh=6000)
            s.commit()
            ids = list(s.exec(select(Concentrator.id).order_by(Concentrator.id)).all())
        sent = {cid: [] for cid in ids}        # in the order the dispatch locks were held
        queued = {cid: 0 for cid in ids}
        done = threading.Event()
        errors = []

        def writer():
            # as the ingest does: counters reserved under the board's row lock, rows in that transaction
            rng = random.Random(7)
            try:
                for _ in range(600):
                    cid, k = rng.choice(ids), rng.randint(1, 4)
                    with sf() as s:
                        n = downlink.next_n(s, cid, k)
                        s.execute(insert(Downlink.__table__), [
                            {"concentrator_id": cid, "n": n + j, "topic": "wk/x/down", "payload": b"x",
                             "created": now_s(), "sent": None} for j in range(k)])
                        s.commit()
                    queued[cid] = n + k - 1
            except Exception as e:              # pragma: no cover - reported below
                errors.append(e)
            finally:
                done.set()

        def dispatcher():
            try:
                while True:
                    finished = done.is_set()
                    with sf() as s:
                        rows = outbox.pending(s, limit=5, exclusive=True)
                        for r in rows:             # "published" while this transaction holds the boards' locks
                            sent[r.concentrator_id].append(r.n)
                        outbox.mark_sent(s, [r.id for r in rows])
                        s.commit()
                    if finished and not rows:
                        return
            except Exception as e:              # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=dispatcher) for _ in range(3)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert time.monotonic() - t0 < 120
        with sf() as s:
            assert outbox.pending(s, limit=10 ** 6) == []
        for cid in ids:
            assert sent[cid] == list(range(1, queued[cid] + 1)), (cid, [
                (a, b) for a, b in zip(sent[cid], sent[cid][1:]) if b != a + 1][:10])
    finally:
        engine.dispose()
        drop()


def test_a_message_paho_refuses_stops_the_outbox_batch():
    """paho's queue full: the outbox's publish raises at the refused message
    and offers none after it (they stay unsent and go again, in order); a
    direct reply goes on without it (the next ack covers a lost one)."""
    import paho.mqtt.client as mqtt

    from headend.transport.mqtt import MqttService

    class Info:
        def __init__(self, rc):
            self.rc = rc

    class Client:
        def __init__(self):
            self.sent = []

        def publish(self, topic, payload, qos=0):
            if payload == b"2":
                return Info(mqtt.MQTT_ERR_QUEUE_SIZE)
            self.sent.append(payload)
            return Info(mqtt.MQTT_ERR_SUCCESS)

    svc = MqttService(ingest=None)
    svc.client = Client()
    msgs = [("wk/x/down", b"%d" % i) for i in (1, 2, 3)]
    with pytest.raises(TimeoutError):
        svc.publish(msgs, whole=True)
    assert svc.client.sent == [b"1"]
    svc.client = Client()
    svc.publish(msgs)
    assert svc.client.sent == [b"1", b"3"]
    assert svc.stats["queue_refused"] == 2
