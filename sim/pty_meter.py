"""Expose simulated bus devices on a pseudo-terminal.

Any Modbus master (pymodbus, mbpoll, a USB adapter's software) can open
``PtyMeter.path`` as a serial port and talk to the simulated meters: bytes
are collected until the line is quiet for ``gap_ms``, handed to every
device's ``on_frame`` and the reply written back after the device's
turnaround. The meters run on wall time here (t_us since start).
"""
import os
import select
import threading
import time
import tty


class PtyMeter:
    def __init__(self, *devices, gap_ms=5, max_turnaround_ms=50):
        self.devices = list(devices)
        self.gap_ms = gap_ms
        self.max_turnaround_ms = max_turnaround_ms
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.frames = 0
        self.replies = 0
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, name="pty-meter", daemon=True)
        self._th.start()

    def t_us(self):
        return int((time.monotonic() - self._t0) * 1000000)

    def _run(self):
        buf = bytearray()
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], self.gap_ms / 1000)
            if r:
                try:
                    data = os.read(self.master, 512)
                except OSError:
                    return
                buf += data
                continue
            if not buf:
                continue
            frame = bytes(buf)
            buf.clear()
            self.frames += 1
            for dev in self.devices:
                reply, ta = dev.on_frame(frame, self.t_us())
                if reply:
                    time.sleep(min(ta / 1e6, self.max_turnaround_ms / 1000))
                    os.write(self.master, reply)
                    self.replies += 1

    def close(self):
        self._stop.set()
        self._th.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
