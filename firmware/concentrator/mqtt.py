# The MQTT link: micropython-lib's umqtt.simple, driven so that a dead or
# silent broker never blocks a step. Works with the umqtt.simple that
# `mpremote mip install umqtt.simple` installs today (1.8: `import socket`,
# settimeout() in connect(), an SSLContext for TLS) and with the 2017 one of
# the package index (1.3: `import usocket`, setblocking() only).
#
# - every socket call has a timeout (the HAL's sockets raise OSError on
#   expiry); a settimeout(None) from umqtt (the current one calls
#   sock.settimeout(timeout) with timeout=None) keeps the HAL's bound;
# - we send our own PINGREQ and drop a connection that has been silent for
#   1.5 keepalive periods (a black hole that never closes);
# - every socket call also checks a deadline for the whole step (connect,
#   one step's reads, one publish): per-call timeouts alone would let a
#   trickling or half-dead connection chain several timeouts in one step;
# - we ping when the broker has been silent for half a keepalive, even while
#   we publish often (otherwise a link that only publishes QoS 0 gets no
#   bytes back and is wrongly dropped as a black hole);
# - reconnect with exponential back-off and jitter (a fleet that lost its
#   broker does not come back in the same second);
# - TLS (broker "ca" in the config) is set up by the link itself right after
#   the TCP connect, through the HAL (hal.socket_module.wrap_tls: MicroPython's
#   ssl on the board's own socket, CPython's ssl in the simulator), so both
#   umqtt versions get a plain stream and neither needs its own ssl argument;
# - an error raised by the message callback (e.g. a flash error while
#   storing an ack) is the application's, not the link's: it propagates out
#   of step() instead of being taken for a dead connection;
# - publish is QoS 0: reliability comes from the head-end's application ack,
#   never from PUBACK.
from umqtt import simple

BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 60000
MAX_MSGS_PER_STEP = 8
STEP_BUDGET_MS = 1500      # socket work started after this in one call fails
                           # (a call still waits at most one socket timeout)


class _WatchedSocket:
    # The whole MicroPython socket interface over a HAL socket. The calls
    # that move bytes check the step's deadline and note when bytes arrive;
    # the timeout stays the HAL's; anything else (setsockopt, fileno,
    # makefile, ...) passes through to the HAL's socket.
    def __init__(self, sock, link):
        self._s = sock
        self._link = link

    def __getattr__(self, name):
        return getattr(self._s, name)

    def _check(self):
        dl = self._link.deadline_ms
        if dl is not None and self._link.hal.net_ticks_ms() - dl > 0:
            raise OSError(110)  # ETIMEDOUT: this step's network budget is spent

    def _got(self, n):
        if n:
            self._link.rx_ms = self._link.hal.net_ticks_ms()
            self._link.rx_reads += 1

    def read(self, n=-1):
        self._check()
        b = self._s.read(n)
        self._got(b)
        return b

    def readinto(self, buf, n=None):
        self._check()
        k = self._s.readinto(buf) if n is None else self._s.readinto(buf, n)
        self._got(k)
        return k

    def readline(self):
        self._check()
        b = self._s.readline()
        self._got(b)
        return b

    def recv(self, n):
        self._check()
        b = self._s.recv(n)
        self._got(b)
        return b

    def write(self, buf, a=None, b=None):
        self._check()
        if a is None:
            return self._s.write(buf)
        if b is None:
            return self._s.write(memoryview(buf)[:a])
        return self._s.write(memoryview(buf)[a:a + b])

    def send(self, buf):
        self._check()
        return self._s.write(buf)

    def sendall(self, buf):
        self._check()
        self._s.write(buf)

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def settimeout(self, t):
        # 0: non-blocking; anything else: blocking with the HAL's timeout
        # (never "forever", whatever umqtt asks for)
        self._s.setblocking(t is None or t > 0)

    def connect(self, addr):
        self._check()
        self._s.connect(addr)
        tls = self._link.tls
        if tls is not None:
            self._s = self._link.hal.socket_module.wrap_tls(self._s, tls[0], tls[1])

    def close(self):
        self._s.close()


class _Net:
    # Stands in for the socket module inside umqtt.simple.
    def __init__(self, link):
        self._link = link

    def socket(self, *args):
        return _WatchedSocket(self._link.hal.socket_module.socket(*args), self._link)

    def getaddrinfo(self, host, port, *args):
        return self._link.hal.socket_module.getaddrinfo(host, port, *args)


