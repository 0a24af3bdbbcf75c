"""The simulated HAL: what a virtual concentrator sees instead of an ESP32.

Clock: the site's virtual clock (integer microseconds), so a day runs in
seconds. Network timers use wall time (`net_ticks_ms`) because the broker and
the head-end are real processes. UART: a port on the simulated RS485 bus.
Relay pins: contactors that switch simulated meters' supply. Files: a host
folder (HostFS) or littlefs on emulated NOR flash (sim.flash.FlashFS).
"""
import os
import time as _time

from sim.firmware import setup as _setup_firmware
from sim.netsock import SocketModule

_setup_firmware()
from concentrator.hal import Hal  # noqa: E402


class HostFS:
    """Board paths ("/config.json") mapped into a host folder."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def open(self, path, mode="r"):
        return open(self._p(path), mode)

    def remove(self, path):
        os.remove(self._p(path))

    def rename(self, a, b):
        os.replace(self._p(a), self._p(b))

    def listdir(self, path):
        return sorted(os.listdir(self._p(path)))

    def mkdir(self, path):
        os.mkdir(self._p(path))

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def stat(self, path):
        return tuple(os.stat(self._p(path)))

    def statvfs(self, path):
        # a 1.5 MiB ESP32 vfs partition with 4 KiB blocks
        used = 0
        for d, _, files in os.walk(self.root):
            for f in files:
                used += (os.path.getsize(os.path.join(d, f)) + 4095) // 4096
        total = 384
        return (4096, 4096, total, total - used, total - used, 0, 0, 0, 0, 255)


class Contactor:
    """A GPIO-driven contactor: switches the supply of the meters behind it."""

    def __init__(self, clock, meters=(), feedback=True, stuck=None):
        self.clock = clock
        self.meters = list(meters)
        self.closed = True
        self.feedback = feedback
        self.stuck = stuck   # None, or the position it is welded in

    def set(self, closed):
        if self.stuck is None:
            self.closed = closed
        for m in self.meters:
            m.set_supply(self.closed, self.clock.now_us)


class SimHal(Hal):
    def __init__(self, clock, uart, fs, start_unix, contactors=(), socket_timeout=2.0,
                 log=None):
        self.clock = clock
        self.uart = uart
        self.fs = fs
        self.start_unix = start_unix
        self.contactors = list(contactors)
        self.socket_module = SocketModule(socket_timeout, self._read_file)
        self.network = True
        self.led_on = False
        self.feeds = 0
        self.lines = []
        self._log = log
        self.time_offset = 0

    # clock
    def ticks_ms(self):
        return self.clock.now_us // 1000

    virtual_net = False    # True: network timers on the virtual clock too (offline tests)

    def net_ticks_ms(self):
        if self.virtual_net:
            return self.ticks_ms()
        return int(_time.monotonic() * 1000)

    def sleep_ms(self, ms):
        self.clock.advance(ms * 1000)

    def time(self):
        return self.start_unix + self.clock.now_us // 1000000 + self.time_offset

    def set_time(self, unix_s):
        # The simulated world's clock is the site's virtual clock; a head-end
        # running in wall time must not drag it. Drift is simulated by tests
        # through time_offset.
        pass

    def _read_file(self, path):
        with self.fs.open(path, "rb") as f:
            return f.read()

    # pins
    def relay_set(self, index, closed):
        self.contactors[index].set(closed)

    def relay_get(self, index):
        c = self.contactors[index]
        return c.closed if c.feedback else None

    def led(self, on):
        self.led_on = bool(on)

    def feed(self):
        self.feeds += 1

    # files
    def open(self, path, mode="r"):
        return self.fs.open(path, mode)

    def remove(self, path):
        self.fs.remove(path)

    def rename(self, a, b):
        self.fs.rename(a, b)

    def listdir(self, path):
        return self.fs.listdir(path)

    def mkdir(self, path):
        self.fs.mkdir(path)

    def rmdir(self, path):
        self.fs.rmdir(path)

    def stat(self, path):
        return self.fs.stat(path)

    def statvfs(self, path):
        return self.fs.statvfs(path)

    # network
    def net_up(self):
        return self.network

    def log(self, text):
        self.lines.append(text)
        if len(self.lines) > 500:
            del self.lines[:100]
        if self._log:
            self._log(text)

    def reset(self):
        raise SystemExit("reset")
