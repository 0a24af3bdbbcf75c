"""The board's MQTT link with both umqtt.simple versions (issue 14, check 2):
it connects, publishes and receives through a socket object that offers
only what MicroPython's socket offers, driven by the 2017 umqtt.simple of
the package index (build/mplib) and by the call sequence of the current one
(tests/firmware/umqtt_current.py; no registry reachable here ships 1.8.0).
The socket layer under the link is the board's own (concentrator.sockets,
what hal_esp32 uses); the broker is a real Mosquitto."""
import errno
import socket as _socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from sim.firmware import load_umqtt     # (first: it makes umqtt importable)
import concentrator.mqtt as link_mod    # noqa: E402
from concentrator.sockets import SocketModule  # noqa: E402
from sim.brokers import MosquittoBroker  # noqa: E402
from tests.firmware import umqtt_current

MP_SOCKET_API = {"close", "bind", "listen", "accept", "connect", "send", "sendall", "sendto",
                 "recv", "recvfrom", "setsockopt", "settimeout", "setblocking", "makefile",
                 "read", "readinto", "readline", "write"}


class MpSocket:
    """A TCP socket with MicroPython's socket interface and semantics, and
    nothing else: settimeout(None) blocks forever, a timeout raises
    OSError(ETIMEDOUT), a non-blocking read with nothing there returns None,
    read(n) returns n bytes (fewer only at EOF)."""

    def __init__(self, af=2, type=1, proto=0, log=None):
        self._s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self._t = None
        self.log = log if log is not None else []

    def __getattribute__(self, name):
        if not name.startswith("_") and name != "log" and name not in MP_SOCKET_API:
            raise AttributeError("MicroPython's socket has no %r" % name)
        if name in MP_SOCKET_API:
            object.__getattribute__(self, "log").append(name)
        return object.__getattribute__(self, name)

    def settimeout(self, t):
        self._t = t
        self.log.append(("timeout", t))
        self._s.settimeout(t)

    def setblocking(self, flag):
        self.settimeout(None if flag else 0)

    def connect(self, addr):
        try:
            self._s.connect(addr)
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT)

    def read(self, n=-1):
        out = b""
        while len(out) < n:
            try:
                b = self._s.recv(n - len(out))
            except BlockingIOError:
                if not out:
                    return None
                self._s.settimeout(None)       # MicroPython keeps reading the rest
                continue
            except _socket.timeout:
                raise OSError(errno.ETIMEDOUT)
            if not b:
                break
            out += b
        self._s.settimeout(self._t)
        return out

    def readinto(self, buf, n=None):
        b = self.read(len(buf) if n is None else n)
        if b is None:
            return None
        buf[:len(b)] = b
        return len(b)

    def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            out += c
        return out

    def recv(self, n):
        try:
            return self._s.recv(n)
        except BlockingIOError:
            raise OSError(errno.EAGAIN)

    def write(self, buf):
        if isinstance(buf, str):
            buf = buf.encode()         # MicroPython streams take str too
        try:
            self._s.sendall(bytes(buf))
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT)
        return len(buf)

    def send(self, buf):
        return self.write(buf)

    def sendall(self, buf):
        self.write(buf)

    def setsockopt(self, *a):
        pass

    def close(self):
        self._s.close()

    def bind(self, a):
        raise OSError(errno.EOPNOTSUPP)

    listen = accept = sendto = recvfrom = makefile = bind


class MpSocketModule:
    """MicroPython's socket module: socket() and getaddrinfo() only."""

    def __init__(self):
        self.sockets = []

    def socket(self, *a):
        s = MpSocket(*a)
        self.sockets.append(s)
        return s

    def getaddrinfo(self, host, port, af=0, type=0, proto=0, flags=0):
        return [(2, 1, 6, "", (_socket.gethostbyname(host), port))]


class LinkHal:
    """What the link needs from the board's HAL, with the board's sockets."""

    def __init__(self, usocket):
        self.socket_module = SocketModule(usocket, 2)

    def net_ticks_ms(self):
        return int(time.monotonic() * 1000)

    def net_up(self):
        return True


@pytest.fixture(scope="module")
def broker():
    b = MosquittoBroker().start()
    yield b
    b.cleanup()


@pytest.fixture(params=["umqtt.simple 1.3.4 (package index)", "umqtt.simple 1.8.0 calls"])
def umqtt(request, monkeypatch):
    mod = load_umqtt() if "1.3.4" in request.param else umqtt_current
    monkeypatch.setattr(link_mod, "simple", mod)
    return mod


def _paho(broker, topic=None):
    got = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-%d" % time.monotonic_ns())
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.on_subscribe = lambda *a: ready.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    if topic:
        c.subscribe(topic, qos=1)
        assert ready.wait(5)
    return c, got


def _until(pred, link, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        link.step()
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_link_connects_publishes_and_receives_through_a_micropython_socket(broker, umqtt,
                                                                          monkeypatch):
    asked = []
    orig = link_mod._WatchedSocket.settimeout
    monkeypatch.setattr(link_mod._WatchedSocket, "settimeout",
                        lambda self, t: (asked.append(t), orig(self, t))[1])
    usock = MpSocketModule()
    hal = LinkHal(usock)
    got = []
    link = link_mod.Link(hal, "lk-%s" % umqtt.__name__[-7:], broker.host, broker.port,
                         keepalive_s=2, on_message=lambda t, m: got.append((t, m)),
                         subscribe="wk/lk/down")
    watcher, seen = _paho(broker, "wk/lk/up")
    try:
        assert _until(lambda: link.connected, link), link.last_error
        assert link.publish("wk/lk/up", b"hello from the board")
        watcher.publish("wk/lk/down", b"a downlink", qos=1)
        assert _until(lambda: got and seen, link), (got, seen, link.last_error)
        assert got[0] == (b"wk/lk/down", b"a downlink")
        assert seen[0] == ("wk/lk/up", b"hello from the board")
        # a step with nothing waiting returns at once (non-blocking check_msg)
        t0 = time.monotonic()
        for _ in range(20):
            link.step()
        assert time.monotonic() - t0 < 0.5
        # keepalive: the link pings, the broker answers, nothing is dropped
        assert not _until(lambda: not link.connected, link, timeout=3.5)
        assert link.failures == 0
    finally:
        link.close()
        watcher.loop_stop()
        watcher.disconnect()
    s = usock.sockets[0]
    calls = {c for c in s.log if isinstance(c, str)}
    assert {"connect", "write", "read", "setblocking"} <= calls
    # whatever umqtt asked for, the socket never blocks without a timeout
    timeouts = [c[1] for c in s.log if isinstance(c, tuple)]
    assert None not in timeouts, timeouts
    # the current umqtt.simple asks for settimeout(None) (block forever) in
    # connect(); the old one never calls it
    assert asked == ([None] if umqtt is umqtt_current else []), asked


def test_link_recovers_when_the_broker_goes_away(broker, umqtt):
    hal = LinkHal(MpSocketModule())
    link = link_mod.Link(hal, "lk-away", broker.host, broker.port, keepalive_s=4,
                         on_message=lambda t, m: None, subscribe="wk/lk2/down")
    try:
        assert _until(lambda: link.connected, link)
        broker.stop()
        assert _until(lambda: not link.connected, link, timeout=15)
        broker.start()
        assert _until(lambda: link.connected, link, timeout=20), link.last_error
        assert link.connects == 2
    finally:
        link.close()
