"""bus: how well the Modbus master uses an RS485 line.

32 prepaid Modbus meters (holding registers, all billing values in one block)
at 9600 baud 8E1 on the simulated bus (sim/bus.py), read by the firmware's own
MeterBus (concentrator/meters.py) through the bus's uart. Everything runs on
the bus's virtual clock, so the figures are bus time, not host speed.

    bus_cycle_over_wire_bound   bus time of one poll cycle over all meters /
                                the wire-time bound of that cycle: for every
                                request, request + reply characters, the
                                meter's own turnaround (at least 3.5 chars)
                                and the mandatory 3.5-character silence
                                before the next request.  Goal <= 1.10.
    bus_requests_per_meter      requests sent per meter per cycle. Goal 1.
    bus_dead_meter_overhead     one meter stops answering: after the master
                                backed off from it, the extra cycle time it
                                still costs (its probes), as a fraction of
                                the cycle of the other 31.  Goal <= 0.05.
    bus_cycle_ms                one cycle's bus time (ms), for reference
    bus_dead_meter_backoff_cycles  cycles until the dead meter is offline
"""
import sys


from concentrator.meters import MeterBus  # noqa: E402
from sim.bus import Bus, BusHal, char_us, t35_us  # noqa: E402
from sim.load import ConstantLoad  # noqa: E402
from sim.modbus_meter import PrepaidIntMeter  # noqa: E402

BAUD = 9600
PARITY = "E"
MODEL = "prepaid-int"


def make_bus(n=32, seed=1):
    """n prepaid meters at BAUD 8E1; turnarounds 5..19 ms like a real mix."""
    bus = Bus(seed=seed)
    hal = BusHal(bus)
    sims, cfg = [], []
    for k in range(n):
        sm = PrepaidIntMeter(k + 1, load=ConstantLoad(100 + 10 * k), energy_wh=1000 * k,
                             turnaround_us=5000 + (k * 7919) % 15000)
        sm.baud = BAUD
        bus.attach(sm)
        sims.append(sm)
        cfg.append({"id": "m%d" % (k + 1), "addr": k + 1, "model": MODEL,
                    "baud": BAUD, "parity": PARITY})
    return bus, hal, sims, cfg


class Meter:
    """Per-request wire accounting from the bus log (what actually went over
    the line), to build the bound from the same requests."""

    def __init__(self, bus):
        self.bus = bus

    def cycle(self, mb, skip=()):
        """One poll of every meter. Returns (bus time us, bound us, requests)."""
        bus = self.bus
        c = char_us(BAUD, 8, PARITY, 1)
        t35 = t35_us(BAUD, c)
        devs = {d.addr: d for d in bus.devices}
        t0 = bus.clock.now_us
        f0 = bus.tx_frames
        bus.log.clear()
        for i in range(len(mb.meters)):
            if i in skip:
                continue
            mb.poll(i)
        t1 = bus.clock.now_us
        bound = 0
        log = list(bus.log)
        for t, kind, frame in log:
            if kind == "tx":
                dev = devs.get(frame[0])
                ta = 0
                if dev is not None and id(dev) not in bus._dead:
                    ta = max(dev.turnaround_us, t35)
                bound += len(frame) * c + t35
                if ta:
                    bound += ta
            else:
                bound += len(frame) * c
        return t1 - t0, bound, bus.tx_frames - f0


def run(quick=False):
    cycles = 5 if quick else 20
    # -- healthy bus ---------------------------------------------------------
    bus, hal, sims, cfg = make_bus()
    mb = MeterBus(hal, cfg)
    acc = Meter(bus)
    acc.cycle(mb)                       # first cycle learns the latencies
    t_sum = b_sum = req = 0
    for _ in range(cycles):
        t, b, r = acc.cycle(mb)
        t_sum += t
        b_sum += b
        req += r
    ok = all(mb.readings.ok[i] and mb.readings.energy_wh[i] == sims[i].register_wh()
             for i in range(len(sims)))
    out = {
        "bus_cycle_over_wire_bound": round(t_sum / b_sum, 4),
        "bus_requests_per_meter": round(req / (cycles * len(sims)), 4),
        "bus_cycle_ms": round(t_sum / cycles / 1000, 1),
        "bus_readings_correct": ok,
    }
    # -- one dead meter ------------------------------------------------------
    dead = 16
    bus, hal, sims, cfg = make_bus()
    mb = MeterBus(hal, cfg)
    acc = Meter(bus)
    for _ in range(2):
        acc.cycle(mb)
    bus.set_dead(sims[dead])
    backoff = 0
    while not mb.meters[dead]["stats"]["offline"]:
        acc.cycle(mb)
        backoff += 1
        if backoff > 20:
            break
    # the same bus without that meter, for the same number of cycles, vs
    # the bus with the dead meter being probed (probe_every cycles apart)
    n = max(cycles, 2 * mb.probe_every)
    n -= n % mb.probe_every
    with_dead = sum(acc.cycle(mb)[0] for _ in range(n))
    without = sum(acc.cycle(mb, skip=(dead,))[0] for _ in range(n))
    out["bus_dead_meter_overhead"] = round((with_dead - without) / without, 4)
    out["bus_dead_meter_backoff_cycles"] = backoff
    return out


if __name__ == "__main__":
    for k, v in run("--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
