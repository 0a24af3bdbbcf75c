"""Multi-drop RS485 bus on a virtual clock: one master, many devices.

``Bus.uart`` has exactly the ``hal.uart`` interface of docs/architecture.md;
writing advances the virtual clock by the frame's transmit time and hands the
frame to every device; reading returns the reply bytes that have "arrived"
by virtual time and advances the clock. Nothing here waits in wall time.

Bytes are timed at the configured baud (bits per character = start + data +
parity + stop: 11 for 8E1, 10 for 8N1). Faults (seeded): dropped bytes,
corrupted bytes, noise bursts, dead devices, slow devices. The bus also
notices master errors a real line would punish: transmitting before the
3.5-character silence (the frame is lost) and talking over a reply
(collision).
"""
import random
from collections import deque

from .clock import VirtualClock


def char_us(baud, bits=8, parity="N", stop=1):
    nbits = 1 + bits + (0 if parity in ("N", None) else 1) + stop
    return (nbits * 1000000 + baud - 1) // baud


def t35_us(baud, c):
    return 1750 if baud > 19200 else (7 * c + 1) // 2


class SimUart:
    """The master's RS485 port (hal.uart)."""

    def __init__(self, bus):
        self.bus = bus
        self.baud, self.bits, self.parity, self.stop = 9600, 8, "N", 1
        self._c = char_us(9600)
        self.de = False
        self.de_log = deque(maxlen=4096)    # (t_us, level) DE/RE transitions
        self.de_edges = 0
        self.configs = 0

    def configure(self, baud, bits=8, parity="N", stop=1):
        self.baud, self.bits, self.parity, self.stop = baud, bits, parity, stop
        self._c = char_us(baud, bits, parity, stop)
        self.configs += 1

    def char_us(self):
        return self._c

    def _de(self, level):
        self.de = level
        self.de_edges += 1
        self.de_log.append((self.bus.clock.now_us, 1 if level else 0))

    def write(self, buf):
        self.bus._transmit(bytes(buf))

    def read(self, n, timeout_ms, gap_ms):
        return self.bus._receive(n, timeout_ms, gap_ms)

    def flush_input(self):
        self.bus._flush()


