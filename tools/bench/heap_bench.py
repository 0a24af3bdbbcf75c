"""Firmware heap in the real MicroPython VM (python -m tools.bench heap).

A virtual board (sim/vboard) runs the firmware with 32 meters on a bus
server of simulated prepaid meters and a real Mosquitto, twice: as
provisioning deploys it (mpy-cross .mpy files, the slot layout of
tools/provision) and from source (.py). The host drives step()
(vboard.run_forever) at the cadence of board.run on hardware (the pause
step() asks for, at most 20 ms), so garbage is collected between steps as
on a board whose loop returns to the scheduler, and the meters are polled
every poll_s (4 s) of wall time. The start-up is the board's own (boot.py
picks the version, then what main.py imports: the console and board
modules, then board.build()). Measured in the VM with gc.mem_alloc():

  fw_heap_live_boot_bytes              live heap of the firmware AS DEPLOYED (.mpy)
                                       after boot and the first poll rounds (step 40):
                                       its bytecode, umqtt, 32 meters' state, buffers
  fw_heap_live_boot_source_bytes       the same with the modules loaded from source
  fw_heap_live_after_10k_steps_bytes   as deployed, after 10 000 steps (full run), or
  fw_heap_live_after_2k_steps_bytes    after 2 000 steps (--quick; the 10k name is
                                       only printed when 10 000 steps really ran)
  fw_heap_growth_bytes                 the difference (goal: 0, no growth)
  fw_heap_live_min_first_500_bytes     lowest live heap over steps 40..539 and over
  fw_heap_live_min_last_500_bytes      the last 500 steps (less sensitive to what is in
                                       flight at one instant: a batch awaiting its ack)
  fw_alloc_per_cycle_bytes             bytes allocated per POLL CYCLE (every meter read
                                       once): all the steps' allocations / cycles
  fw_alloc_per_poll_step_bytes         bytes allocated by a step that polled, mean
  fw_heap_peak_bytes                   highest heap before a collection (the end of the
                                       step that allocated most), minus the baseline
  fw_poll_cycles                       poll cycles in the measured steps (a run that
                                       never polled the bus fails instead of reporting)
  vm_heap_before_firmware_bytes        baseline: live heap after a collection, before
                                       the firmware is imported (the VM's objects and the
                                       virtual board's Python shims; C modules on an ESP32)

The firmware's figures are the VM's live heap minus that baseline: the shims
are not counted, the objects the firmware creates through them (UART,
sockets) are. Goal: fw_heap_live_boot_bytes <= 80 KB (ESP32-WROOM without
PSRAM), growth 0.
"""
import json
import os
import shutil
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METERS = 32

# main.py of the measurement: the firmware's own start-up, a measuring step
BENCH_MAIN = """
import gc
N = %d
class M:
    n = 0
    app = None
    pre = 0
    live_boot = 0
    alloc = 0
    poll_alloc = 0
    polls = 0
    peak = 0
    cycles0 = 0
    lo_first = 1 << 30
    lo_last = 1 << 30
    def step(self):
        a = gc.mem_alloc()             # GC ran between steps: live heap
        self.n += 1
        n = self.n
        if n == 1:
            gc.collect()               # (honoured when control is back in JS)
            return 0
        if n == 2:
            # baseline after a collection: VM + the virtual board's shims;
            # then the firmware's own start-up (main.py imports the console + board)
            self.pre = a
            import concentrator.console
            from concentrator import board
            self.app = board.build()
            return 0
        app = self.app
        if n == 40:
            self.live_boot = a
            self.cycles0 = app.cycles
        if 40 <= n < 540 and a < self.lo_first:
            self.lo_first = a
        if n > N - 500 and a < self.lo_last:
            self.lo_last = a
        if n == N + 1:
            f = open('bench.json', 'w')
            f.write('{"pre": %%d, "boot": %%d, "end": %%d, "steps": %%d, "alloc": %%d,'
                    ' "polls": %%d, "poll_alloc": %%d, "lo_first": %%d, "lo_last": %%d,'
                    ' "peak": %%d, "cycles": %%d}' %% (
                        self.pre, self.live_boot, a, N - 40, self.alloc, self.polls,
                        self.poll_alloc, self.lo_first, self.lo_last, self.peak,
                        app.cycles - self.cycles0))
            f.close()
            import vboard
            vboard.sync()
            vboard.stop()
            return 0
        tot = 0
        for m in app.bus.meters:
            tot += m['stats']['requests']
        wait = app.step()
        end = gc.mem_alloc()
        d = end - a
        for m in app.bus.meters:
            tot -= m['stats']['requests']
        if n > 40:
            self.alloc += d
            if end > self.peak:
                self.peak = end
            if tot:
                self.polls += 1
                self.poll_alloc += d
        gc.collect()                   # honoured when control is back in JS
        return wait
import vboard
vboard.run_forever(M().step, 20, True)   # board.run's cadence: at most 20 ms between steps
"""


