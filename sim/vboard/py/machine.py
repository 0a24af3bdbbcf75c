# machine module of the Wattkeeper virtual board (ESP32-like), over the host.
# Pin outputs -> <state>/pins.json, Pin inputs <- <state>/inputs.json ("pins"),
# UART -> the RS485 bus server given by --bus (see sim/vboard/README.md).
import time
import uctypes
import _vbhost as _h

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset():
    _h.reset()


def soft_reset():
    _h.soft_reset()


def reset_cause():
    return _h.reset_cause()


def unique_id():
    import binascii
    return binascii.unhexlify(_h.uid())


def freq(hz=None):
    if hz is None:
        return 160000000


def idle():
    _h.poll()


def lightsleep(ms=0):
    time.sleep_ms(ms)


def deepsleep(ms=0):
    _h.reset()


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    # As on an ESP32, Pin(n, ...) is the GPIO's one static object (re)configured,
    # not a new object on the heap: the pins exist before the firmware runs.
    def __new__(cls, id, *args, **kw):
        p = _PINS.get(id)
        if p is None:
            p = _PINS[id] = object.__new__(cls)
            p._id = id
            p._mode = Pin.IN
            p._pull = None
        return p

    def __init__(self, id, mode=-1, pull=-1, value=None, drive=None, hold=None):
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, drive=None, hold=None):
        if mode is not None and mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)
        elif self._mode != Pin.IN and _h.pin_out(self._id) < 0:
            _h.pin_write(self._id, 0)

    def value(self, v=None):
        if v is None:
            if self._mode == Pin.OUT:
                o = _h.pin_out(self._id)
                return 0 if o < 0 else o
            return _h.pin_in(self._id, 1 if self._pull == Pin.PULL_UP else 0)
        _h.pin_write(self._id, 1 if v else 0)

    __call__ = value

    def on(self):
        _h.pin_write(self._id, 1)

    def off(self):
        _h.pin_write(self._id, 0)

    def irq(self, handler=None, trigger=3, wake=None):
        return None

    def __repr__(self):
        return "Pin(%s)" % (self._id,)


_PINS = {}
for _n in range(40):       # the ESP32's GPIOs
    Pin.__new__(Pin, _n)


class Signal:
    def __init__(self, pin, *args, invert=False, **kw):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin, *args, **kw)
        self._inv = invert

    def value(self, v=None):
        if v is None:
            return self._pin.value() ^ self._inv
        self._pin.value((1 if v else 0) ^ self._inv)

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class WDT:
    def __init__(self, id=0, timeout=5000):
        _h.wdt_start(timeout)

    def feed(self):
        _h.wdt_feed()


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            t = time.gmtime()
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        s = time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0))
        _h.set_rtc(s, (dt[7] // 1000) if len(dt) > 7 else 0)

    def init(self, dt):
        self.datetime(dt)


_PAR = {None: "N", 0: "E", 1: "O"}


class UART:
    INV_TX = 1
    INV_RX = 2
    RTS = 1
    CTS = 2

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, **kw):
        self._id = id
        self._sock = None
        self._baud = 115200
        self._bits = 8
        self._parity = None
        self._stop = 1
        self._timeout = 0
        self._timeout_char = 0
        self._rxbuf = 256
        self._tx_end = time.ticks_ms()
        self.init(baudrate, bits, parity, stop, **kw)

    def init(self, baudrate=None, bits=None, parity=-1, stop=None, tx=None, rx=None, rts=None,
             cts=None, txbuf=None, rxbuf=None, timeout=None, timeout_char=None, invert=None,
             flow=None):
        if baudrate is not None:
            self._baud = baudrate
        if bits is not None:
            self._bits = bits
        if parity != -1:
            self._parity = parity
        if stop is not None:
            self._stop = stop
        if timeout is not None:
            self._timeout = timeout
        if timeout_char is not None:
            self._timeout_char = timeout_char
        if rxbuf is not None:
            self._rxbuf = rxbuf
        cfg = "%d,%d,%s,%d" % (self._baud, self._bits, _PAR[self._parity], self._stop)
        if self._sock is None:
            s = _h.bus_open(cfg)
            self._sock = s if s >= 0 else -1
        elif self._sock >= 0:
            _h.bus_config(self._sock, cfg)

    def deinit(self):
        if self._sock is not None and self._sock >= 0:
            _h.close(self._sock)
        self._sock = None

    def char_us(self):
        return (2 + self._bits + (self._parity is not None) + self._stop - 1) * 1000000 // self._baud

    def write(self, buf):
        n = len(buf)
        if self._sock >= 0 and n:
            r = _h.send(self._sock, uctypes.addressof(buf), n)
            if r < 0:
                self._sock = -1      # bus gone: the line is dead from now on
        now = time.ticks_ms()
        start = self._tx_end if time.ticks_diff(self._tx_end, now) > 0 else now
        self._tx_end = time.ticks_add(start, (n * self.char_us() + 999) // 1000)
        return n

    def txdone(self):
        return time.ticks_diff(self._tx_end, time.ticks_ms()) <= 0

    def flush(self):
        d = time.ticks_diff(self._tx_end, time.ticks_ms())
        if d > 0:
            time.sleep_ms(d)

    def any(self):
        if self._sock < 0:
            return 0
        r = _h.avail(self._sock)
        return r if r > 0 else 0

    def _rx(self, buf, off, n):
        if self._sock < 0:
            if self._timeout > 0:
                time.sleep_ms(self._timeout)
            return 0
        r = _h.recv(self._sock, uctypes.addressof(buf) + off, n, self._timeout, self._timeout_char)
        if r < 0 and r not in (-11, -110):
            self._sock = -1
        return r if r > 0 else 0

    def read(self, n=None):
        if n is None:
            n = self._rxbuf
        buf = bytearray(n)
        r = self._rx(buf, 0, n)
        if not r:
            return None
        return bytes(buf) if r == n else bytes(memoryview(buf)[:r])

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        r = self._rx(buf, 0, n)
        return r if r else None

    def readline(self):
        out = b""
        while True:
            c = self.read(1)
            if not c:
                return out or None
            out += c
            if c == b"\n":
                return out

    def sendbreak(self):
        pass

    def __repr__(self):
        return "UART(%d, baudrate=%d, bits=%d, parity=%s, stop=%d)" % (
            self._id, self._baud, self._bits, self._parity, self._stop)
