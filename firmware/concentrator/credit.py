# Local credit of the meters: what the board bills itself between syncs.
#
# The board attributes the energy between two polls to the time-of-use band
# in force at (poll time - 1 s) and keeps per-band cumulative counters. At
# every reading record it advances its tariff state with
# tariff.charge_registers(versions, state, bands, ts - 1): the head-end runs
# the very same call on the very same record, so the two agree to the mu.
# Between records a provisional charge (same call on a throw-away copy of the
# state) keeps the estimate current for the relay decision.
#
# The head-end is authoritative: it pushes (balance, c) where c is the
# board's own cumulative charge at the last reading the head-end has billed;
# local credit = balance - (charged now - c).
#
# Kept as columns, one list entry per meter index (an object per meter cost
# ~140 B of heap each; a list entry is one word). Lists, not arrays: an int
# read from a 64-bit array is a new object every time in MicroPython, and
# balances and charged totals can pass 2^31 mu; None is "not yet known".
from concentrator import tariff

BANDS = tariff.BANDS
NBANDS = len(BANDS)


def _copy_state(s):
    c = {}
    for k in s:
        v = s[k]
        c[k] = dict(v) if isinstance(v, dict) else v
    return c


def costliest_band(spec):
    # the band billed while the board does not know the time
    if not spec.get("tou"):
        return "flat"
    best, price = "flat", -1
    prices = spec["prices"]
    for b in prices:
        if prices[b] > price:
            best, price = b, prices[b]
    return best


class Credits:
    def __init__(self, n):
        self.bands = [0] * (n * NBANDS)   # cumulative Wh per band (board attribution)
        self.e_last = [None] * n      # cumulative register at the last poll
        self.state = [None] * n       # tariff state at the last record (None: no baseline)
        self.charged = [0] * n        # tariff.total_charged(state): mu since the baseline
        self.provisional = [0] * n    # mu for the energy since the last record
        self.balance = [None] * n     # mu at the reference; None until the first sync
        self.c_ref = [None] * n       # board's `charged` at the head-end's last billed reading
        self.e_ref = [0] * n          # energy at that reading (fallback without c_ref)
        self.top = [0] * n            # recharges seen (emergency credit re-arms on growth)

    # -- energy -------------------------------------------------------------
    def band_list(self, i):
        b = self.bands
        j = i * NBANDS
        return [b[j + x] for x in range(NBANDS)]

    def band_tuple(self, i):
        b = self.bands
        j = i * NBANDS
        return (b[j], b[j + 1], b[j + 2], b[j + 3], b[j + 4])

    def _regs(self, i):
        r = {}
        b = self.bands
        j = i * NBANDS
        for x in range(NBANDS):
            r[BANDS[x]] = b[j + x]
        return r

    def on_poll(self, i, versions, energy_wh, t):
        # A new cumulative reading at nominal time t (0: time unknown).
        if self.e_last[i] is None:
            self.e_last[i] = energy_wh
            return
        d = energy_wh - self.e_last[i]
        if d > 0:
            if not versions:
                band = "flat"
            elif t:
                band = tariff.band_at(versions, t - 1)
            else:
                band = costliest_band(tariff.spec_at(versions, 0x7FFFFFFF))
            self.bands[i * NBANDS + BANDS.index(band)] += d
        self.e_last[i] = energy_wh
        self._provisional(i, versions, t)

    def _provisional(self, i, versions, t):
        st = self.state[i]
        if st is None or not versions:
            self.provisional[i] = 0
            return
        if t:
            s = _copy_state(st)
            try:
                self.provisional[i] = tariff.charge_registers(versions, s, self._regs(i), t - 1)
            except ValueError:
                pass
            return
        # time unknown: the energy since the last record at the costliest
        # price of the newest version (docs/relay-policy.md)
        spec = tariff.spec_at(versions, 0x7FFFFFFF)
        p = spec["prices"][costliest_band(spec)] if spec.get("tou") else spec["price"]
        reg = st.get("reg") or {}
        done = 0
        for b in reg:
            done += reg[b]
        self.provisional[i] = (sum(self.band_tuple(i)) - done) * p // 1000

    def on_record(self, i, versions, t):
        # A reading record at nominal time t: advance the tariff state.
        # Returns the board's cumulative charge to put in the record.
        if not versions or not t:
            return self.charged[i]
        st = self.state[i]
        if st is None:
            st = self.state[i] = tariff.new_state()
        try:
            tariff.charge_registers(versions, st, self._regs(i), t - 1)
        except ValueError:
            pass
        self.charged[i] = tariff.total_charged(st)
        self.provisional[i] = 0
        return self.charged[i]

    # -- sync -----------------------------------------------------------------
    def sync(self, i, balance, e_ref, c_ref=None, top=None):
        self.balance[i] = balance
        self.e_ref[i] = e_ref
        self.c_ref[i] = c_ref
        armed = False
        if top is not None:
            armed = top > self.top[i]
            self.top[i] = top
        return armed

    def known(self, i):
        return self.balance[i] is not None

    def value(self, i, price_hint=0):
        # local credit in mu, or None while never synced
        bal = self.balance[i]
        if bal is None:
            return None
        cr = self.c_ref[i]
        if cr is not None:
            return bal - (self.charged[i] + self.provisional[i] - cr)
        e = self.e_last[i]
        if e is None:
            e = self.e_ref[i]
        return bal - max(0, e - self.e_ref[i]) * price_hint // 1000

    # -- persistence (one meter's entry of the state file) -----------------------
    def to_state(self, i):
        return {"b": self.band_list(i), "el": self.e_last[i], "s": self.state[i],
                "ch": self.charged[i], "bal": self.balance[i], "cr": self.c_ref[i],
                "er": self.e_ref[i], "top": self.top[i]}

    def from_state(self, i, d):
        if not isinstance(d, dict):
            return
        b = d.get("b")
        if isinstance(b, list) and len(b) == NBANDS:
            for x in range(NBANDS):
                self.bands[i * NBANDS + x] = b[x]
        self.e_last[i] = d.get("el")
        self.state[i] = d.get("s")
        self.charged[i] = d.get("ch", 0)
        self.balance[i] = d.get("bal")
        self.c_ref[i] = d.get("cr")
        self.e_ref[i] = d.get("er", 0)
        self.top[i] = d.get("top", 0)
