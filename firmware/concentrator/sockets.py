# The board's sockets as the HAL hands them to the firmware (hal.socket_module):
# MicroPython's usocket with a timeout on every blocking call that
# setblocking(True) does not take away, and TLS through MicroPython's ssl.
# Used by hal_esp32; independent of `machine`, so the tests drive it under
# CPython with a socket that offers only what MicroPython's socket offers.


class Sock:
    def __init__(self, s, timeout):
        self.s = s             # what bytes go through (under TLS: the SSL socket)
        self.raw = s           # the TCP socket
        self.t = timeout
        s.settimeout(timeout)

    def connect(self, addr):
        self.raw.connect(addr)

    def setblocking(self, flag):
        if flag:
            if self.s is not self.raw:
                self.s.setblocking(True)     # (MicroPython's ssl passes it down)
            self.raw.settimeout(self.t)
        else:
            self.s.setblocking(False)

    def settimeout(self, t):
        self.setblocking(t is None or t > 0)

    def read(self, n=-1):
        return self.s.read(n)

    def readinto(self, buf, n=None):
        return self.s.readinto(buf) if n is None else self.s.readinto(buf, n)

    def readline(self):
        return self.s.readline()

    def recv(self, n):
        return self.s.read(n)

    def write(self, buf):
        return self.s.write(buf)

    def send(self, buf):
        return self.s.write(buf)

    def sendall(self, buf):
        self.s.write(buf)

    def setsockopt(self, *a):
        self.raw.setsockopt(*a)

    def close(self):
        self.s.close()


class SocketModule:
    def __init__(self, usocket, timeout):
        self.m = usocket
        self.timeout = timeout

    def socket(self, *args):
        return Sock(self.m.socket(), self.timeout)

    def getaddrinfo(self, host, port, *args):
        return self.m.getaddrinfo(host, port)

    def wrap_tls(self, sock, host, ca):
        # TLS over a connected Sock: MicroPython's ssl on the board's own
        # TCP socket (a stream it accepts), the broker's certificate checked
        # against the CA file `ca` (PEM or DER) and the name `host`
        import ssl
        with open(ca, "rb") as f:
            cadata = f.read()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=cadata)
        sock.s = ctx.wrap_socket(sock.raw, server_hostname=host)
        return sock
