"""hal.uart over a real serial port (pyserial), for CPython.

Lets the firmware's bus layer talk to a real RS485 adapter, a pseudo-terminal
or another Modbus implementation from a PC. ``SerialHal`` is the matching
minimal HAL (wall clock ticks, sleep, no relays).
"""
import time

import serial


class SerialUart:
    def __init__(self, port, baud=9600, parity="N", stop=1, min_gap_ms=0):
        # min_gap_ms: USB adapters and ptys deliver bytes in bursts, so the
        # inter-character silence that ends a reply needs a floor there.
        self.ser = serial.Serial(port, baud, parity=parity, stopbits=stop, timeout=0)
        self.min_gap_ms = min_gap_ms
        self.baud, self.bits, self.parity, self.stop = baud, 8, parity, stop
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.parity_ignored = False

    def configure(self, baud, bits=8, parity="N", stop=1):
        self.baud, self.bits, self.parity, self.stop = baud, bits, parity, stop
        self.ser.baudrate = baud
        self.ser.bytesize = bits
        self.ser.stopbits = stop
        try:
            self.ser.parity = parity
            self.parity_ignored = False
        except Exception:                # termios.error on a pty
            # pseudo-terminals refuse parity: carry on without it
            self.ser.parity = "N"
            self.parity_ignored = True

    def char_us(self):
        nbits = 1 + self.bits + (0 if self.parity == "N" else 1) + self.stop
        return (nbits * 1000000 + self.baud - 1) // self.baud

    def write(self, buf):
        self.ser.write(bytes(buf))
        self.ser.flush()                   # returns when the bytes are out
        self.tx_bytes += len(buf)

    def read(self, n, timeout_ms, gap_ms):
        ser = self.ser
        ser.timeout = timeout_ms / 1000
        out = bytearray(ser.read(1))
        if not out:
            return b""
        ser.timeout = max(gap_ms, self.min_gap_ms) / 1000
        while len(out) < n:
            chunk = ser.read(min(n - len(out), max(1, ser.in_waiting)))
            if not chunk:
                break
            out += chunk
        self.rx_bytes += len(out)
        return bytes(out)

    def flush_input(self):
        self.ser.reset_input_buffer()

    def close(self):
        self.ser.close()


class SerialHal:
    """Minimal HAL around a SerialUart: wall-clock ticks, real sleeps."""

    def __init__(self, uart):
        self.uart = uart
        self._t0 = time.monotonic()

    def ticks_ms(self):
        return int((time.monotonic() - self._t0) * 1000)

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep(ms / 1000)

    def relay_set(self, index, closed):
        pass

    def relay_get(self, index):
        return None

    def log(self, text):
        print(text)
