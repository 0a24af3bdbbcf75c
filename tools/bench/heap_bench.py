"""Firmware heap in the real MicroPython VM (python -m tools.bench heap).

A virtual board (sim/vboard) runs the mpy-cross-compiled firmware with 32
meters on a bus server of simulated prepaid meters and a real Mosquitto; the
host drives step() (vboard.run_forever), so garbage is collected between
steps as on a board whose loop returns to the scheduler. Measured in the VM
with gc.mem_alloc():

  fw_heap_live_boot_bytes              live heap after boot + the first poll
                                       round (code, umqtt and 32 meters included)
  fw_heap_live_after_10k_steps_bytes   live heap after 10 000 steps (2 000 --quick)
  fw_heap_growth_bytes                 the difference (goal: 0, no growth)
  fw_alloc_per_cycle_bytes             bytes allocated by one step, mean
  fw_alloc_per_poll_step_bytes         ... by a step that polled a meter, mean
Goal: live heap <= 80 KB on an ESP32-WROOM without PSRAM.
"""
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

METERS = 32

# main.py of the measurement: the firmware's own start-up, a measuring step
BENCH_MAIN = """
import gc
from concentrator import board
app = board.build()
N = %d
class M:
    n = 0
    live_boot = 0
    alloc = 0
    poll_alloc = 0
    polls = 0
    done = False
    def step(self):
        a = gc.mem_alloc()             # GC ran between steps: live heap
        self.n += 1
        n = self.n
        if n == 40:
            self.live_boot = a
        if n == N + 1:
            f = open('bench.json', 'w')
            f.write('{"boot": %%d, "end": %%d, "steps": %%d, "alloc": %%d, "polls": %%d,'
                    ' "poll_alloc": %%d}' %% (self.live_boot, a, N - 40, self.alloc,
                                              self.polls, self.poll_alloc))
            f.close()
            import vboard
            vboard.sync()
            vboard.stop()
            return 0
        p0 = app.bus.meters[0]['stats']['polls']
        tot = 0
        for m in app.bus.meters:
            tot += m['stats']['requests']
        app.step()
        d = gc.mem_alloc() - a
        for m in app.bus.meters:
            tot -= m['stats']['requests']
        if n > 40:
            self.alloc += d
            if tot:
                self.polls += 1
                self.poll_alloc += d
        gc.collect()                   # honoured when control is back in JS
        return 0
import vboard
vboard.run_forever(M().step, 0)
"""


def run(quick=False):
    from sim.load import ConstantLoad
    from sim.modbus_meter import PrepaidIntMeter
    from sim.vboard_bus import VboardBus
    from sim.vboard_host import VirtualBoard
    from tools.provision import build_image
    steps = 2000 if quick else 10000
    tmp = tempfile.mkdtemp(prefix="wk-heap-")
    meters = [PrepaidIntMeter(a + 1, load=ConstantLoad(300), energy_wh=1000 * (a + 1))
              for a in range(METERS)]
    bus = VboardBus(meters).start()
    cfg = {"dev": "heap-bench-%d" % os.getpid(), "key": "7d" * 32, "poll_s": 4,
           "record_s": 10, "status_s": 10, "polls_per_step": 4,
           "wifi": {"ssid": "site", "password": "pw"},
           "broker": {"host": "127.0.0.1", "port": 1883, "keepalive_s": 30},
           "meters": [{"id": "H%03d" % (a + 1), "addr": a + 1, "model": "prepaid-int"}
                      for a in range(METERS)]}
    with open(os.path.join(ROOT, "boards", "esp32-wroom-max485.json")) as f:
        board = json.load(f)
    flash = os.path.join(tmp, "flash")
    build_image(flash, cfg, board)
    with open(os.path.join(flash, "main.py"), "w") as f:
        f.write(BENCH_MAIN % steps)
    vb = VirtualBoard(flash, bus=bus.address)
    t0 = time.monotonic()
    try:
        vb.start()
        out = os.path.join(flash, "bench.json")
        end = time.monotonic() + (240 if quick else 900)
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
    return {
        "fw_heap_live_boot_bytes": r["boot"],
        "fw_heap_live_after_10k_steps_bytes" if not quick else
        "fw_heap_live_after_2k_steps_bytes": r["end"],
        "fw_heap_growth_bytes": r["end"] - r["boot"],
        "fw_alloc_per_cycle_bytes": r["alloc"] // max(1, r["steps"]),
        "fw_alloc_per_poll_step_bytes": r["poll_alloc"] // max(1, r["polls"]),
        "fw_heap_steps": r["steps"],
        "fw_heap_bench_wall_s": round(time.monotonic() - t0, 1),
    }
