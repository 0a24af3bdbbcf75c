"""An RS485 bus server for virtual boards (sim/vboard): simulated meters behind
the board's UART, over the vboard TCP bus framing (sim/vboard/README.md).

    from sim.vboard_bus import VboardBus
    from sim.modbus_meter import PrepaidIntMeter
    bus = VboardBus([PrepaidIntMeter(1, parity="E")]).start()
    VirtualBoard(flash, bus=bus.address)          # "127.0.0.1:PORT"

Time is wall-clock driven: the meters' virtual time (integer microseconds) is
`speed` times the wall time since start(), so energy accumulates as a tenant
would see it. A meter answers only a request made at its own line settings
(`meter.baud`, `meter.parity`, when it has them), after its turnaround; the
reply's bytes reach the board when they would on a real line (the request's
transmit time + turnaround + the reply's transmit time). When several meters
answer one request (a broadcast read-address), their replies collide and the
board receives garbage, as on a real bus.

Contactors: `contactor(state_dir, relay_pin, meters, feedback_pin)` follows
the board's pins.json (the relay output it drives) to switch the meters'
supply, and writes the auxiliary contact into inputs.json (low when closed),
like the wiring of boards/esp32-wroom-max485.json.

Command line: python -m sim.vboard_bus --port 5020 --prepaid 1,2 --sdm120 3
"""
import json
import os
import socket
import struct
import tempfile
import threading
import time


def char_us(baud, bits=8, parity="N", stop=1):
    nbits = 1 + bits + (0 if parity in ("N", None) else 1) + stop
    return (nbits * 1000000 + baud - 1) // baud


