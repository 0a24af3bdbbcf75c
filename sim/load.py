"""Load profiles for simulated meters.

A load is a piecewise-constant power curve (W) over virtual time (integer
microseconds): a base load shaped by the hour of day, a fridge cycling on and
off, and appliance events drawn from a seeded per-meter ``random.Random``.
The curve is a pure function of time (the same seed gives the same curve,
whatever order it is asked in), and ``energy_wus`` integrates it exactly in
watt-microseconds, so a meter that keeps the remainder never loses energy.
"""
import random

US_PER_H = 3600 * 1000000
WUS_PER_WH = 3600 * 1000000     # watt-microseconds in one Wh

# percent of the base load, hour 0..23 local time (a residential day)
DAY_SHAPE = (45, 40, 35, 35, 35, 45, 70, 100, 95, 75, 65, 65,
             75, 65, 60, 60, 70, 90, 125, 145, 140, 120, 90, 60)

# name, watts, typical duration (s), relative likelihood
APPLIANCES = (
    ("kettle", 2000, 180, 4),
    ("microwave", 1100, 300, 3),
    ("washer", 500, 3600, 1),
    ("oven", 1800, 1800, 1),
    ("tv", 120, 7200, 2),
    ("aircon", 1200, 5400, 2),
    ("pump", 750, 600, 1),
)
MAX_EVENT_US = 3 * 5400 * 1000000 // 2 + 1


class ConstantLoad:
    """A fixed draw, handy for tests: W watts all the time."""

    def __init__(self, watts):
        self.watts = int(watts)

    def power_at(self, t_us):
        return self.watts

    def energy_wus(self, t0_us, t1_us):
        return self.watts * max(0, t1_us - t0_us)


class LoadProfile:
    def __init__(self, seed=0, base_w=None, events_per_hour_pct=60,
                 epoch_s=0, tz_offset_s=28800, fridge_w=90):
        self.seed = seed
        rnd = random.Random(seed * 7919 + 17)
        self.base_w = base_w if base_w is not None else rnd.randint(60, 250)
        self.rate = events_per_hour_pct
        self.epoch_s = epoch_s
        self.tz = tz_offset_s
        self.fridge_w = fridge_w
        self.fridge_on_us = 15 * 60 * 1000000
        self.fridge_period_us = 40 * 60 * 1000000
        self.fridge_phase_us = rnd.randrange(self.fridge_period_us)
        self._slots = {}
        self._weights = [a[3] for a in APPLIANCES]

    # local clock: virtual t_us -> microseconds since local midnight of day 0
    def _local_us(self, t_us):
        return t_us + (self.epoch_s + self.tz) * 1000000

    def _events(self, slot):
        ev = self._slots.get(slot)
        if ev is None:
            if len(self._slots) > 64:
                self._slots.clear()
            rnd = random.Random((self.seed * 1000003) ^ (slot * 2654435761))
            hour = slot % 24
            ev = []
            for _ in range(4):
                if rnd.randrange(400) < self.rate * DAY_SHAPE[hour] // 100:
                    name, w, dur, _wt = rnd.choices(APPLIANCES, self._weights)[0]
                    start = slot * US_PER_H + rnd.randrange(US_PER_H)
                    d = dur * 1000000 * rnd.randint(50, 150) // 100
                    ev.append((start, start + d, w, name))
            self._slots[slot] = ev
        return ev

    def _active_events(self, lt0, lt1):
        # events (in local time) overlapping [lt0, lt1)
        out = []
        first = (lt0 - MAX_EVENT_US) // US_PER_H
        for slot in range(first, lt1 // US_PER_H + 1):
            for e in self._events(slot):
                if e[0] < lt1 and e[1] > lt0:
                    out.append(e)
        return out

    def _fridge(self, lt):
        return self.fridge_w if (lt + self.fridge_phase_us) % self.fridge_period_us < self.fridge_on_us else 0

    def _power_local(self, lt, events):
        p = self.base_w * DAY_SHAPE[(lt // US_PER_H) % 24] // 100 + self._fridge(lt)
        for e in events:
            if e[0] <= lt < e[1]:
                p += e[2]
        return p

    def power_at(self, t_us):
        lt = self._local_us(t_us)
        return self._power_local(lt, self._active_events(lt, lt + 1))

    def energy_wus(self, t0_us, t1_us):
        """Exact integral of power over [t0, t1) in watt-microseconds."""
        if t1_us <= t0_us:
            return 0
        lt0, lt1 = self._local_us(t0_us), self._local_us(t1_us)
        events = self._active_events(lt0, lt1)
        cuts = {lt0, lt1}
        h = (lt0 // US_PER_H + 1) * US_PER_H
        while h < lt1:
            cuts.add(h)
            h += US_PER_H
        per = self.fridge_period_us
        k = (lt0 + self.fridge_phase_us) // per
        while True:
            on = k * per - self.fridge_phase_us
            off = on + self.fridge_on_us
            if on >= lt1:
                break
            for c in (on, off):
                if lt0 < c < lt1:
                    cuts.add(c)
            k += 1
        for e in events:
            for c in (e[0], e[1]):
                if lt0 < c < lt1:
                    cuts.add(c)
        cuts = sorted(cuts)
        total = 0
        for a, b in zip(cuts, cuts[1:]):
            total += self._power_local(a, events) * (b - a)
        return total


class EnergyIntegrator:
    """Whole Wh plus a remainder in watt-microseconds: no energy is lost."""

    def __init__(self, wh=0):
        self.wh = int(wh)
        self.rem_wus = 0

    def add_wus(self, wus):
        q, self.rem_wus = divmod(self.rem_wus + wus, WUS_PER_WH)
        self.wh += q
        return self.wh
