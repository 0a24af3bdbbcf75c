"""Where the firmware's live heap goes (python -m tools.bench heap_parts).

The board of tools.bench heap (32 meters, as deployed: .mpy), booted and
stepped to step 40 like there; then, one step at a time (the VM collects
between steps), a part of the firmware is dropped and the fall of the live
heap is that part's share:

  fw_part_<name>_bytes   the heap freed by dropping <name>, in this order:
      credit, relay_state, readings, bus_stats, times (the per-meter
      columns), meter_objects (core.Meters), meter_config (the site file's
      meter dicts), journal, bus (drivers, profiles), link (MQTT client,
      socket), app (the rest of the Concentrator), then the modules one by
      one (mod_<name>: its bytecode, constants and globals, once nothing
      else refers to it)
  fw_part_rest_bytes     what is left of the firmware after all that

A diagnostic, not a goal: the parts are measured by difference, so an object
shared by two parts is counted with the one dropped last.
"""
import time

from tools.bench.heap_bench import BENCH_MAIN, _measure  # noqa: F401  (same board)

PARTS_MAIN = """
import gc
import sys
N = %d
MODS = ('console', 'board', 'core', 'credit', 'relay', 'meters', 'modbus', 'dlt645',
        'journal', 'mqtt', 'sockets', 'hal_esp32', 'hal', 'jsonfile', 'tariff',
        'protocol')


def drop_mod(name):
    sys.modules.pop('concentrator.' + name, None)
    pkg = sys.modules.get('concentrator')
    if pkg is not None:
        pkg.__dict__.pop(name, None)
    g = globals()
    for k in list(g):                  # main.py's `from console import *`
        v = g[k]
        if getattr(v, '__module__', None) == 'concentrator.' + name:
            g.pop(k)


class M:
    n = 0
    app = None
    pre = 0
    last = 0
    parts = None
    def drop(self, name):
        app = self.app
        if name == 'credit':
            app.credits = None
        elif name == 'relay_state':
            app.meters.rs = None
        elif name == 'readings':
            app.bus.readings = None
        elif name == 'bus_stats':
            for c in app.bus.meters:
                c.pop('stats', None)
        elif name == 'times':
            for k in ('t_poll_ms', 't_due', 't_rec_next', 't_rec', 't_read'):
                setattr(app, k, None)
        elif name == 'meter_objects':
            app.meters = None
        elif name == 'meter_config':
            app.cfg['meters'] = None
            app.bus.meters = None
        elif name == 'journal':
            app.journal = None
        elif name == 'bus':
            app.bus = None
        elif name == 'link':
            app.link = None
        elif name == 'app':
            self.app = None
            from concentrator import board
            board.APP = None
            board._watch = None
        elif name == 'umqtt':
            sys.modules.pop('umqtt.simple', None)
            sys.modules.pop('umqtt', None)
        else:
            drop_mod(name[4:])
    def step(self):
        a = gc.mem_alloc()             # GC ran between steps: live heap
        self.n += 1
        n = self.n
        if n == 1:
            gc.collect()
            return 0
        if n == 2:
            self.pre = a
            import concentrator.console
            from concentrator import board
            self.app = board.build()
            self.parts = ['credit', 'relay_state', 'readings', 'bus_stats', 'times',
                          'meter_objects', 'meter_config', 'journal', 'bus', 'link',
                          'app', 'umqtt'] + ['mod_' + m for m in MODS]
            self.out = []
            return 0
        if n < N:
            self.app.step()
            gc.collect()
            return 20
        k = n - N
        if k:
            self.out.append((self.parts[k - 1], self.last - a))
        self.last = a
        if k == len(self.parts):
            f = open('bench.json', 'w')
            f.write('{"pre": %%d, "live": %%d, "rest": %%d, "parts": [%%s]}' %% (
                self.pre, self.live, a - self.pre,
                ', '.join('["%%s", %%d]' %% p for p in self.out)))
            f.close()
            import vboard
            vboard.sync()
            vboard.stop()
            return 0
        if k == 0:
            self.live = a - self.pre
        self.drop(self.parts[k])
        gc.collect()
        return 0
import vboard
vboard.run_forever(M().step, 20, True)
"""


def run(quick=False):
    from sim.brokers import MosquittoBroker
    t0 = time.monotonic()
    broker = MosquittoBroker().start()
    try:
        r = _measure(40, True, True, broker.port, need_polls=False, main=PARTS_MAIN)
    finally:
        broker.cleanup()
    out = {"fw_heap_live_bytes": r["live"]}
    for name, d in r["parts"]:
        out["fw_part_%s_bytes" % name] = d
    out["fw_part_rest_bytes"] = r["rest"]
    out["fw_heap_parts_wall_s"] = round(time.monotonic() - t0, 1)
    return out
