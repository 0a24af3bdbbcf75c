"""Virtual clock for the simulator: integer microseconds, never wall time."""

TICKS_PERIOD = 1 << 30          # MicroPython's ticks_ms() wraps here


class VirtualClock:
    def __init__(self, now_us=0):
        self.now_us = int(now_us)

    def advance(self, us):
        if us < 0:
            raise ValueError("time does not run backwards")
        self.now_us += int(us)
        return self.now_us

    def advance_to(self, t_us):
        # move forward to t_us (no-op if already later)
        if t_us > self.now_us:
            self.now_us = int(t_us)
        return self.now_us

    def ms(self):
        return self.now_us // 1000

    def s(self):
        return self.now_us // 1000000

    # MicroPython-style monotonic ticks, for simulated HALs
    def ticks_ms(self):
        return (self.now_us // 1000) % TICKS_PERIOD

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + TICKS_PERIOD // 2) % TICKS_PERIOD) - TICKS_PERIOD // 2

    def sleep_ms(self, ms):
        self.advance(max(0, int(ms)) * 1000)


def ms(n):
    return int(n) * 1000


def s(n):
    return int(n) * 1000000
