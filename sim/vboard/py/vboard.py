# Virtual-board helpers, importable only on the virtual board
# (sys.platform == "webassembly").
import _vbhost as _h


def run_forever(step, period_ms=0, idle=False, on_stop=None):
    """Hand the main loop to the host and return at once.

    When main.py (or the REPL command that called this) has finished, the host
    calls step() again and again (with period_ms between calls), so control
    returns to JavaScript after every step and the VM collects garbage between
    steps. idle=True: step() returns the ms until it has more work, and the host
    pauses that long (at most period_ms when period_ms > 0). Ctrl-C on the
    serial line stops the loop and gives the REPL; an exception in step() is
    printed and stops it; either way on_stop() is then called.
    """
    _h.set_runner(step, period_ms, 1 if idle else 0, on_stop)


def stop():
    _h.set_runner(None, 0, 0, None)


def name():
    return _h.board_name()


def sync():
    """Write the flash to the host folder now (it is also written when idle)."""
    _h.flash_sync()