class Jitter:
    # A small deterministic pseudo-random source (xorshift32) seeded from a
    # device id: jitter that differs from board to board and is the same
    # in every run of a test.
    def __init__(self, seed_text):
        h = 2166136261
        for c in seed_text:
            h = ((h ^ ord(c)) * 16777619) & 0xFFFFFFFF
        self.x = h or 1

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def spread(self, ms, lo=75, hi=125):
        # ms * a random factor in [lo, hi) percent
        return ms * (lo + self.next() % (hi - lo)) // 100


class Link:
    def __init__(self, hal, client_id, host, port=1883, user=None,
                 password=None, keepalive_s=60, on_message=None, subscribe=None,
                 ca=None, tls_host=None):
        # ca: path of the CA certificate on the board's flash (PEM or DER):
        # the link then speaks TLS and checks the broker's certificate
        # against it and against tls_host (default: host)
        self.hal = hal
        self.tls = None if not ca else (tls_host or host, ca)
        self.jitter = Jitter(client_id)
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive_ms = keepalive_s * 1000
        self.on_message = on_message
        self.sub_topic = subscribe
        self.client = None
        self.connected = False
        self.backoff_ms = BACKOFF_MIN_MS
        self.next_try_ms = hal.net_ticks_ms()
        self.rx_ms = 0
        self.rx_reads = 0
        self.tx_ms = 0
        self.connects = 0
        self.failures = 0
        self.last_error = ""
        self.just_connected = False
        self.deadline_ms = None    # end of the current call's socket budget
        self.ping_ms = 0
        self.app_error = None

    def _reraise_app_error(self):
        e = self.app_error
        if e is not None:
            self.app_error = None
            raise e

    def _fail(self, err):
        self.failures += 1
        self.last_error = repr(err)
        if self.client is not None and self.client.sock is not None:
            try:
                self.client.sock.close()
            except Exception:
                pass
        self.client = None
        self.connected = False
        now = self.hal.net_ticks_ms()
        self.next_try_ms = now + self.jitter.spread(self.backoff_ms, 50, 100)
        self.backoff_ms = min(self.backoff_ms * 2, BACKOFF_MAX_MS)

    def _connect(self):
        simple.socket = _Net(self)
        c = simple.MQTTClient(self.client_id, self.host, self.port,
                              self.user, self.password,
                              keepalive=self.keepalive_ms // 1000)
        c.set_callback(self._deliver)
        self.client = c
        c.connect(True)
        if self.sub_topic:
            c.subscribe(self.sub_topic, 1)
        now = self.hal.net_ticks_ms()
        self.rx_ms = now
        self.tx_ms = now
        self.connected = True
        self.just_connected = True
        self.connects += 1
        self.backoff_ms = BACKOFF_MIN_MS

    def _deliver(self, topic, msg):
        if self.on_message is not None:
            try:
                self.on_message(topic, msg)
            except Exception as e:
                self.app_error = e
                raise

    def step(self):
        # One bounded slice of MQTT work. Returns the number of messages handled.
        now = self.hal.net_ticks_ms()
        if not self.connected:
            if not self.hal.net_up() or now - self.next_try_ms < 0:
                return 0
            self.deadline_ms = now + STEP_BUDGET_MS
            try:
                self._connect()
            except Exception as e:
                self._fail(e)
                self._reraise_app_error()
            finally:
                self.deadline_ms = None
            return 0
        n = 0
        self.deadline_ms = now + STEP_BUDGET_MS
        try:
            while n < MAX_MSGS_PER_STEP:
                before = self.rx_reads
                self.client.check_msg()
                if self.rx_reads == before:
                    break  # nothing was waiting
                n += 1
            now = self.hal.net_ticks_ms()
            if now - self.rx_ms > self.keepalive_ms * 3 // 2:
                raise OSError(110)  # silent connection: a black hole
            half = self.keepalive_ms // 2
            if now - self.tx_ms > half or (now - self.rx_ms > half and now - self.ping_ms > half):
                self.client.ping()
                self.tx_ms = now
                self.ping_ms = now
        except Exception as e:
            self._fail(e)
            self._reraise_app_error()
        finally:
            self.deadline_ms = None
        return n

    def publish(self, topic, payload):
        # True if handed to the broker's TCP connection.
        if not self.connected:
            return False
        self.deadline_ms = self.hal.net_ticks_ms() + STEP_BUDGET_MS
        try:
            self.client.publish(topic, payload)
            self.tx_ms = self.hal.net_ticks_ms()
            return True
        except Exception as e:
            self._fail(e)
            return False
        finally:
            self.deadline_ms = None

    def close(self):
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
        self.client = None
        self.connected = False
