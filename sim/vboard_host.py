"""Start and stop a virtual concentrator board (sim/vboard/board.mjs) on a pseudo-terminal.

The board is a real MicroPython VM (npm @micropython/micropython-webassembly-pyscript)
running under Node; socat gives it a serial port, so mpremote, pyserial and miniterm
talk to it exactly as to an ESP32 on USB:

    socat PTY,link=<port>,raw,echo=0 EXEC:'node sim/vboard/board.mjs --flash <dir> ...'

    from sim.vboard_host import VirtualBoard
    with VirtualBoard("/tmp/site/flash0", bus="127.0.0.1:5020") as vb:
        subprocess.run(["mpremote", "connect", vb.port, "fs", "ls"])
        vb.pins()                       # {"2": 1, ...} output pins as the board drives them
        vb.set_inputs(pins={"34": 0}, wifi=False)

Command line: python -m sim.vboard_host --flash DIR [--port PATH] [--bus HOST:PORT]
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_MJS = os.path.join(ROOT, "sim", "vboard", "board.mjs")
MP_PACKAGE = os.path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                          "micropython.mjs")
_UNSAFE = set(" '\"\\,!$`;&|<>()")


def _check_path(p):
    if any(c in _UNSAFE for c in p):
        raise ValueError("path not usable in a socat address: %r" % p)
    return p


def micropython_module():
    """Path of the npm package's micropython.mjs, or raise with what to do."""
    env = os.environ.get("VBOARD_MICROPYTHON")
    for p in (env, MP_PACKAGE):
        if p and os.path.exists(p):
            return p
    raise RuntimeError("MicroPython npm package missing: run `npm install` in %s" % ROOT)


class VirtualBoard:
    """One virtual board: socat + node, serial port at self.port.

    flash_dir: host folder holding the board's flash (created if missing).
    state_dir: pins.json / inputs.json / board.json / board.log (default: <flash_dir>.state).
    port: pty link path (default: <state_dir>/tty).
    bus: "HOST:PORT" of the RS485 bus server (UART bytes go there), or None.
    rtc: "host" (clock set from the host) or "unset" (starts at 2000-01-01 like a cold ESP32).
    """

    def __init__(self, flash_dir, state_dir=None, port=None, bus=None, name=None, rtc="host",
                 node=None, extra_args=()):
        self.flash_dir = os.path.abspath(flash_dir)
        self.state_dir = os.path.abspath(state_dir or self.flash_dir.rstrip("/") + ".state")
        self.port = os.path.abspath(port or os.path.join(self.state_dir, "tty"))
        self.bus = bus
        self.name = name
        self.rtc = rtc
        self.node = node or shutil.which("node") or "node"
        self.extra_args = list(extra_args)
        self.proc = None
        self._log = None

    # -- life cycle
    def command(self):
        args = [self.node, BOARD_MJS, "--flash", self.flash_dir, "--state", self.state_dir,
                "--rtc", self.rtc, "--micropython", micropython_module()]
        if self.bus:
            args += ["--bus", self.bus]
        if self.name:
            args += ["--name", self.name]
        args += self.extra_args
        for a in args:
            _check_path(a)
        # socat splits its address at ":"; a backslash keeps it in the command line
        return ["socat", "PTY,link=%s,raw,echo=0" % _check_path(self.port).replace(":", "\\:"),
                "EXEC:%s" % " ".join(a.replace(":", "\\:") for a in args)]

    def start(self, timeout=10.0):
        os.makedirs(self.flash_dir, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        for f in ("board.json",):
            try:
                os.remove(os.path.join(self.state_dir, f))
            except FileNotFoundError:
                pass
        if os.path.lexists(self.port):
            os.remove(self.port)
        self._log = open(os.path.join(self.state_dir, "board.log"), "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("virtual board exited at start, see %s/board.log" % self.state_dir)
            if os.path.exists(self.port) and os.path.exists(os.path.join(self.state_dir, "board.json")):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("virtual board did not start within %.1f s" % timeout)

    def stop(self, timeout=5.0):
        """Power off: the flash folder keeps what the board had written."""
        info = self.info()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        pid = info.get("pid") if info else None
        if pid:      # node normally exits with socat; make sure it has
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.02)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self._log:
            self._log.close()
            self._log = None

    def power_cycle(self):
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- state files
    def _read(self, name, default):
        try:
            with open(os.path.join(self.state_dir, name)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return default

    def info(self):
        """board.json: pid, name, uid, boots, boot_kind, reset_cause."""
        return self._read("board.json", {})

    def pins(self):
        """Output pins as the board drives them: {"<pin id>": 0|1}."""
        return self._read("pins.json", {})

    def set_inputs(self, pins=None, wifi=None):
        """Input pin levels seen by machine.Pin(...).value(), and the Wi-Fi link state."""
        cur = self._read("inputs.json", {})
        if pins:
            cur.setdefault("pins", {}).update({str(k): (1 if v else 0) for k, v in pins.items()})
        if wifi is not None:
            cur["wifi"] = bool(wifi)
        path = os.path.join(self.state_dir, "inputs.json")
        fd, tmp = tempfile.mkstemp(dir=self.state_dir)
        with os.fdopen(fd, "w") as f:
            json.dump(cur, f)
        os.replace(tmp, path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="run a virtual Wattkeeper concentrator on a pty")
    ap.add_argument("--flash", required=True)
    ap.add_argument("--state")
    ap.add_argument("--port")
    ap.add_argument("--bus")
    ap.add_argument("--name")
    ap.add_argument("--rtc", default="host", choices=("host", "unset"))
    a = ap.parse_args(argv)
    vb = VirtualBoard(a.flash, a.state, a.port, a.bus, a.name, a.rtc).start()
    print("virtual board on %s (flash %s); Ctrl-C stops it" % (vb.port, vb.flash_dir), flush=True)
    try:
        vb.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        vb.stop()


if __name__ == "__main__":
    sys.exit(main())
