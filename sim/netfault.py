"""A TCP proxy between virtual boards and the MQTT broker that breaks the
network on command.

    px = FaultProxy(("127.0.0.1", broker_port)).start()
    route_site(site, px)            # boards now connect through the proxy
    px.set_mode("blackhole")        # ... and later px.set_mode("pass")

Modes:
  pass       forward bytes both ways (new connections are connected upstream;
             when the broker is down a new connection is closed at once)
  refuse     new connections are accepted and reset at once (connection
             refused, as when the broker's host is up but nothing listens);
             established connections keep working
  blackhole  every connection, established or new, goes silent without
             closing: bytes are accepted and dropped both ways, nothing is
             ever sent back, no FIN, no RST (a NAT entry that expired, a
             dead mobile link). A connection that has been black-holed stays
             dead when the mode goes back to `pass`, like a real one: the
             client must notice and reconnect.
  cut        (action, not a mode) reset every current connection now.

One thread runs a selector loop; nothing in it blocks except the upstream
connect (bounded by `connect_timeout`).
"""
import selectors
import socket
import struct
import threading

MODES = ("pass", "refuse", "blackhole")


class _Conn:
    __slots__ = ("client", "upstream", "black", "out_c", "out_u")

    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.black = upstream is None
        self.out_c = bytearray()    # bytes waiting to go to the client
        self.out_u = bytearray()    # bytes waiting to go to the broker


def _reset(sock):
    # close with RST instead of FIN
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    def __init__(self, upstream, host="127.0.0.1", port=0, connect_timeout=1.0):
        self.upstream = tuple(upstream)
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.mode = "pass"
        self.stats = {"accepted": 0, "refused": 0, "upstream_failed": 0,
                      "cut": 0, "blackholed": 0, "bytes_dropped": 0}
        self._conns = {}            # socket -> _Conn (both ends map to the same _Conn)
        self._sel = None
        self._lsock = None
        self._thread = None
        self._stop = False
        self._lock = threading.Lock()
        self._actions = []
        self._wake_r, self._wake_w = socket.socketpair()

    # -- control -------------------------------------------------------------
    @property
    def address(self):
        return (self.host, self.port)

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(64)
        ls.setblocking(False)
        self.port = ls.getsockname()[1]
        self._lsock = ls
        self._sel = selectors.DefaultSelector()
        self._sel.register(ls, selectors.EVENT_READ, "accept")
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        for c in list(self._distinct()):
            self._close(c, rst=True)
        if self._lsock is not None:
            self._lsock.close()
        if self._sel is not None:
            self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def set_mode(self, mode):
        if mode == "cut":
            return self.cut()
        if mode not in MODES:
            raise ValueError("mode must be one of %s or 'cut'" % (MODES,))
        self._do(("mode", mode))

    def cut(self):
        """Reset every current connection."""
        self._do(("cut", None))

    def connections(self):
        return len(self._distinct())

    def _do(self, action):
        ev = threading.Event()
        with self._lock:
            self._actions.append((action, ev))
        self._wake()
        if self._thread is not None and self._thread.is_alive():
            ev.wait(5)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the loop ------------------------------------------------------------
    def _distinct(self):
        seen = []
        for c in self._conns.values():
            if c not in seen:
                seen.append(c)
        return seen

    def _loop(self):
        while not self._stop:
            for key, ev in self._sel.select(0.5):
                what = key.data
                if what == "accept":
                    self._accept()
                elif what == "wake":
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    self._run_actions()
                else:
                    self._io(key.fileobj, ev)

    def _run_actions(self):
        with self._lock:
            todo, self._actions = self._actions, []
        for (kind, arg), ev in todo:
            if kind == "mode":
                self.mode = arg
                if arg == "blackhole":
                    for c in self._distinct():
                        if not c.black:
                            self._blacken(c)
            elif kind == "cut":
                for c in self._distinct():
                    self._close(c, rst=True)
                    self.stats["cut"] += 1
            ev.set()

    def _accept(self):
        try:
            cs, _ = self._lsock.accept()
        except OSError:
            return
        self.stats["accepted"] += 1
        if self.mode == "refuse":
            self.stats["refused"] += 1
            _reset(cs)
            return
        up = None
        if self.mode == "pass":
            try:
                up = socket.create_connection(self.upstream, timeout=self.connect_timeout)
            except OSError:
                self.stats["upstream_failed"] += 1
                _reset(cs)
                return
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cs.setblocking(False)
        cs.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(cs, up)
        self._conns[cs] = c
        self._sel.register(cs, selectors.EVENT_READ, c)
        if up is not None:
            self._conns[up] = c
            self._sel.register(up, selectors.EVENT_READ, c)
        else:
            self.stats["blackholed"] += 1

    def _blacken(self, c):
        c.black = True
        self.stats["blackholed"] += 1
        c.out_c = bytearray()
        c.out_u = bytearray()
        if c.upstream is not None:
            # the broker side will time the client out by itself; we just
            # stop talking to it
            self._unreg(c.upstream)
            self._conns.pop(c.upstream, None)
            _reset(c.upstream)
            c.upstream = None
        self._want_write(c.client, False, c)

    def _unreg(self, s):
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError, OSError):
            pass

    def _close(self, c, rst=False):
        for s in (c.client, c.upstream):
            if s is None:
                continue
            self._unreg(s)
            self._conns.pop(s, None)
            if rst:
                _reset(s)
            else:
                try:
                    s.close()
                except OSError:
                    pass
        c.upstream = None

    def _want_write(self, s, on, c):
        try:
            self._sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0), c)
        except (KeyError, ValueError, OSError):
            pass

    def _io(self, s, ev):
        c = self._conns.get(s)
        if c is None:
            self._unreg(s)
            return
        from_client = s is c.client
        if ev & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                if c.black:
                    # the client gave up on the dead connection: forget it
                    # (a black hole tells nobody anything)
                    self._unreg(s)
                    self._conns.pop(s, None)
                    try:
                        s.close()
                    except OSError:
                        pass
                else:
                    self._close(c)
                return
            if data:
                if c.black:
                    self.stats["bytes_dropped"] += len(data)
                else:
                    if from_client:
                        c.out_u += data
                        self._flush(c.upstream, c.out_u, c)
                    else:
                        c.out_c += data
                        self._flush(c.client, c.out_c, c)
        if ev & selectors.EVENT_WRITE and not c.black:
            if s is c.client:
                self._flush(c.client, c.out_c, c)
            elif s is c.upstream:
                self._flush(c.upstream, c.out_u, c)

    def _flush(self, s, buf, c):
        if s is None:
            return
        try:
            n = s.send(buf) if buf else 0
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._close(c)
            return
        del buf[:n]
        self._want_write(s, bool(buf), c)


def route_site(site, proxy):
    """Point every board of `site` at `proxy` (now and after power cycles);
    current connections are closed so the boards reconnect through it."""
    for vc in site.concentrators:
        vc.cfg["broker"]["host"] = proxy.host
        vc.cfg["broker"]["port"] = proxy.port
        link = vc.fw.link
        link.host, link.port = proxy.host, proxy.port
        if link.connected:
            link._fail(OSError("rerouted through the fault proxy"))
            link.next_try_ms = vc.hal.net_ticks_ms()
