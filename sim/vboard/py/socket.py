# socket / usocket of the virtual board: real TCP through the host (board.mjs).
# Blocking calls wait in the host with the socket's timeout:
# timeout -> OSError(110 ETIMEDOUT), refused -> OSError(111), would block -> OSError(11).
import uctypes
import _vbhost as _h

try:
    from io import IOBase as _Base
except ImportError:
    _Base = object

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 1
SO_REUSEADDR = 4
SO_KEEPALIVE = 8
TCP_NODELAY = 1

_EAGAIN = 11
_CONNECT_TIMEOUT_MS = 20000


def _link_up():
    return bool(_h.input("wifi", 1))


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if not _link_up():
        raise OSError(-202)
    r = _h.resolve(str(host))
    if isinstance(r, int):
        raise OSError(r if r == -202 else -r)
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (r, port))]


class socket(_Base):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        if type != SOCK_STREAM:
            raise OSError(95)  # EOPNOTSUPP: the virtual board has TCP only
        self._id = -1
        self._to = -1      # ms; -1 blocks forever, 0 non-blocking

    def settimeout(self, t):
        self._to = -1 if t is None else int(t * 1000)

    def setblocking(self, flag):
        self._to = -1 if flag else 0

    def setsockopt(self, level, opt, value):
        pass

    def connect(self, addr):
        if self._id >= 0:
            raise OSError(127)  # EISCONN
        if not _link_up():
            raise OSError(113)  # EHOSTUNREACH
        t = self._to if self._to > 0 else _CONNECT_TIMEOUT_MS
        r = _h.connect(str(addr[0]), int(addr[1]), t, "tcp")
        if r < 0:
            raise OSError(-r)
        self._id = r

    def _check(self):
        if self._id < 0:
            raise OSError(128)  # ENOTCONN

    def _fill(self, buf, n, partial):
        # read up to n bytes into buf; partial=True returns after the first chunk
        self._check()
        addr = uctypes.addressof(buf)
        got = 0
        while got < n:
            r = _h.recv(self._id, addr + got, n - got, self._to, -1)
            if r == 0:
                break
            if r < 0:
                if r == -_EAGAIN:
                    if got == 0:
                        return None
                    break
                raise OSError(-r)
            got += r
            if partial:
                break
        return got

    def recv(self, n):
        buf = bytearray(n)
        r = self._fill(buf, n, True)
        if r is None:
            raise OSError(_EAGAIN)
        return bytes(buf) if r == n else bytes(memoryview(buf)[:r])

    def read(self, n=-1):
        if n is None or n < 0:
            out = b""
            while True:
                b = self.read(1024)
                if not b:
                    return out if (out or b is not None) else None
                out += b
        buf = bytearray(n)
        r = self._fill(buf, n, False)
        if r is None:
            return None
        return bytes(buf) if r == n else bytes(memoryview(buf)[:r])

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        return self._fill(buf, n, False)

    def readline(self):
        out = b""
        while True:
            c = self.read(1)
            if not c:
                return out
            out += c
            if c == b"\n":
                return out

    def write(self, data, a=None, b=None):
        self._check()
        if isinstance(data, str):
            data = data.encode()
        off, n = (0, len(data)) if a is None else ((0, a) if b is None else (a, b))
        n = min(n, len(data) - off)
        if n <= 0:
            return 0
        r = _h.send(self._id, uctypes.addressof(data) + off, n)
        if r < 0:
            raise OSError(-r)
        return r

    def send(self, data):
        return self.write(data)

    def sendall(self, data):
        self.write(data)

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL: lets select.poll() watch the socket
            ret = 0
            if self._id >= 0:
                if arg & 1 and _h.avail(self._id) != 0:
                    ret |= 1
                if arg & 4:
                    ret |= 4
            return ret
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
        return 0

    def close(self):
        if self._id >= 0:
            _h.close(self._id)
            self._id = -1

    def fileno(self):
        return self._id

    def makefile(self, mode="rb", buffering=0):
        return self

    def bind(self, addr):
        raise OSError(95)

    def listen(self, backlog=0):
        raise OSError(95)

    def accept(self):
        raise OSError(95)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
