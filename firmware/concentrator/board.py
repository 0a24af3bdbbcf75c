# Start-up on a board: read /board.json and /config.json, build the HAL and
# the concentrator, then loop over step(). Ctrl-C stops the loop and leaves
# the technician at the REPL with the console commands (help()); run()
# resumes. The watchdog keeps running on an ESP32 once started: at the
# console it is stretched to CONSOLE_WDT_MS and fed by every command, so a
# board left at the console returns to service by itself.
import sys

from concentrator import unload

APP = None            # the running Concentrator (console commands act on it)
ERROR = None          # why the firmware did not start (shown by status())
PERIOD_MS = 20        # longest pause between steps
CONSOLE_WDT_MS = 600000
LOG_LINES = 24


class Ring:
    # The last few log lines, bounded (log() at the console shows them).
    def __init__(self, n):
        self.lines = [None] * n
        self.i = 0

    def add(self, line):
        self.lines[self.i] = line
        self.i = (self.i + 1) % len(self.lines)

    def items(self):
        n = len(self.lines)
        out = []
        for k in range(n):
            s = self.lines[(self.i + k) % n]
            if s is not None:
                out.append(s)
        return out


LOG = Ring(LOG_LINES)
_ticks = None


def log(text):
    # One line to the console and to the ring: "[  12.345] text"
    global _ticks
    try:
        if _ticks is None:
            import time
            _ticks = time.ticks_ms
        t = _ticks()
    except (ImportError, AttributeError):
        t = 0
    line = "[%4d.%03d] %s" % (t // 1000 % 100000, t % 1000, text)
    if len(line) > 80:
        line = line[:80]
    LOG.add(line)
    print(line)


def _read(path):
    from concentrator import board_start
    return board_start.read(path)


def build():
    # read the board and site files, build the HAL and the concentrator
    # (board_start.py, loaded for the start only)
    from concentrator import board_start
    try:
        return board_start.build(log)
    finally:
        unload("board_start")


class Watch:
    # Wraps step(): logs the link and meter changes a technician wants to see.
    def __init__(self, app):
        self.app = app
        self.up = False
        self.fails = 0
        self.online = bytearray(b"\x01" * len(app.meters))

    def step(self):
        app = self.app
        d = app.step()
        link = app.link
        if link.connected != self.up:
            self.up = link.connected
            log("mqtt connected to %s:%d" % (link.host, link.port) if self.up
                else "mqtt down: " + link.last_error[:50])
        elif link.failures != self.fails and not self.up:
            log("mqtt connect failed: " + link.last_error[:48])
        self.fails = link.failures
        ms = app.meters
        on = self.online
        for i in range(len(ms)):
            if ms.online[i] != on[i]:
                on[i] = ms.online[i]
                log("meter %d %s %s" % (i, ms.cfg[i]["id"], "online" if on[i] else "offline"))
        return d


_watch = None


def stopped():
    # The loop was interrupted: stretch the watchdog for the console.
    print("\nwattkeeper: stopped; help() lists the console commands, run() resumes")
    feed_console()


def feed_console():
    app = APP
    if app is None:
        return
    hal = app.hal
    try:
        import machine
        hal.wdt = machine.WDT(timeout=CONSOLE_WDT_MS)
        hal.wdt.feed()
    except (ImportError, AttributeError, ValueError):
        pass


def run(app=None):
    # The main loop: the firmware's only `while True`. On the virtual board
    # the host calls step() (garbage is collected between steps).
    global _watch
    app = app or APP
    if app is None:
        print("wattkeeper: not started:", ERROR)
        return
    try:
        import machine
        app.hal.wdt = machine.WDT(timeout=30000)
    except (ImportError, AttributeError, ValueError):
        pass
    if _watch is None or _watch.app is not app:
        _watch = Watch(app)
    if sys.platform == "webassembly":
        import vboard
        vboard.run_forever(_watch.step, PERIOD_MS, True, stopped)
        return
    sleep = app.hal.sleep_ms
    step = _watch.step
    errors = 0
    try:
        while True:
            try:
                d = step()
                errors = 0
            except KeyboardInterrupt:
                raise
            except Exception as e:
                # a failing step (flash error, a bug) must not stop the board:
                # log it, and reset after several in a row (the journal and
                # the state file recover at boot)
                errors += 1
                log("step failed (%d): %r" % (errors, e))
                if errors >= 5:
                    app.hal.reset()
                d = PERIOD_MS
            if d:
                sleep(d if d < PERIOD_MS else PERIOD_MS)
    except KeyboardInterrupt:
        stopped()


def main():
    global APP, ERROR
    try:
        APP = build()
    except Exception as e:
        ERROR = "%s: %s" % (type(e).__name__, e)
        print("wattkeeper: not started:", ERROR)
        _trial_failed()
        print("help() lists the console commands")
        return
    log("wattkeeper %s dev %s, %d meters" % (_version(), APP.dev, len(APP.meters)))
    run(APP)


def _trial_failed():
    # a new version (on trial after an update) that cannot start: back to
    # the previous one (fwboot.failed() resets the board)
    try:
        import fwboot
    except ImportError:
        return
    fwboot.failed()


def _version():
    app = APP
    if app is not None:
        return app.fw_version
    from concentrator import __version__
    return __version__


def wait_ready(timeout_s=15):
    # Step the firmware until MQTT is up and the hello is sent (or timeout),
    # then print the status (tools/provision uses this to verify a board).
    from concentrator import board_start
    try:
        return board_start.wait_ready(APP, ERROR, timeout_s)
    finally:
        unload("board_start")
