"""Head-end MQTT ingest over real brokers: the Mosquitto on 127.0.0.1:1883 and
the embedded amqtt broker on a free port. Device ids are unique per test so
parallel runs sharing the Mosquitto do not interfere."""
import queue
import secrets
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from concentrator import protocol
from fastapi.testclient import TestClient
from sqlmodel import select

from headend.core import db, migrate
from headend.main import create_app
from tests.headend.conftest import make_user, token_for
from headend.transport.broker import EmbeddedBroker, free_port
from headend.ingest import Ingest
from headend.models import Reading
from headend.transport.mqtt import MqttService
from headend.services.seed import seed_site
from headend.core.config import Settings

MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture(scope="module")
def amqtt_broker():
    b = EmbeddedBroker("127.0.0.1", free_port(), allow_anonymous=True).start()
    yield b
    b.stop()


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_addr(request):
    if request.param == "mosquitto":
        return MOSQUITTO
    b = request.getfixturevalue("amqtt_broker")
    return (b.host, b.port)


class Board:
    """A test MQTT client that plays one concentrator (real protocol module)."""

    def __init__(self, host, port, dev, key_hex, drop_replays=False):
        self.dev, self.key = dev, protocol.key_from_hex(key_hex)
        self.n = 0
        self.down_n = -1
        # drop_replays: as the firmware does, drop a downlink whose counter is below
        # one already taken (and count it) instead of failing the test on it
        self.drop_replays, self.replays = drop_replays, 0
        self.inbox = queue.Queue()
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="board-" + dev)
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(protocol.topic_down(dev), qos=1)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.c.on_disconnect = lambda c, u, f, rc, p: self.ready.clear()
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()
        assert self.ready.wait(10), "board could not subscribe"

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def send(self, kind, **fields):
        self.n += 1
        payload = protocol.seal(protocol.message(self.dev, self.n, kind, int(time.time()), **fields), self.key)
        self.c.publish(protocol.topic_up(self.dev), payload, qos=0)

    def raw(self, payload):
        self.c.publish(protocol.topic_up(self.dev), payload, qos=0)

    def wait_for(self, kind, timeout=10, **match):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                topic, payload = self.inbox.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            try:
                body = protocol.verify(payload, self.key, dev=self.dev, last_n=self.down_n)
            except protocol.ProtocolError as e:
                if not (self.drop_replays and str(e) == "replay"):
                    raise
                self.replays += 1
                continue
            self.down_n = body["n"]
            if body["t"] == kind and all(body.get(k) == v for k, v in match.items()):
                return body
        raise AssertionError("no %s %r within %ss" % (kind, match, timeout))

    def send_until_acked(self, recs, seq, timeout=20):
        """Like the firmware: re-send (new counter) until the ack covers seq."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.send(protocol.RECORDS, recs=recs)
            try:
                return self.wait_for(protocol.ACK, timeout=1, seq=seq)
            except AssertionError:
                continue
        raise AssertionError("records up to %d never acknowledged" % seq)


def _site(sf, dev, key):
    with sf() as s:
        return seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
            {"id": dev + "-m0", "model": "sdm120", "opening_energy_wh": 1000}]}],
            tariff_price_mu_per_kwh=5000, opening_balance_mu=100000)


@pytest.fixture
def headend(tmp_path, broker_addr):
    eng = db.make_engine("sqlite:///" + str(tmp_path / "mq.db"))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    dev = "mq-" + uuid.uuid4().hex[:10]
    key = secrets.token_hex(32)
    _site(sf, dev, key)
    ingest = Ingest(sf)
    svc = MqttService(ingest, "mqtt://%s:%d" % broker_addr).start()
    assert svc.wait_ready(10), "head-end could not subscribe"
    board = Board(broker_addr[0], broker_addr[1], dev, key)
    yield sf, ingest, svc, board
    board.close()
    svc.stop()
    eng.dispose()


def test_uplink_is_stored_and_acked(headend):
    sf, ingest, svc, board = headend
    board.send(protocol.HELLO, fw="0.1.0", boot=1, last=0, acked=0, meters=[board.dev + "-m0"])
    assert board.wait_for(protocol.ACK, seq=0)["ts"] > 0
    assert board.wait_for(protocol.CREDIT, m=0)["bal"] == 100000
    recs = [[1, 0, 0, int(time.time()), [2000, 100, 0]], [2, 0, 0, int(time.time()), [3000, 100, 0]]]
    board.send(protocol.RECORDS, recs=recs)
    board.wait_for(protocol.ACK, seq=2)
    credit = board.wait_for(protocol.CREDIT, m=0)
    assert (credit["bal"], credit["e"]) == (100000 - (3000 * 5000 // 1000 - 1000 * 5000 // 1000), 3000)
    with sf() as s:
        assert sorted(s.exec(select(Reading.seq)).all()) == [1, 2]


def test_garbage_does_not_stall_ingest(headend):
    sf, ingest, svc, board = headend
    for junk in (secrets.token_bytes(64), b"", b"{}\n" + b"0" * 64, b"x" * 9000,
                 protocol.seal(protocol.message(board.dev, 5, "rd", 0, recs=[]), secrets.token_bytes(32))):
        board.raw(junk)
    board.send_until_acked([[1, 0, 0, int(time.time()), [1500, 10, 0]]], seq=1)
    st = ingest.stats.snapshot()
    assert st["rejected_malformed"] >= 3 and st["rejected_bad_mac"] >= 1 and st["rejected_too_long"] >= 1
    assert st["errors"] == 0


def test_shared_subscription_workers_on_mosquitto(tmp_path):
    """Two head-end workers in one shared-subscription group split the uplinks;
    every record is stored once and acknowledged."""
    eng = db.make_engine("sqlite:///" + str(tmp_path / "sh.db"))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    dev = "sh-" + uuid.uuid4().hex[:10]
    key = secrets.token_hex(32)
    _site(sf, dev, key)
    group = "wk-test-" + uuid.uuid4().hex[:8]   # unique group: other runs share this Mosquitto
    workers = [MqttService(Ingest(sf), "mqtt://%s:%d" % MOSQUITTO, shared=True, shared_group=group).start()
               for _ in range(2)]
    board = None
    try:
        for w in workers:
            assert w.wait_ready(10)
        assert workers[0].topic == "$share/%s/wk/+/up" % group
        # Without the outbox (Ingest(outbox=False), as here) each worker publishes its own
        # replies: one's credit can reach the board after the other's later ack, and the
        # board drops it as a replay (the later credit says more). `wattkeeper worker
        # --shared` queues its replies in the outbox, which sends a board's downlinks in
        # counter order (test_shared_workers.py, PostgreSQL).
        board = Board(MOSQUITTO[0], MOSQUITTO[1], dev, key, drop_replays=True)
        for seq in range(1, 21):
            board.send_until_acked([[seq, 0, 0, int(time.time()), [1000 + seq * 10, 5, 0]]], seq=seq)
        with sf() as s:
            assert sorted(s.exec(select(Reading.seq)).all()) == list(range(1, 21))
        handled = [w.ingest.stats.get("accepted") for w in workers]
        assert sum(handled) >= 20 and all(h > 0 for h in handled), handled
    finally:
        if board:
            board.close()
        for w in workers:
            w.stop()
        eng.dispose()


def test_reconnects_when_the_broker_comes_back(tmp_path):
    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port, allow_anonymous=True).start()
    eng = db.make_engine("sqlite:///" + str(tmp_path / "rc.db"))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    dev = "rc-" + uuid.uuid4().hex[:10]
    key = secrets.token_hex(32)
    _site(sf, dev, key)
    svc = MqttService(Ingest(sf), "mqtt://127.0.0.1:%d" % port).start()
    board = None
    try:
        assert svc.wait_ready(10)
        board = Board("127.0.0.1", port, dev, key)
        board.send_until_acked([[1, 0, 0, int(time.time()), [1100, 5, 0]]], seq=1)
        broker.stop()
        deadline = time.time() + 10
        while svc.connected.is_set() and time.time() < deadline:
            time.sleep(0.1)
        assert not svc.connected.is_set(), "head-end did not notice the broker went away"
        time.sleep(1)
        broker = EmbeddedBroker("127.0.0.1", port, allow_anonymous=True).start()
        assert svc.wait_ready(20), "head-end did not reconnect"
        assert board.ready.wait(20), "board did not reconnect"
        board.send_until_acked([[2, 0, 0, int(time.time()), [1200, 5, 0]]], seq=2)
        assert svc.stats["connects"] >= 2
    finally:
        if board:
            board.close()
        svc.stop()
        broker.stop()
        eng.dispose()


def test_app_recharge_pushes_credit_over_mqtt(tmp_path, amqtt_broker):
    dev = "ap-" + uuid.uuid4().hex[:10]
    key = secrets.token_hex(32)
    st = Settings(database_url="sqlite:///" + str(tmp_path / "app.db"), mqtt_url=amqtt_broker.url)
    app = create_app(st, start_mqtt=True)
    res = _site(app.state.session_factory, dev, key)
    acc = res["concentrators"][dev]["meters"][dev + "-m0"]["account_id"]
    uid, password = make_user(app, "cashier-mq", "cashier", [res["property_id"]])
    with TestClient(app) as client:
        assert app.state.mqtt.wait_ready(10)
        board = Board(amqtt_broker.host, amqtt_broker.port, dev, key)
        try:
            token = token_for(client, "cashier-mq", password)
            r = client.post("/api/accounts/%d/recharge" % acc, json={"amount": "25.00"},
                            headers={"Authorization": "Bearer " + token})
            assert r.status_code == 201 and r.json()["credits_pushed"] == 1
            credit = board.wait_for(protocol.CREDIT, m=0)
            assert (credit["bal"], credit["e"]) == (100000 + 250000, 1000)
            assert client.get("/api/health").json()["mqtt"]["connected"] is True
        finally:
            board.close()


def test_a_cli_recharge_reaches_the_board(tmp_path, amqtt_broker):
    """`wattkeeper recharge` runs in its own process, without MQTT: the sale's
    credit goes through the outbox, and the running head-end sends it."""
    import subprocess
    import sys
    dev = "cli-" + uuid.uuid4().hex[:10]
    key = secrets.token_hex(32)
    url = "sqlite:///" + str(tmp_path / "cli.db")
    app = create_app(Settings(database_url=url, mqtt_url=amqtt_broker.url), start_mqtt=True)
    res = _site(app.state.session_factory, dev, key)
    acc = res["concentrators"][dev]["meters"][dev + "-m0"]["account_id"]
    make_user(app, "cashier-cli", "cashier", [res["property_id"]])
    with TestClient(app):
        assert app.state.mqtt.wait_ready(10)
        board = Board(amqtt_broker.host, amqtt_broker.port, dev, key)
        try:
            out = subprocess.run([sys.executable, "-m", "headend.cli", "--db", url, "recharge", str(acc), "12.34",
                                  "--as", "cashier-cli"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert "1 credit message(s) queued" in out.stdout
            credit = board.wait_for(protocol.CREDIT, m=0, timeout=15)
            assert credit["bal"] == 100000 + 123400
        finally:
            board.close()
    with app.state.session_factory() as s:
        from headend.models import Downlink, LedgerEntry, User
        assert all(d.sent is not None for d in s.exec(select(Downlink)).all())
        sale = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "recharge", LedgerEntry.amount_mu == 123400)).one()
        assert s.get(User, sale.user_id).username == "cashier-cli" and sale.source == "cli"


def test_a_worker_lingers_for_messages_to_batch_with():
    """WK_INGEST_LINGER_MS: a message that arrives alone waits that long
    for others to share its transaction (0, the default: it starts at once)."""
    class Recorder:
        def __init__(self):
            self.calls = []

        def handle(self, topic, payload):
            self.calls.append([topic])
            return []

        def handle_batch(self, items):
            self.calls.append([t for t, _p in items])
            return [[] for _ in items]

    def run(linger_s):
        ing = Recorder()
        svc = MqttService(ing, linger_s=linger_s)
        worker = threading.Thread(target=svc._work, daemon=True)
        svc.queue.put(("wk/a/up", b"1"))
        worker.start()
        time.sleep(0.05)
        svc.queue.put(("wk/b/up", b"2"))
        time.sleep(0.3)
        svc.queue.put(None)
        worker.join(5)
        return ing.calls

    assert run(0.25) == [["wk/a/up", "wk/b/up"]]
    assert run(0.0) == [["wk/a/up"], ["wk/b/up"]]
    assert Settings(ingest_linger_ms=5).ingest_linger_ms == 5
