"""The broker `wattkeeper broker-config` writes, run by a Mosquitto of its
own on free ports (the system one on 1883 is not touched), tried as an
attacker would: anonymous and wrong-password clients are refused; board A's
credential cannot publish or subscribe as board B, read `#`, leave a retained
message on a downlink topic or take over B's client id; the head-end's
credential works (also as a shared subscription) and the real ingest answers
a board over TLS."""
import json
import os
import queue
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from concentrator import protocol
from headend.cli.broker_cmd import default_owner
from headend.core import db, migrate
from headend.ingest import Ingest
from headend.services.seed import seed_site
from headend.transport import broker_config as bc
from headend.transport.broker import free_port
from headend.transport.mqtt import MqttService
from sim.brokers import MosquittoBroker

A, B = "lock-a", "lock-b"
QUIET_S = 1.0          # how long "nothing arrives" is watched for


@pytest.fixture(scope="module")
def site():
    out = tempfile.mkdtemp(prefix="wk-broker-")
    os.chmod(out, 0o755)          # Mosquitto reads it after dropping root
    s = bc.write_site(out, [A, B], ["127.0.0.1", "localhost"], port=free_port(), headend_port=free_port(),
                      bind="127.0.0.1", owner=default_owner())
    broker = MosquittoBroker(port=s.devices_listener.port, conf=s.path("conf")).start()
    yield s
    broker.cleanup()
    shutil.rmtree(out, ignore_errors=True)


class Client:
    """A paho client over TLS that records what happens to it."""

    def __init__(self, site, user=None, password=None, client_id=None, headend=False, tls=True):
        self.result = queue.Queue()
        self.inbox = queue.Queue()
        self.subacks = queue.Queue()
        self.disconnected = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + uuid.uuid4().hex[:8])
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls:
            self.c.tls_set(ca_certs=site.path("ca_cert"), cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = lambda c, u, f, rc, p: self.result.put(rc)
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.c.on_message = lambda c, u, m: self.inbox.put((m.topic, bytes(m.payload), m.retain))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put([r.value for r in rcs])
        self.c.reconnect_delay_set(30, 60)      # no automatic second try inside a test
        port = site.headend_listener.port if headend else site.devices_listener.port
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        self.rc = self.result.get(timeout=10)

    @property
    def accepted(self):
        return not self.rc.is_failure

    def subscribe(self, topic):
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=5)

    def publish(self, topic, payload, retain=False, qos=1):
        return self.c.publish(topic, payload, qos=qos, retain=retain)

    def received(self, wait=QUIET_S):
        """Every message that arrives within `wait` seconds."""
        out = []
        t_end = time.monotonic() + wait
        while time.monotonic() < t_end:
            try:
                out.append(self.inbox.get(timeout=max(0.01, t_end - time.monotonic())))
            except queue.Empty:
                break
        return out

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def board(site, dev, tls=True):
    return Client(site, dev, site.device_passwords[dev], client_id=dev, tls=tls)


def headend(site, tls=True):
    return Client(site, site.headend_user, site.headend_password, headend=True,
                  client_id="wk-headend-t" + uuid.uuid4().hex[:6], tls=tls)


def test_the_files_are_mosquitto_s_and_secrets_are_private(site):
    conf = open(site.path("conf")).read()
    for line in ("per_listener_settings true", "retain_available false", "allow_anonymous false",
                 "use_username_as_clientid true", "tls_version tlsv1.2"):
        assert line in conf
    assert "allow_anonymous true" not in conf
    for what in ("ca_key", "server_key", "passwd_devices", "passwd_headend", "credentials", "env"):
        assert os.stat(site.path(what)).st_mode & 0o077 == 0, what
    users = bc.read_password_file(site.path("passwd_devices"))
    assert sorted(users) == [A, B]
    assert all(v.startswith("$7$101$") for v in users.values())
    assert bc.verify_mosquitto_hash(site.device_passwords[A], users[A])
    assert not bc.verify_mosquitto_hash(site.device_passwords[B], users[A])
    creds = json.load(open(site.path("credentials")))
    assert creds["boards"][A]["user"] == A and creds["boards"][A]["tls"] is True


