"""MicroPython-style sockets over CPython TCP, for the simulated HAL.

umqtt.simple calls read/write/setblocking on its socket the way MicroPython
streams work. These sockets behave the same way, with one difference that
is the point of the HAL: a blocking call never waits longer than `timeout`
seconds (OSError(ETIMEDOUT) instead), so a silent broker cannot hang a step.
"""
import errno
import socket as _socket
import ssl as _ssl

_WOULD_BLOCK = (BlockingIOError, InterruptedError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError)


class TimeoutSocket:
    def __init__(self, timeout=2.0):
        self.timeout = timeout
        self._s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self._s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._s.settimeout(timeout)
        self._blocking = True

    def connect(self, addr):
        try:
            self._s.connect(addr)
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT, "connect timed out")

    def setblocking(self, flag):
        flag = bool(flag)
        if flag != self._blocking:
            self._blocking = flag
            self._s.settimeout(self.timeout if flag else 0.0)

    def settimeout(self, t):
        self.timeout = t
        self._s.settimeout(t)

    def read(self, n):
        # blocking: exactly n bytes (b"" at EOF) or OSError on timeout;
        # non-blocking: None when nothing is waiting.
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self._s.recv(n - len(buf))
            except _WOULD_BLOCK:
                if not self._blocking and not buf:
                    return None
                if not self._blocking:
                    # the rest of a packet is on its way: wait for it, bounded
                    self._s.settimeout(self.timeout)
                    self._blocking = True
                continue
            except _socket.timeout:
                raise OSError(errno.ETIMEDOUT, "read timed out")
            except (ConnectionError, _ssl.SSLError) as e:
                raise OSError(errno.ECONNRESET, str(e))
            if not chunk:
                return bytes(buf)
            buf += chunk
            if not self._blocking:
                self.setblocking(True)
        return bytes(buf)

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else min(n, len(buf))
        b = self.read(n)
        if b is None:
            return None
        buf[:len(b)] = b
        return len(b)

    def readline(self):
        out = bytearray()
        while True:
            c = self.read(1)
            if not c:
                return bytes(out)
            out += c
            if c == b"\n":
                return bytes(out)

    def recv(self, n):
        # like MicroPython's: up to n bytes of what is there (b"" at EOF)
        try:
            return self._s.recv(n)
        except _WOULD_BLOCK:
            raise OSError(errno.EAGAIN, "no data")
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT, "read timed out")

    def send(self, buf):
        return self.write(buf)

    def sendall(self, buf):
        self.write(buf)

    def setsockopt(self, *a):
        self._s.setsockopt(*a)

    def write(self, buf):
        if isinstance(buf, str):
            buf = buf.encode()   # MicroPython streams accept str too
        try:
            self._s.sendall(bytes(buf))
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT, "write timed out")
        except (ConnectionError, _ssl.SSLError) as e:
            raise OSError(errno.ECONNRESET, str(e))
        return len(buf)

    def close(self):
        try:
            self._s.close()
        except OSError:
            pass


class SocketModule:
    """What the HAL hands to the firmware as `socket_module`. `read_file`
    reads a file of the board's flash (the CA certificate for TLS)."""

    def __init__(self, timeout=2.0, read_file=None):
        self.timeout = timeout
        self.read_file = read_file

    def wrap_tls(self, sock, host, ca):
        """TLS over a connected TimeoutSocket (CPython's ssl; the board uses
        MicroPython's): the broker's certificate must chain to the CA file
        `ca` of the board's flash (PEM or DER) and name `host`."""
        data = self.read_file(ca)
        if data.lstrip().startswith(b"-----BEGIN"):
            ctx = _ssl.create_default_context(cadata=data.decode("ascii"))
        else:
            ctx = _ssl.create_default_context(cadata=data)
        ctx.check_hostname = True
        ctx.verify_mode = _ssl.CERT_REQUIRED
        raw = sock._s
        raw.settimeout(sock.timeout)
        try:
            sock._s = ctx.wrap_socket(raw, server_hostname=host)
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT, "TLS handshake timed out")
        except _ssl.SSLError as e:
            raise OSError(errno.ECONNABORTED, "TLS: %s" % e)
        if not sock._blocking:
            sock._s.settimeout(0.0)
        return sock

    def socket(self, *args):
        return TimeoutSocket(self.timeout)

    def getaddrinfo(self, host, port, *args):
        info = _socket.getaddrinfo(host, port, _socket.AF_INET, _socket.SOCK_STREAM)
        return [(i[0], i[1], i[2], i[3], i[4]) for i in info]
