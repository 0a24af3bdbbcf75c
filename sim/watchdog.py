"""The simulated board's hardware watchdog.

On the ESP32 `machine.WDT` resets the chip when `feed()` is not called in
time; `main.py` feeds it through `step()` (hal.feed() at the top of every
step). The simulator runs the firmware in the caller's thread, so the
watchdog here watches one `step()` at a time:

* wall budget: a step that runs longer than `wall_s` seconds of wall time is
  interrupted (a `WatchdogReset` is raised asynchronously in the stepping
  thread, the way the real WDT interrupts whatever the CPU was doing) and the
  board is reset;
* virtual budget: a step after which the last `hal.feed()` is more than
  `virtual_s` seconds of virtual time old (the step spent that long in bus
  waits, or never fed) resets the board too.

`WatchdogReset` derives from BaseException so that firmware code catching
`Exception` cannot swallow it (nothing can swallow a reset).
"""
import ctypes
import threading
import time

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class WatchdogReset(BaseException):
    """The watchdog fired: the board resets (RAM lost, flash kept)."""


class StepWatchdog:
    def __init__(self, wall_s=5.0, virtual_s=30.0):
        self.wall_s = wall_s
        self.virtual_s = virtual_s
        self.fired = 0               # resets caused by this watchdog
        self.last_reason = ""
        self.max_step_wall_s = 0.0   # longest step seen (wall)
        self._lock = threading.Lock()
        self._armed = False
        self._pending = False
        self._tid = None
        self._t0 = 0.0
        self._monitor = None

    def _watch(self):
        # One daemon thread per watchdog looks at the running step a few
        # times a second (a timer per step would cost more than the step).
        period = min(0.25, self.wall_s / 4)
        while True:
            time.sleep(period)
            with self._lock:
                if self._armed and not self._pending and time.monotonic() - self._t0 > self.wall_s:
                    self._pending = True
                    _set_async_exc(self._tid, ctypes.py_object(WatchdogReset))

    def run(self, step, clock=None, hal=None):
        """Run `step()` under the watchdog. Returns its result; raises
        WatchdogReset when the board must be reset."""
        feeds0 = hal.feeds if hal is not None else None
        v0 = clock.now_us if clock is not None else None
        t0 = time.monotonic()
        if self.wall_s:
            if self._monitor is None:
                self._monitor = threading.Thread(target=self._watch, name="wk-wdt", daemon=True)
                self._monitor.start()
            with self._lock:
                self._tid = threading.get_ident()
                self._t0 = t0
                self._pending = False
                self._armed = True
        try:
            r = step()
        except WatchdogReset:
            self._disarm()
            self._fire("step ran over %.1f s of wall time" % self.wall_s)
        finally:
            self._disarm()
        wall = time.monotonic() - t0
        if wall > self.max_step_wall_s:
            self.max_step_wall_s = wall
        if self.wall_s and wall > self.wall_s:
            self._fire("step took %.2f s of wall time (budget %.1f s)" % (wall, self.wall_s))
        if clock is not None and self.virtual_s:
            fed = hal is not None and hal.feeds != feeds0
            # fed at the top of the step: the feed is as old as the step
            age = (clock.now_us - v0) / 1e6 if fed or hal is None else None
            if age is not None and age > self.virtual_s:
                self._fire("no feed for %.1f virtual s" % age)
            if hal is not None and not fed:
                self._fire("step returned without feeding the watchdog")
        return r

    def _disarm(self):
        if not self.wall_s:
            return
        with self._lock:
            self._armed = False
            if self._pending:
                # the bite may not have been delivered yet: cancel it, the
                # caller raises the reset itself
                _set_async_exc(self._tid, ctypes.py_object())
                self._pending = False

    def _fire(self, reason):
        self.fired += 1
        self.last_reason = reason
        raise WatchdogReset(reason)