def test_anonymous_and_wrong_passwords_are_refused(site):
    for kw in ({}, {"user": A, "password": "not-the-password"}, {"user": "nobody", "password": "x"},
               {"user": A, "password": ""}):
        c = Client(site, client_id=kw.get("user"), **kw)
        try:
            assert not c.accepted, kw
        finally:
            c.close()
    # a board's credential on the head-end's listener, and the head-end's on the boards'
    c = Client(site, A, site.device_passwords[A], headend=True)
    assert not c.accepted
    c.close()
    c = Client(site, site.headend_user, site.headend_password)
    assert not c.accepted
    c.close()


def test_plain_tcp_is_not_served(site):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=A)
    c.username_pw_set(A, site.device_passwords[A])
    got = queue.Queue()
    c.on_connect = lambda *a: got.put("connected")
    try:
        c.connect("127.0.0.1", site.devices_listener.port, keepalive=5)
        c.loop_start()
        with pytest.raises(queue.Empty):
            got.get(timeout=2)
    except OSError:
        pass               # the TLS listener dropped the plain connection
    finally:
        c.loop_stop()


def test_a_board_reaches_only_its_own_topics(site):
    he, a, b = headend(site), board(site, A), board(site, B)
    try:
        assert he.accepted and a.accepted and b.accepted
        assert he.subscribe("wk/+/up") == [1]
        # A subscribes to everything it can think of; only its own downlink is granted
        for topic in ("#", protocol.topic_down(B), "wk/+/down", protocol.topic_up(B), "$SYS/#"):
            a.subscribe(topic)
        assert a.subscribe(protocol.topic_down(A)) == [1]
        assert b.subscribe(protocol.topic_down(B)) == [1]
        # A publishes as B (uplink and downlink) and on its own downlink: dropped
        a.publish(protocol.topic_up(B), b"forged by A")
        a.publish(protocol.topic_down(B), b"forged downlink")
        a.publish(protocol.topic_down(A), b"to itself")
        a.publish(protocol.topic_up(A), b"A's own uplink")          # the one that must arrive
        he.publish(protocol.topic_down(B), b"for B only")
        he.publish(protocol.topic_down(A), b"for A")
        up = he.received()
        assert [(t, p) for t, p, _r in up] == [(protocol.topic_up(A), b"A's own uplink")]
        got_a = [(t, p) for t, p, _r in a.received()]
        assert got_a == [(protocol.topic_down(A), b"for A")], got_a
        got_b = [(t, p) for t, p, _r in b.received()]
        assert got_b == [(protocol.topic_down(B), b"for B only")], got_b
    finally:
        for c in (he, a, b):
            c.close()


def test_no_retained_message_on_a_downlink_topic(site):
    a = board(site, A)
    a.publish(protocol.topic_down(A), b"retained by A", retain=True)
    assert a.disconnected.wait(5), "the broker kept a client that sent a retained message"
    a.close()
    he = headend(site)
    he.publish(protocol.topic_down(A), b"retained by the head-end", retain=True)
    assert he.disconnected.wait(5)
    he.close()
    a = board(site, A)
    try:
        assert a.subscribe(protocol.topic_down(A)) == [1]
        assert a.received() == []          # nothing was kept for a new subscriber
    finally:
        a.close()


def test_a_board_cannot_take_over_another_boards_client_id(site):
    b = board(site, B)
    try:
        assert b.subscribe(protocol.topic_down(B)) == [1]
        intruder = Client(site, A, site.device_passwords[A], client_id=B)
        assert intruder.accepted                      # it connects, but as A
        time.sleep(0.5)
        assert not b.disconnected.is_set(), "B's session was taken over"
        he = headend(site)
        he.publish(protocol.topic_down(B), b"still B's")
        assert [p for _t, p, _r in b.received()] == [b"still B's"]
        assert intruder.received(0.2) == []
        for c in (intruder, he):
            c.close()
    finally:
        b.close()


