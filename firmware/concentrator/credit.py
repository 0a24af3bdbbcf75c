# Local credit of one meter: what the board bills itself between syncs.
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


class Credit:
    def __init__(self):
        self.bands = [0] * NBANDS    # cumulative Wh per band (board attribution)
        self.e_last = None           # cumulative register at the last poll
        self.state = None            # tariff state at the last record (None: no baseline)
        self.charged = 0             # tariff.total_charged(state): mu since the baseline
        self.provisional = 0         # mu for the energy since the last record
        self.balance = None          # mu at the reference; None until the first sync
        self.c_ref = None            # board's `charged` at the head-end's last billed reading
        self.e_ref = 0               # energy at that reading (fallback without c_ref)
        self.top = 0                 # recharges seen (emergency credit re-arms on growth)

    # -- energy -------------------------------------------------------------
    def _regs(self):
        r = {}
        for i in range(NBANDS):
            r[BANDS[i]] = self.bands[i]
        return r

    def on_poll(self, versions, energy_wh, t):
        # A new cumulative reading at nominal time t (0: time unknown).
        if self.e_last is None:
            self.e_last = energy_wh
            return
        d = energy_wh - self.e_last
        if d > 0:
            if not versions:
                band = "flat"
            elif t:
                band = tariff.band_at(versions, t - 1)
            else:
                band = costliest_band(tariff.spec_at(versions, 0x7FFFFFFF))
            self.bands[BANDS.index(band)] += d
        self.e_last = energy_wh
        self._provisional(versions, t)

    def _provisional(self, versions, t):
        if self.state is None or not versions:
            self.provisional = 0
            return
        if t:
            s = _copy_state(self.state)
            try:
                self.provisional = tariff.charge_registers(versions, s, self._regs(), t - 1)
            except ValueError:
                pass
            return
        # time unknown: the energy since the last record at the costliest
        # price of the newest version (docs/relay-policy.md)
        spec = tariff.spec_at(versions, 0x7FFFFFFF)
        p = spec["prices"][costliest_band(spec)] if spec.get("tou") else spec["price"]
        reg = self.state.get("reg") or {}
        done = 0
        for b in reg:
            done += reg[b]
        self.provisional = (sum(self.bands) - done) * p // 1000

    def on_record(self, versions, t):
        # A reading record at nominal time t: advance the tariff state.
        # Returns the board's cumulative charge to put in the record.
        if not versions or not t:
            return self.charged
        if self.state is None:
            self.state = tariff.new_state()
        try:
            tariff.charge_registers(versions, self.state, self._regs(), t - 1)
        except ValueError:
            pass
        self.charged = tariff.total_charged(self.state)
        self.provisional = 0
        return self.charged

    # -- sync -----------------------------------------------------------------
    def sync(self, balance, e_ref, c_ref=None, top=None):
        self.balance = balance
        self.e_ref = e_ref
        self.c_ref = c_ref
        armed = False
        if top is not None:
            armed = top > self.top
            self.top = top
        return armed

    def known(self):
        return self.balance is not None

    def value(self, price_hint=0):
        # local credit in mu, or None while never synced
        if self.balance is None:
            return None
        if self.c_ref is not None:
            return self.balance - (self.charged + self.provisional - self.c_ref)
        e = self.e_last if self.e_last is not None else self.e_ref
        return self.balance - max(0, e - self.e_ref) * price_hint // 1000

    # -- persistence ------------------------------------------------------------
    def to_state(self):
        return {"b": self.bands, "el": self.e_last, "s": self.state, "ch": self.charged,
                "bal": self.balance, "cr": self.c_ref, "er": self.e_ref, "top": self.top}

    def from_state(self, d):
        if not isinstance(d, dict):
            return
        b = d.get("b")
        if isinstance(b, list) and len(b) == NBANDS:
            self.bands = b
        self.e_last = d.get("el")
        self.state = d.get("s")
        self.charged = d.get("ch", 0)
        self.balance = d.get("bal")
        self.c_ref = d.get("cr")
        self.e_ref = d.get("er", 0)
        self.top = d.get("top", 0)