class Bus:
    def __init__(self, clock=None, seed=0, drop_p=0.0, corrupt_p=0.0, noise_p=0.0):
        self.clock = clock or VirtualClock()
        self.rng = random.Random(seed)
        self.drop_p = drop_p
        self.corrupt_p = corrupt_p
        self.noise_p = noise_p
        self.devices = []
        self._dead = set()
        self._slow = {}
        self._rx = deque()               # (arrival_us, byte), time order
        self._free_us = -10 ** 9         # end of the last character on the line
        self.uart = SimUart(self)
        self.busy_us = 0
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.rx_frames = 0
        self.collisions = 0
        self.silence_violations = 0
        self.dropped = 0
        self.corrupted = 0
        self.noise_bytes = 0
        self.timeouts = 0
        self.log = deque(maxlen=256)     # recent (t_us, "tx"/"rx", bytes)

    # -- devices and faults --------------------------------------------------
    def attach(self, dev):
        self.devices.append(dev)
        return dev

    def set_dead(self, dev, dead=True):
        (self._dead.add if dead else self._dead.discard)(id(dev))

    def set_slow(self, dev, extra_us):
        self._slow[id(dev)] = int(extra_us)

    def counters(self):
        return {k: getattr(self, k) for k in (
            "busy_us", "tx_bytes", "rx_bytes", "tx_frames", "rx_frames",
            "collisions", "silence_violations", "dropped", "corrupted",
            "noise_bytes", "timeouts")}

    def _hears(self, dev):
        u = self.uart
        return (getattr(dev, "baud", u.baud) == u.baud
                and getattr(dev, "parity", u.parity) == u.parity)

    # -- line ----------------------------------------------------------------
    def _transmit(self, frame):
        u = self.uart
        c = u.char_us()
        now = self.clock.now_us
        ok = True
        tx = len(frame) * c
        if any(t > now and t - c < now + tx for t, _ in self._rx):
            # talking over a reply: both are garbage
            self.collisions += 1
            ok = False
        elif now - self._free_us < t35_us(u.baud, c):
            # the devices see one long broken frame: nobody answers
            self.silence_violations += 1
            ok = False
        if not ok:
            while self._rx and self._rx[-1][0] > now:
                self._rx.pop()
        u._de(True)
        self.clock.advance(tx)
        u._de(False)
        t_end = self.clock.now_us
        self.busy_us += tx
        self.tx_bytes += len(frame)
        self.tx_frames += 1
        self._free_us = t_end
        self.log.append((now, "tx", frame))
        if not ok:
            return
        t35 = t35_us(u.baud, c)
        for dev in list(self.devices):
            if id(dev) in self._dead or not self._hears(dev):
                continue
            reply, ta = dev.on_frame(frame, t_end)
            if reply:
                ta = max(ta + self._slow.get(id(dev), 0), t35)
                self._schedule(bytes(reply), t_end + ta, t_end, c)

    def _schedule(self, reply, t0, t_end, c):
        if self._rx and self._rx[-1][0] > t0:
            self.collisions += 1
        rng = self.rng
        out = []
        for k, b in enumerate(reply):
            if self.drop_p and rng.random() < self.drop_p:
                self.dropped += 1
                continue
            if self.corrupt_p and rng.random() < self.corrupt_p:
                b ^= rng.randrange(1, 256)
                self.corrupted += 1
            out.append((t0 + (k + 1) * c, b))
        if self.noise_p and rng.random() < self.noise_p:
            for _ in range(rng.randint(1, 3)):
                t = rng.randrange(t_end + c, t0 + len(reply) * c + 1)
                out.append((t, rng.randrange(256)))
                self.noise_bytes += 1
        merged = sorted(list(self._rx) + out)
        self._rx = deque(merged)
        self.busy_us += len(reply) * c
        self.rx_bytes += len(reply)
        self.rx_frames += 1
        if out:
            self._free_us = max(self._free_us, max(t for t, _ in out))
        self.log.append((t0, "rx", reply))

    def _receive(self, n, timeout_ms, gap_ms):
        c = self.uart.char_us()
        now = self.clock.now_us
        q = self._rx
        if not q or q[0][0] > now + timeout_ms * 1000:
            self.clock.advance_to(now + timeout_ms * 1000)
            self.timeouts += 1
            return b""
        gap = gap_ms * 1000
        out = bytearray()
        last = now
        while q and len(out) < n:
            t = q[0][0]
            if out and t > last and t - c - last > gap:
                break                     # the line went silent: frame over
            out.append(q.popleft()[1])
            last = max(last, t)
        if len(out) < n:
            last += gap                   # the UART waited the gap to decide
        self.clock.advance_to(last)
        return bytes(out)

    def _flush(self):
        now = self.clock.now_us
        while self._rx and self._rx[0][0] <= now:
            self._rx.popleft()


class BusHal:
    """The smallest HAL the bus layer needs (uart, ticks, sleep, relays).

    ``relay_targets[index] = meter`` makes relay pin `index` drive that
    meter's ``supply_closed`` (an external contactor, as with an SDM120).
    """

    def __init__(self, bus, feedback=True):
        self.bus = bus
        self.clock = bus.clock
        self.uart = bus.uart
        self.relays = {}
        self.relay_targets = {}
        self.feedback = feedback
        self.lines = []

    def ticks_ms(self):
        return self.clock.ticks_ms()

    def ticks_diff(self, a, b):
        return self.clock.ticks_diff(a, b)

    def sleep_ms(self, ms):
        self.clock.sleep_ms(ms)

    def relay_set(self, index, closed):
        self.relays[index] = bool(closed)
        dev = self.relay_targets.get(index)
        if dev is not None:
            dev.set_supply(closed, self.clock.now_us)

    def relay_get(self, index):
        return self.relays.get(index) if self.feedback else None

    def log(self, text):
        self.lines.append(text)
        del self.lines[:-200]
