# The board's HAL: ESP32 + MAX485-style transceiver, over machine/network/
# usocket/time/os. Pins and baud come from /board.json (boards/*.json).
import os
import time

import machine

from concentrator import jsonfile
from concentrator.sockets import SocketModule

EPOCH_2000 = 946684800   # ESP32 MicroPython counts seconds from 2000-01-01
_PARITY = {"N": None, "E": 0, "O": 1}


class Uart:
    def __init__(self, cfg):
        self.id = cfg["id"]
        self.tx = cfg["tx"]
        self.rx = cfg["rx"]
        self.de = machine.Pin(cfg["de"], machine.Pin.OUT, value=0)
        self.buf = bytearray(256)
        self.u = None
        self.configure(cfg.get("baud", 9600), 8, cfg.get("parity", "E"), 1)

    def configure(self, baud, bits=8, parity="E", stop=1):
        # tx/rx always explicit: UART1's default pins clash with the flash
        self.u = machine.UART(self.id, baudrate=baud, bits=bits,
                              parity=_PARITY[parity], stop=stop, tx=self.tx,
                              rx=self.rx, timeout=0, rxbuf=512)
        self.bits = 1 + bits + (0 if parity == "N" else 1) + stop
        self.baud = baud

    def char_us(self):
        return self.bits * 1000000 // self.baud

    def write(self, buf):
        self.de.value(1)
        time.sleep_us(20)
        self.u.write(buf)
        self.u.flush()          # waits until the last stop bit is out
        self.de.value(0)

    def read(self, n, timeout_ms, gap_ms):
        u = self.u
        buf = self.buf
        got = 0
        start = time.ticks_ms()
        last = start
        while got < n and got < len(buf):
            k = u.any()
            now = time.ticks_ms()
            if k:
                k = min(k, n - got, len(buf) - got)
                got += u.readinto(memoryview(buf)[got:got + k], k)
                last = now
                continue
            if got == 0 and time.ticks_diff(now, start) >= timeout_ms:
                break
            if got and time.ticks_diff(now, last) >= gap_ms:
                break
            time.sleep_us(200)
        return bytes(buf[:got])

    def flush_input(self):
        while self.u.any():
            self.u.read()


class Esp32Hal:
    def __init__(self, board, wifi=None, socket_timeout_s=2):
        self.uart = Uart(board["uart"])
        self.relays = [machine.Pin(p, machine.Pin.OUT, value=1) for p in board.get("relays", [])]
        self.feedback = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in board.get("feedback", [])]
        led = board.get("led")
        self.led_pin = machine.Pin(led, machine.Pin.OUT) if led is not None else None
        self.wdt = machine.WDT(timeout=30000)
        import usocket
        self.socket_module = SocketModule(usocket, socket_timeout_s)
        self.wlan = None
        self._time_ok = False
        if wifi and wifi.get("ssid"):
            import network
            self.wlan = network.WLAN(network.STA_IF)
            self.wlan.active(True)
            self.wlan.connect(wifi["ssid"], wifi.get("password", ""))

    # clock
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def net_ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def time(self):
        t = time.time()
        return t + EPOCH_2000 if self._time_ok or t > 700000000 else 0

    def set_time(self, unix_s):
        tm = time.gmtime(unix_s - EPOCH_2000)
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
        self._time_ok = True

    def time_known(self):
        return self.time() > 0

    # pins
    def relay_set(self, index, closed):
        self.relays[index].value(1 if closed else 0)

    def relay_get(self, index):
        if index < len(self.feedback):
            return self.feedback[index].value() == 0   # contact pulls low when closed
        return None

    def led(self, on):
        if self.led_pin is not None:
            self.led_pin.value(1 if on else 0)

    def feed(self):
        self.wdt.feed()

    # files
    def open(self, path, mode="r"):
        return open(path, mode)

    def remove(self, path):
        os.remove(path)

    def rename(self, a, b):
        os.rename(a, b)

    def listdir(self, path):
        return os.listdir(path)

    def mkdir(self, path):
        os.mkdir(path)

    def rmdir(self, path):
        os.rmdir(path)

    def stat(self, path):
        return os.stat(path)

    def statvfs(self, path):
        return os.statvfs(path)

    # the shared implementations (also hal.Hal's) are in jsonfile.py
    def exists(self, path):
        return jsonfile.exists(self, path)

    def read_json(self, path, default=None):
        return jsonfile.read_json(self, path, default)

    def write_json(self, path, obj):
        jsonfile.write_json(self, path, obj)

    # network
    def net_up(self):
        if self.wlan is None:
            return False
        ok = self.wlan.isconnected()
        if ok and not self._time_ok:
            try:
                import ntptime
                ntptime.settime()
                self._time_ok = True
            except Exception:
                pass
        return ok

    def log(self, text):
        print(text)

    def reset(self):
        machine.reset()