def _measure(steps, compile, quick, port, need_polls=True, main=None):
    from sim.load import ConstantLoad
    from sim.modbus_meter import PrepaidIntMeter
    from sim.vboard_bus import VboardBus
    from sim.vboard_host import VirtualBoard
    from tools.provision import build_image
    tmp = tempfile.mkdtemp(prefix="wk-heap-")
    meters = [PrepaidIntMeter(a + 1, load=ConstantLoad(300), energy_wh=1000 * (a + 1))
              for a in range(METERS)]
    bus = VboardBus(meters).start()
    cfg = {"dev": "heap-bench-%d" % os.getpid(), "key": "7d" * 32, "poll_s": 4,
           "record_s": 10, "status_s": 10, "polls_per_step": 4,
           "wifi": {"ssid": "site", "password": "pw"},
           "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 30},
           "meters": [{"id": "H%03d" % (a + 1), "addr": a + 1, "model": "prepaid-int"}
                      for a in range(METERS)]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    flash = os.path.join(tmp, "flash")
    build_image(flash, cfg, board, compile=compile)
    with open(os.path.join(flash, "main.py"), "w") as f:
        f.write((main or BENCH_MAIN) % steps)
    vb = VirtualBoard(flash, bus=bus.address)
    try:
        vb.start()
        out = os.path.join(flash, "bench.json")
        end = time.monotonic() + steps * 0.1 + 120
        while not os.path.exists(out) and time.monotonic() < end:
            if not vb.running():
                break
            time.sleep(0.5)
        if not os.path.exists(out):
            log = open(os.path.join(vb.state_dir, "board.log"), errors="replace").read()[-1500:]
            raise RuntimeError("heap bench did not finish: " + log)
        with open(out) as f:
            r = json.load(f)
    finally:
        vb.stop()
        bus.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if need_polls and (not r["polls"] or not r["cycles"]):
        raise RuntimeError("heap bench: the firmware never polled the bus (%d polling steps, "
                           "%d poll cycles): no figure to report" % (r["polls"], r["cycles"]))
    return r


def run(quick=False):
    from sim.brokers import MosquittoBroker
    steps = 2000 if quick else 10000
    t0 = time.monotonic()
    broker = MosquittoBroker().start()
    try:
        src = _measure(300, False, True, broker.port, False)   # from source: the boot figure
        r = _measure(steps, True, quick, broker.port)     # as deployed
    finally:
        broker.cleanup()
    pre = r["pre"]
    return {
        "fw_heap_live_boot_bytes": r["boot"] - pre,
        "fw_heap_live_boot_source_bytes": src["boot"] - src["pre"],
        "fw_heap_live_after_10k_steps_bytes" if steps == 10000 else
        "fw_heap_live_after_2k_steps_bytes": r["end"] - pre,
        "fw_heap_growth_bytes": r["end"] - r["boot"],
        "fw_heap_live_min_first_500_bytes": r["lo_first"] - pre,
        "fw_heap_live_min_last_500_bytes": r["lo_last"] - pre,
        "fw_alloc_per_cycle_bytes": r["alloc"] // r["cycles"],
        "fw_alloc_per_poll_step_bytes": r["poll_alloc"] // max(1, r["polls"]),
        "fw_heap_peak_bytes": r["peak"] - pre,
        "fw_poll_cycles": r["cycles"],
        "vm_heap_before_firmware_bytes": pre,
        "fw_heap_steps": r["steps"],
        "fw_heap_bench_wall_s": round(time.monotonic() - t0, 1),
    }