class VboardBus:
    def __init__(self, meters=(), host="127.0.0.1", port=0, speed=1.0):
        self.meters = list(meters)
        self.host = host
        self.port = port
        self.speed = speed
        self.frames = 0           # master frames seen
        self.replies = 0          # replies sent
        self.collisions = 0
        self.boards = []          # names from the H frames
        self.lock = threading.RLock()
        self._srv = None
        self._conns = []
        self._t0 = None
        self._stop = threading.Event()
        self._contactors = []

    # -- life cycle ------------------------------------------------------------
    def start(self):
        self._t0 = time.monotonic()
        s = self._srv = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(8)
        self.port = s.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="vboard-bus").start()
        return self

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        self._stop.set()
        if self._srv is not None:
            try:
                self._srv.close()
            except OSError:
                pass
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- virtual time ----------------------------------------------------------
    def now_us(self):
        return int((time.monotonic() - self._t0) * 1e6 * self.speed)

    def advance(self):
        """Bring every meter up to now (call before reading ground truth)."""
        with self.lock:
            t = self.now_us()
            for m in self.meters:
                m.advance(t)
            return t

    def attach(self, meter):
        with self.lock:
            meter.advance(self.now_us()) if self._t0 else None
            self.meters.append(meter)

    # -- contactors ------------------------------------------------------------
    def contactor(self, state_dir, relay_pin, meters, feedback_pin=None, period_s=0.05):
        """Drive `meters`' supply from output `relay_pin` of the board whose state
        folder is `state_dir` (pins.json); a pin never driven counts as closed
        (the board has not started). The auxiliary contact goes to inputs.json."""
        c = {"state": state_dir, "pin": str(relay_pin), "meters": list(meters),
             "fb": None if feedback_pin is None else str(feedback_pin), "closed": None}
        self._contactors.append(c)
        if len(self._contactors) == 1:
            threading.Thread(target=self._follow, args=(period_s,), daemon=True).start()
        self._sync_contactor(c)
        return c

    def _sync_contactor(self, c):
        try:
            with open(os.path.join(c["state"], "pins.json")) as f:
                pins = json.load(f)
        except (OSError, ValueError):
            pins = {}
        closed = pins.get(c["pin"], 1) == 1
        if closed == c["closed"]:
            return
        with self.lock:
            t = self.now_us()
            for m in c["meters"]:
                m.set_supply(closed, t)
        c["closed"] = closed
        if c["fb"] is not None:
            _update_inputs(c["state"], {c["fb"]: 0 if closed else 1})

    def _follow(self, period_s):
        while not self._stop.is_set():
            for c in list(self._contactors):
                self._sync_contactor(c)
            time.sleep(period_s)

    # -- the line ----------------------------------------------------------------
    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, conn):
        line = (9600, 8, "N", 1)
        buf = b""
        try:
            while not self._stop.is_set():
                d = conn.recv(4096)
                if not d:
                    return
                buf += d
                while len(buf) >= 3:
                    n = struct.unpack(">H", buf[1:3])[0]
                    if len(buf) < 3 + n:
                        break
                    kind, payload, buf = buf[:1], buf[3:3 + n], buf[3 + n:]
                    if kind == b"H":
                        self.boards.append(payload.decode("utf-8", "replace"))
                    elif kind == b"C":
                        b, bits, par, stop = payload.decode().split(",")
                        line = (int(b), int(bits), par, int(stop))
                    elif kind == b"W":
                        self._request(conn, payload, line)
        except OSError:
            return
        finally:
            try:
                self._conns.remove(conn)
            except ValueError:
                pass
            conn.close()

    def _request(self, conn, frame, line):
        t_sent = time.monotonic()
        cu = char_us(line[0], line[1], line[2], line[3])
        tx_us = len(frame) * cu
        replies = []
        with self.lock:
            self.frames += 1
            t = self.now_us() + int(tx_us * self.speed)
            for m in self.meters:
                if getattr(m, "baud", line[0]) != line[0] or \
                        getattr(m, "parity", line[2]) != line[2]:
                    m.advance(t)              # the line noise means nothing to it
                    continue
                r, turn = m.on_frame(bytes(frame), t)
                if r:
                    replies.append((bytes(r), turn))
        if not replies:
            return
        if len(replies) > 1:
            self.collisions += 1
            n = max(len(r) for r, _ in replies)
            out = bytearray(n)
            for r, _ in replies:
                for i, b in enumerate(r):
                    out[i] |= b ^ (0x5A if i % 3 == 0 else 0)
            reply, turn = bytes(out), max(t for _, t in replies)
        else:
            reply, turn = replies[0]
        due = t_sent + (tx_us + turn + len(reply) * cu) / 1e6
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        self.replies += 1
        conn.sendall(b"R" + struct.pack(">H", len(reply)) + reply)


def _update_inputs(state_dir, pins):
    path = os.path.join(state_dir, "inputs.json")
    try:
        with open(path) as f:
            cur = json.load(f)
    except (OSError, ValueError):
        cur = {}
    cur.setdefault("pins", {}).update(pins)
    fd, tmp = tempfile.mkstemp(dir=state_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(cur, f)
    os.replace(tmp, path)


def main(argv=None):
    import argparse
    from sim.load import ConstantLoad
    from sim.modbus_meter import PrepaidIntMeter, SDM120Meter
    ap = argparse.ArgumentParser(description="RS485 bus of simulated meters for virtual boards")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5020)
    ap.add_argument("--prepaid", default="1,2", help="addresses of prepaid meters (9600 8E1)")
    ap.add_argument("--sdm120", default="", help="addresses of SDM120 meters (9600 8N1)")
    ap.add_argument("--watts", type=int, default=1000)
    a = ap.parse_args(argv)
    meters = []
    for s in filter(None, a.prepaid.split(",")):
        meters.append(PrepaidIntMeter(int(s), load=ConstantLoad(a.watts), energy_wh=10000))
    for s in filter(None, a.sdm120.split(",")):
        meters.append(SDM120Meter(int(s), load=ConstantLoad(a.watts), energy_wh=10000))
    bus = VboardBus(meters, a.host, a.port).start()
    print("RS485 bus with %d meters on %s (Ctrl-C stops)" % (len(meters), bus.address), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        bus.stop()


if __name__ == "__main__":
    main()
