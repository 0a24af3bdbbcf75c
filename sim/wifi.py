"""A TCP proxy that behaves like a board's Wi-Fi link: a bandwidth in each
direction and a one-way latency, so transfers take the time they take on a
site (the OTA benchmark: an ESP32 on a 2.4 GHz link moves an MQTT stream at
about 1 Mbit/s, with 10-30 ms to the broker).

    with WifiLink(("127.0.0.1", broker_port), rate_bps=1_000_000, latency_ms=20) as w:
        ... the board connects to w.address ...
"""
import collections
import socket
import threading
import time


class WifiLink:
    def __init__(self, upstream, rate_bps=1_000_000, latency_ms=20, host="127.0.0.1"):
        self.upstream = tuple(upstream)
        self.rate = rate_bps / 8.0          # bytes per second, each direction
        self.latency = latency_ms / 1000.0
        self.host = host
        self.sock = None
        self.stopping = threading.Event()
        self.bytes = 0
        self._threads = []

    @property
    def address(self):
        return self.sock.getsockname()

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._spawn(self._accept)
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._pipe, c, u)
            self._spawn(self._pipe, u, c)

    def _pipe(self, src, dst):
        # read, pace at the link's rate, deliver `latency` later
        q = collections.deque()
        cv = threading.Condition()
        done = []

        def sender():
            while True:
                with cv:
                    while not q and not done:
                        cv.wait(0.2)
                    if not q and done:
                        break
                    due, data = q.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    break
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self._spawn(sender)
        src.settimeout(0.2)
        free_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                data = src.recv(1460)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            self.bytes += len(data)
            now = time.monotonic()
            free_at = max(free_at, now) + len(data) / self.rate
            with cv:
                q.append((free_at + self.latency, data))
                cv.notify()
        with cv:
            done.append(1)
            cv.notify()