def test_head_end_workers_share_the_ingest_over_tls(site, tmp_path):
    """The real head-end (MqttService + Ingest, shared subscription) on its
    listener with the CA; board A over TLS on its own: hello -> ack."""
    eng = db.make_engine("sqlite:///" + str(tmp_path / "lock.db"))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "lock", [{"dev": A, "key_hex": key, "meters": [{"id": "lock-m0", "opening_energy_wh": 0}]}],
                  tariff_price_mu_per_kwh=6000, opening_balance_mu=10000)
        s.commit()
    workers = [MqttService(Ingest(sf), site.headend_url(), shared=True, ca_file=site.path("ca_cert"),
                           session_factory=sf).start() for _ in range(2)]
    a = None
    try:
        assert all(w.wait_ready(10) for w in workers), [w.snapshot() for w in workers]
        a = board(site, A)
        assert a.subscribe(protocol.topic_down(A)) == [1]
        body = protocol.message(A, 1, protocol.HELLO, int(time.time()), fw="t", boot=1, last=0, acked=0,
                                meters=["lock-m0"])
        a.publish(protocol.topic_up(A), protocol.seal(body, protocol.key_from_hex(key)), qos=0)
        kinds = []
        t_end = time.monotonic() + 10
        # ack, tariff and credit are published back to back; wait for the last one
        while not {protocol.ACK, protocol.CREDIT} <= set(kinds) and time.monotonic() < t_end:
            for _t, payload, _r in a.received(0.5):
                kinds.append(protocol.verify(payload, protocol.key_from_hex(key), dev=A)["t"])
        assert protocol.ACK in kinds and protocol.CREDIT in kinds, kinds
        assert sum(w.ingest.stats.get("accepted") for w in workers) == 1    # one worker got it, once
    finally:
        if a is not None:
            a.close()
        for w in workers:
            w.stop()
        eng.dispose()


def test_running_again_keeps_passwords_and_adds_boards(site, tmp_path):
    out = str(tmp_path / "again")
    first = bc.write_site(out, [A], ["127.0.0.1"])
    ca = open(first.path("ca_cert")).read()
    second = bc.write_site(out, [A, B], ["127.0.0.1"])
    assert second.device_passwords[A] == first.device_passwords[A]
    assert B in second.device_passwords and second.headend_password == first.headend_password
    assert open(second.path("ca_cert")).read() == ca and "server_cert" not in second.generated
    third = bc.write_site(out, [A, B], ["127.0.0.1", "mqtt.example.org"], rotate=[A])
    assert third.device_passwords[A] != first.device_passwords[A]
    assert "server_cert" in third.generated
    assert sorted(bc.cert_hosts(open(third.path("server_cert"), "rb").read())) == ["127.0.0.1", "mqtt.example.org"]
    for bad in ("a/b", "+", "#", "", bc.HEADEND_USER):
        with pytest.raises(bc.BrokerConfigError):
            bc.write_site(out, [bad], ["127.0.0.1"])


# ------------------------------------------------- the demo's embedded broker
@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """amqtt with the password files of broker-config, on plain TCP (a
    demo on one machine)."""
    from headend.transport.broker import EmbeddedBroker
    s = bc.write_site(str(tmp_path_factory.mktemp("amqtt")), [A, B], ["127.0.0.1"])
    broker = EmbeddedBroker("127.0.0.1", free_port(), password_files=[s.path("passwd_devices"),
                                                                       s.path("passwd_headend")]).start()
    s.devices_listener.port = s.headend_listener.port = broker.port
    yield s
    broker.stop()


def test_the_embedded_broker_takes_only_its_credentials_and_keeps_boards_apart(embedded):
    for kw in ({}, {"user": A, "password": "wrong"}, {"user": "nobody", "password": "x"}):
        c = Client(embedded, client_id=kw.get("user"), tls=False, **kw)
        assert not c.accepted, kw
        c.close()
    # A's credential with B's client id is refused (it would take over B's session)
    c = Client(embedded, A, embedded.device_passwords[A], client_id=B, tls=False)
    assert not c.accepted
    c.close()
    he, a, b = headend(embedded, tls=False), board(embedded, A, tls=False), board(embedded, B, tls=False)
    try:
        assert he.accepted and a.accepted and b.accepted
        assert he.subscribe("wk/+/up") == [1]
        assert a.subscribe("#") == [128] and a.subscribe(protocol.topic_down(B)) == [128]
        assert a.subscribe(protocol.topic_down(A)) == [1]
        assert b.subscribe(protocol.topic_down(B)) == [1]
        a.publish(protocol.topic_up(B), b"forged by A")
        a.publish(protocol.topic_down(B), b"forged downlink", retain=True)
        a.publish(protocol.topic_up(A), b"A's own uplink")
        he.publish(protocol.topic_down(B), b"for B only")
        assert [(t, p) for t, p, _r in he.received()] == [(protocol.topic_up(A), b"A's own uplink")]
        assert [p for _t, p, _r in b.received()] == [b"for B only"]
        assert a.received() == []
    finally:
        for c in (he, a, b):
            c.close()
    late = board(embedded, B, tls=False)          # nothing was retained on B's downlink
    try:
        assert late.subscribe(protocol.topic_down(B)) == [1]
        assert late.received() == []
    finally:
        late.close()
