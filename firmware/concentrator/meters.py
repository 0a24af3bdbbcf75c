# Bus layer used by the core: the last reading of every meter (Readings,
# kept as columns), one poll at a time through a Reading the drivers fill.
# Dispatches on profile["proto"] to modbus.Driver or dlt645.Driver, and
# backs off from meters that stop answering so they cost the others little.
from . import modbus

# what the bus keeps of each meter's last reading (Readings); the band
# registers a meter may have are the poll's only: the core attributes energy
# to tariff bands itself (credit.py)
FIELDS = ("energy_wh", "power_w", "voltage_dv", "current_ma", "relay_closed",
          "ok", "t_ms")


class Reading:
    # What a driver reads from one meter, filled in place.
    def __init__(self):
        self.energy_wh = None     # int Wh (cumulative import register)
        self.power_w = None       # int W
        self.voltage_dv = None    # int 0.1 V
        self.current_ma = None    # int mA
        self.relay_closed = None  # True / False / None (unknown)
        self.bands = None         # None or [Wh per tariff band] (this poll's)
        self.ok = False           # last poll succeeded
        self.t_ms = 0             # hal.ticks_ms() of the last good read


class Readings:
    # The last Reading of every meter as columns (one list per field, by
    # meter index): 32 Reading objects cost ~3.7 KB of heap, these ~1 KB.
    def __init__(self, n):
        for k in FIELDS:
            setattr(self, k, [None] * n)
        self.ok = [False] * n
        self.t_ms = [0] * n

    def load(self, i, r):
        # meter i's last reading into r
        for k in FIELDS:
            setattr(r, k, getattr(self, k)[i])
        return r

    def store(self, i, r):
        for k in FIELDS:
            getattr(self, k)[i] = getattr(r, k)


class MeterBus:
    def __init__(self, hal, meters, profiles_table=None, retries=3,
                 probe_every=10, offline_after=3):
        self.hal = hal
        self.meters = meters
        if profiles_table is None:
            from .profiles import PROFILES as profiles_table
        # only the models this bus has: the table of every model need not
        # stay in RAM (core drops profiles.py after boot)
        self.profiles = {}
        for m in meters:
            p = profiles_table.get(m.get("model"))
            if p is not None:
                name = m["model"]
                if name in self.profiles:
                    # one string per model name, shared by its meters (each
                    # meter's own copy from the site file costs ~32 B)
                    for k in self.profiles:
                        if k == name:
                            m["model"] = k
                else:
                    self.profiles[name] = p
        self.retries = retries
        self.probe_every = probe_every
        self.offline_after = offline_after
        self.readings = Readings(len(meters))
        self._r = Reading()        # the poll in progress (see poll)
        self.stats_table = modbus.stats_table(len(meters))
        for i in range(len(meters)):
            if meters[i].get("stats") is None:
                meters[i]["stats"] = modbus.Stats(self.stats_table, i)
        self._drv = {}
        self._own = {}
        self._last = None
        self.last_error = None

    def profile(self, i):
        m = self.meters[i]
        p = self.profiles.get(m.get("model"))
        if p is not None and p.get("proto") == "dlt645" and (
                m.get("baud") or m.get("parity")):
            # The DL/T 645 driver takes its serial settings from the profile:
            # a meter set to another baud/parity (a mixed bus) gets its own
            # copy, made once and kept.
            c = self._own.get(i)
            if c is None or c[0] is not p:
                d = dict(p)
                d["baud"] = m.get("baud") or p.get("baud", 2400)
                d["parity"] = m.get("parity") or p.get("parity", "E")
                c = self._own[i] = (p, d)
            return c[1]
        return p

    def driver(self, proto):
        d = self._drv.get(proto)
        if d is None:
            if proto == "modbus":
                d = modbus.Driver(self.hal, self.retries)
            elif proto == "dlt645":
                try:
                    from . import dlt645
                    d = dlt645.Driver(self.hal)
                except ImportError:
                    return None
            else:
                return None
            self._drv[proto] = d
        if d is not self._last:
            # another driver may have reconfigured the port, and it knows
            # when the line last carried a byte: hand that over, so the
            # 3.5-character silence is kept across protocols
            if hasattr(d, "_cfg"):
                d._cfg = None
            prev = self._last
            t = None
            if prev is not None:
                t = getattr(prev, "_last", None)
                if t is None:
                    t = getattr(prev, "_t_rx", None)
            if t is not None:
                for k in ("_last", "_t_rx"):
                    own = getattr(d, k, None)
                    if own is not None and self.hal.ticks_diff(t, own) > 0:
                        setattr(d, k, t)
            self._last = d
        return d

    def _gpio(self, m, p):
        rl = p.get("relay")
        return rl is not None and rl.get("kind") == "gpio" and m.get("relay") is not None

    def reading(self, i):
        # meter i's last reading (a new Reading: for the console and tests)
        return self.readings.load(i, Reading())

    def poll(self, i):
        # Read meter i once: the Reading, or None (failed, or offline and not
        # due for a probe). Bounded: at most retries * (timeout + frame time).
        # The Reading returned is the bus's own, valid until the next poll.
        r = self.readings.load(i, self._r)
        r.bands = None
        try:
            return self._poll(i, r)
        finally:
            self.readings.store(i, r)

    def _poll(self, i, r):
        m = self.meters[i]
        st = m["stats"]
        st["polls"] += 1
        r.ok = False
        p = self.profile(i)
        tries = None
        if st["offline"]:
            st["skipped"] += 1
            if st["skipped"] % self.probe_every:
                return None
            tries = 1                        # one quiet probe
        ok = False
        try:
            d = self.driver(p["proto"]) if p else None
            if d is not None:
                if tries:
                    try:
                        ok = d.read(m, p, r, tries)
                    except TypeError:
                        ok = d.read(m, p, r)
                else:
                    ok = d.read(m, p, r)
        except Exception as e:               # a bug must not stop the bus
            st["errors"] += 1
            self.last_error = e
            ok = False
        if not ok:
            r.ok = False
            st["fails"] += 1
            if not st["offline"] and (st["fails"] >= self.offline_after or
                                      st["silent"] >= self.offline_after):
                st["offline"] = True
                st["skipped"] = 0
            return None
        st["ok"] += 1
        st["fails"] = 0
        st["offline"] = False
        r.ok = True
        r.t_ms = self.hal.ticks_ms()
        if self._gpio(m, p):
            fb = self.hal.relay_get(m["relay"])
            if fb is not None:
                r.relay_closed = fb
        return r

    def set_relay(self, i, closed):
        # Switch meter i's supply; True only if the read-back agrees.
        # A GPIO contactor without a feedback input is trusted as written.
        m = self.meters[i]
        p = self.profile(i)
        if p is None:
            return False
        rc = self.readings.relay_closed
        if self._gpio(m, p):
            self.hal.relay_set(m["relay"], closed)
            fb = self.hal.relay_get(m["relay"])
            rc[i] = closed if fb is None else fb
            return fb is None or fb == closed
        try:
            d = self.driver(p["proto"])
            ok = d is not None and d.set_relay(m, p, closed)
        except Exception as e:
            m["stats"]["errors"] += 1
            self.last_error = e
            ok = False
        if ok:
            rc[i] = bool(closed)
        return ok

    def stats(self, i):
        return self.meters[i]["stats"]

    def online(self, i):
        return not self.meters[i]["stats"]["offline"]
