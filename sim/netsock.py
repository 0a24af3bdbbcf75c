"""MicroPython-style sockets over CPython TCP, for the simulated HAL.

umqtt.simple calls read/write/setblocking on its socket the way MicroPython
streams work. These sockets behave the same way, with one difference that
is the point of the HAL: a blocking call never waits longer than `timeout`
seconds (OSError(ETIMEDOUT) instead), so a silent broker cannot hang a step.
"""
import errno
import socket as _socket


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
            except (BlockingIOError, InterruptedError):
                if not self._blocking and not buf:
                    return None
                if not self._blocking:
                    # the rest of a packet is on its way: wait for it, bounded
                    self._s.settimeout(self.timeout)
                    self._blocking = True
                continue
            except _socket.timeout:
                raise OSError(errno.ETIMEDOUT, "read timed out")
            except ConnectionError as e:
                raise OSError(errno.ECONNRESET, str(e))
            if not chunk:
                return bytes(buf)
            buf += chunk
            if not self._blocking:
                self.setblocking(True)
        return bytes(buf)

    def write(self, buf):
        if isinstance(buf, str):
            buf = buf.encode()   # MicroPython streams accept str too
        try:
            self._s.sendall(bytes(buf))
        except _socket.timeout:
            raise OSError(errno.ETIMEDOUT, "write timed out")
        except ConnectionError as e:
            raise OSError(errno.ECONNRESET, str(e))
        return len(buf)

    def close(self):
        try:
            self._s.close()
        except OSError:
            pass


class SocketModule:
    """What the HAL hands to the firmware as `socket_module`."""

    def __init__(self, timeout=2.0):
        self.timeout = timeout

    def socket(self, *args):
        return TimeoutSocket(self.timeout)

    def getaddrinfo(self, host, port, *args):
        info = _socket.getaddrinfo(host, port, _socket.AF_INET, _socket.SOCK_STREAM)
        return [(i[0], i[1], i[2], i[3], i[4]) for i in info]
