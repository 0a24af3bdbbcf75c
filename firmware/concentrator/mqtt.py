# The MQTT link: micropython-lib's umqtt.simple, driven so that a dead or
# silent broker never blocks a step.
#
# - every socket call has a timeout (the HAL's sockets raise OSError on expiry);
# - we send our own PINGREQ and drop a connection that has been silent for
#   1.5 keepalive periods (a black hole that never closes);
# - every socket call also checks a deadline for the whole step (connect,
#   one step's reads, one publish): per-call timeouts alone would let a
#   trickling or half-dead connection chain several timeouts in one step;
# - we ping when the broker has been silent for half a keepalive, even while
#   we publish often (otherwise a link that only publishes QoS 0 gets no
#   bytes back and is wrongly dropped as a black hole);
# - reconnect with exponential back-off;
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
    # Wraps a HAL socket and remembers when bytes last arrived.
    def __init__(self, sock, link):
        self._s = sock
        self._link = link

    def _check(self):
        dl = self._link.deadline_ms
        if dl is not None and self._link.hal.net_ticks_ms() - dl > 0:
            raise OSError(110)  # ETIMEDOUT: this step's network budget is spent

    def read(self, n):
        self._check()
        b = self._s.read(n)
        if b:
            self._link.rx_ms = self._link.hal.net_ticks_ms()
            self._link.rx_reads += 1
        return b

    def write(self, buf, n=None):
        self._check()
        if n is None:
            return self._s.write(buf)
        return self._s.write(memoryview(buf)[:n])

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def connect(self, addr):
        self._check()
        self._s.connect(addr)

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


class Link:
    def __init__(self, hal, client_id, host, port=1883, user=None,
                 password=None, keepalive_s=60, on_message=None, subscribe=None):
        self.hal = hal
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
        self.next_try_ms = now + self.backoff_ms
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
