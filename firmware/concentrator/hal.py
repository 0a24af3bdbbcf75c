# Hardware abstraction layer: the only door from the firmware to the world.
#
# The board's implementation is hal_esp32.Esp32Hal (machine, network,
# usocket, time, os); the simulator has sim.hal.SimHal and the virtual board
# its own. docs/architecture.md lists the whole interface; this base class
# holds the parts every implementation shares.
from concentrator import jsonfile


class Hal:
    uart = None            # RS485 port: configure/char_us/write/read/flush_input
    socket_module = None   # .socket() / .getaddrinfo() with timeouts

    # -- clock -------------------------------------------------------------
    def ticks_ms(self):
        raise NotImplementedError

    def ticks_diff(self, a, b):
        return a - b

    def net_ticks_ms(self):
        # Clock for network timers (ack timeout, keepalive, back-off). The
        # same as ticks_ms on a board; wall time in the simulator, whose
        # meters run on an accelerated clock but whose broker is real.
        return self.ticks_ms()

    def sleep_ms(self, ms):
        raise NotImplementedError

    def time(self):
        # Unix seconds UTC, 0 while the time is unknown
        raise NotImplementedError

    def set_time(self, unix_s):
        pass

    def time_known(self):
        return self.time() > 1600000000

    # -- pins ----------------------------------------------------------------
    def relay_set(self, index, closed):
        raise NotImplementedError

    def relay_get(self, index):
        return None

    def led(self, on):
        pass

    def feed(self):
        pass

    # -- files (littlefs on the board) ---------------------------------------
    def open(self, path, mode="r"):
        raise NotImplementedError

    def remove(self, path):
        raise NotImplementedError

    def rename(self, a, b):
        raise NotImplementedError

    def listdir(self, path):
        raise NotImplementedError

    def mkdir(self, path):
        raise NotImplementedError

    def rmdir(self, path):
        raise NotImplementedError

    def stat(self, path):
        raise NotImplementedError

    def statvfs(self, path):
        raise NotImplementedError

    # the shared implementations are in jsonfile.py
    def exists(self, path):
        return jsonfile.exists(self, path)

    def read_json(self, path, default=None):
        return jsonfile.read_json(self, path, default)

    def write_json(self, path, obj):
        # atomic: a temporary file renamed over the old one
        jsonfile.write_json(self, path, obj)

    # -- network -------------------------------------------------------------
    def net_up(self):
        return True

    def log(self, text):
        print(text)

    def reset(self):
        raise NotImplementedError
