# Wattkeeper tariff engine: integer-only billing arithmetic.
#
# One implementation, run unchanged by the concentrator (MicroPython) and by
# the head-end (CPython, `import concentrator.tariff`).  See docs/tariffs.md.
#
# Units: energy Wh (int), money mu = 1/10000 currency unit (int), prices mu
# per kWh (int), times Unix seconds UTC (int); local time = t + tz_offset_s.
# No floats, no datetime.
#
# Chunk invariance: within a *segment* (one tariff version and one billing
# cycle) the exact cost of the cumulative per-band energy is computed in
# mu*Wh/kWh (= mu/1000) units, and what has been charged so far is
# floor(exact / 1000).  A charge is the growth of that floor, so splitting
# consumption into any number of pieces gives the same total to the last mu.
# When the segment changes (cycle rollover, new version) the segment is
# closed; its leftover fraction (< 1 mu) is dropped.

BANDS = ("sharp", "peak", "flat", "valley", "deep_valley")  # display order
_DAY = 86400


# ---------------------------------------------------------------- dates

def days_from_civil(y, m, d):
    """Days since 1970-01-01 of the proleptic Gregorian date y-m-d."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(y, m, d) of day number z (days since 1970-01-01)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400
    if m <= 2:
        y += 1
    return y, m, d


def weekday(days):
    """Day of week of day number `days`: Monday=0 .. Sunday=6."""
    return (days + 3) % 7


def _md(s):  # "MM-DD" -> MM*100+DD
    return int(s[0:2]) * 100 + int(s[3:5])


def _hm(s):  # "HH:MM" -> minutes
    return int(s[0:2]) * 60 + int(s[3:5])


# ---------------------------------------------------------------- versions

def spec_at(versions, t):
    """The tariff version in force at Unix time t.

    `versions` is one spec dict or a list of them.  The version with the
    greatest `effective` <= t wins (ties: the higher `version`).  Times
    before every version's effective date use the earliest version."""
    if type(versions) is dict:
        return versions
    if len(versions) == 1:
        return versions[0]      # the only version is in force at every t
    best = None
    first = None
    for s in versions:
        k = (s["effective"], s["version"])
        if k[0] <= t and (best is None or k > (best["effective"], best["version"])):
            best = s
        if first is None or k < (first["effective"], first["version"]):
            first = s
    if best is None:
        if first is None:
            raise ValueError("no tariff versions given")
        return first
    return best


def _find_version(versions, ver, eff):
    if type(versions) is dict:
        versions = (versions,)
    for s in versions:
        if s["version"] == ver and s["effective"] == eff:
            return s
    return None


# ---------------------------------------------------------------- bands

def band_at_local(spec, local_s):
    """Band name in force at local time `local_s` (Unix seconds + tz)."""
    tou = spec.get("tou")
    if not tou:
        return "flat"
    day = local_s // _DAY
    minute = (local_s - day * _DAY) // 60
    y, m, d = civil_from_days(day)
    season = _season(tou, m * 100 + d)
    rest = weekday(day) in tou.get("weekend_days", (5, 6))
    if not rest:
        hol = tou.get("holidays")
        if hol and ("%04d-%02d-%02d" % (y, m, d)) in hol:
            rest = True
    prof = tou["days"][season.get("weekend", season["weekday"]) if rest
                       else season["weekday"]]
    band = prof[0][1]
    for ent in prof:
        if _hm(ent[0]) <= minute:
            band = ent[1]
        else:
            break
    return band


def band_at(spec, t):
    """Band name in force at Unix time t (spec or list of versions)."""
    spec = spec_at(spec, t)
    return band_at_local(spec, t + spec["tz_offset_s"])


def _season(tou, md):
    for s in tou["seasons"]:
        a = _md(s["from"])
        b = _md(s["to"])
        if (a <= md <= b) if a <= b else (md >= a or md <= b):
            return s
    raise ValueError("no season covers %04d" % md)


# ---------------------------------------------------------------- cycles

def _cycle(spec):
    c = spec.get("cycle") or {}
    return c.get("day", 1), c.get("months", 1), c.get("start_month", 1)


# the last answer of cycle_start_day: [spec, local day, cycle start day]. A
# message's meters, and a board's polls, ask for the same day over and over.
# Specs are never changed in place (a new tariff is a new object), and the
# spec is held here, so `is` cannot match another spec.
_last_cycle = [None, 0, 0]


def cycle_start_day(spec, t):
    """Local day number on which the billing cycle containing t began."""
    day = (t + spec["tz_offset_s"]) // _DAY
    last = _last_cycle
    if last[0] is spec and last[1] == day:
        return last[2]
    cd, n, sm = _cycle(spec)
    y, m, d = civil_from_days(day)
    mi = y * 12 + m - 1
    if d < cd:
        mi -= 1
    mi -= (mi - (sm - 1)) % n
    start = days_from_civil(mi // 12, mi % 12 + 1, cd)
    last[0] = spec
    last[1] = day
    last[2] = start
    return start


def cycle_start(spec, t):
    """Unix time (UTC) at which the billing cycle containing t began."""
    spec = spec_at(spec, t)
    return cycle_start_day(spec, t) * _DAY - spec["tz_offset_s"]


# ---------------------------------------------------------------- costing

def _tier_between(tiers, a, b):
    # surcharge of the Wh from a to b (a <= b) of a cycle, in mu*Wh/kWh: each
    # tier's add times the part of [a, b) in it (tiers start at 0 and rise:
    # tariff_check), in one pass over the tiers
    s = 0
    n = len(tiers)
    for i in range(n):
        lo = tiers[i]["from_wh"]
        if b <= lo:
            break
        hi = tiers[i + 1]["from_wh"] if i + 1 < n else b
        if hi > b:
            hi = b
        if lo < a:
            lo = a
        if hi > lo:
            s += (hi - lo) * tiers[i]["add"]
    return s


def cost_exact(spec, band_wh, cycle_wh_before=0):
    """Exact cost in mu*Wh/kWh (i.e. 1/1000 mu) of `band_wh` ({band: Wh})
    consumed under `spec` in one cycle after `cycle_wh_before` Wh of the
    same cycle were already consumed (that energy only moves the tiers)."""
    tot = 0
    c = 0
    if spec.get("tou"):
        prices = spec["prices"]
        for b in band_wh:
            w = band_wh[b]
            if w:
                p = prices.get(b)
                if p is None:
                    raise ValueError("band %r has no price in tariff version %d"
                                     % (b, spec["version"]))
                c += w * p
                tot += w
    else:
        for b in band_wh:
            tot += band_wh[b]
        c = tot * spec["price"]
    tiers = spec.get("tiers")
    if tiers and tot:
        c += _tier_between(tiers, cycle_wh_before, cycle_wh_before + tot)
    return c


def cost_of(spec, band_wh, cycle_wh_before=0):
    """Cost in mu (rounded down) of {band: Wh} in one cycle of one version."""
    return cost_exact(spec, band_wh, cycle_wh_before) // 1000


def marginal_price(versions, state, t, band=None):
    """Price in mu/kWh of the next Wh at time t (band from t if not given),
    including the tier surcharge at the cycle's consumption so far."""
    spec = spec_at(versions, t)
    if band is None:
        band = band_at_local(spec, t + spec["tz_offset_s"])
    p = spec["prices"][band] if spec.get("tou") else spec["price"]
    tiers = spec.get("tiers")
    if tiers:
        a = 0
        e = cycle_wh(state) if (state.get("ver") is not None
                                and state["cyc"] == cycle_start_day(spec, t)) else 0
        for tr in tiers:
            if tr["from_wh"] <= e:
                a = tr["add"]
        p += a
    return p


# ---------------------------------------------------------------- accumulator

def new_state():
    """Fresh billing accumulator (plain JSON-able dict; persist it as is).

    ver/eff: tariff version and effective time of the open segment;
    cyc: local day number of the open segment's cycle start;
    cwh: cycle energy consumed in earlier segments of this cycle (Wh);
    e: {band: Wh} consumed in the open segment;
    seg: mu charged in the open segment; done: mu charged in closed segments;
    wh: lifetime Wh billed; reg: last per-band meter registers (or None)."""
    return {"ver": None, "eff": 0, "cyc": 0, "cwh": 0, "e": {},
            "seg": 0, "done": 0, "wh": 0, "reg": None}


def total_charged(state):
    """Total mu charged since new_state()."""
    return state["done"] + state["seg"]


def cycle_wh(state):
    """Energy (Wh) consumed so far in the current billing cycle."""
    s = state["cwh"]
    e = state["e"]
    for b in e:
        s += e[b]
    return s


def _segment(versions, state, t):
    # pick the spec for t and roll the open segment if needed; returns
    # (spec, late): late is True when t belongs before the open segment
    spec = spec_at(versions, t)
    cyc = cycle_start_day(spec, t)
    ver = state["ver"]
    if ver is None:
        state["ver"] = spec["version"]
        state["eff"] = spec["effective"]
        state["cyc"] = cyc
        return spec, False
    if (spec["effective"], spec["version"]) < (state["eff"], ver):
        # late reading from before the open segment's version: bill it in
        # the open segment, at the open segment's prices
        old = _find_version(versions, ver, state["eff"])
        if old is None:
            raise ValueError("tariff version %d (open segment) is missing" % ver)
        return old, True
    same = spec["version"] == ver and spec["effective"] == state["eff"]
    if same and cyc <= state["cyc"]:
        return spec, cyc < state["cyc"]  # same segment, or late within this version
    # close the open segment
    state["done"] += state["seg"]
    state["seg"] = 0
    if cyc == state["cyc"]:
        state["cwh"] = cycle_wh(state)
    else:
        state["cwh"] = 0
    state["e"] = {}
    state["ver"] = spec["version"]
    state["eff"] = spec["effective"]
    state["cyc"] = cyc
    return spec, False


def charge(versions, state, band, wh, t):
    """Bill `wh` Wh of band `band` consumed at Unix time t; returns the mu
    charged now (>= 0) and updates `state` in place.

    `versions`: one spec or a list of versions.  `band`: the band the energy
    belongs to (use band_at(versions, t) when the meter has one register);
    ignored (billed as "flat") by tariffs without time-of-use.

    A late reading (t before the open segment: clock fix, delayed data) is
    billed in the open segment at its prices; if its band has no price
    there, the open segment's band at t is used."""
    if type(wh) is not int or wh < 0:
        raise ValueError("energy must be a non-negative int of Wh, got %r" % (wh,))
    return _charge(versions, state, {band: wh}, t)


def _charge(versions, state, used, t):
    # Bill {band: Wh} (ints >= 0) consumed at t in one step: the segment is
    # picked once and the cost computed once. The mu equal the sum of one
    # charge() per band (each charges the floor of the segment's new cost
    # minus the last one: the differences add up to the same floor). Every
    # band is checked before anything is added: a band without a price
    # raises with the accumulator's energy unchanged.
    spec, late = _segment(versions, state, t)
    tou = spec.get("tou")
    if tou:
        prices = spec["prices"]
        for b in used:
            if b not in prices and (not late or band_at_local(spec, t + spec["tz_offset_s"]) not in prices):
                raise ValueError("band %r has no price in tariff version %d"
                                 % (band_at_local(spec, t + spec["tz_offset_s"]) if late else b,
                                    spec["version"]))
    e = state["e"]
    tot = 0
    for b in used:
        wh = used[b]
        if wh:
            if not tou:
                b = "flat"
            elif b not in prices:
                b = band_at_local(spec, t + spec["tz_offset_s"])
            e[b] = e.get(b, 0) + wh
            tot += wh
    if not tot:
        return 0
    state["wh"] += tot
    seg = cost_exact(spec, e, state["cwh"]) // 1000
    d = seg - state["seg"]
    state["seg"] = seg
    return d


def charge_registers(versions, state, regs, t):
    """Bill from cumulative per-band meter registers {band: Wh} read at t.

    The first call only records the baseline.  A register that went down
    (meter replaced or reset) restarts its baseline without charging. What
    every band gained is billed in one step (_charge); when that raises
    (a band without a price), the registers stay as they were."""
    last = state.get("reg")
    if last is None:
        state["reg"] = dict(regs)
        _segment(versions, state, t)
        return 0
    used = {}
    for b in regs:
        p = last.get(b)
        if p is not None and regs[b] > p:
            used[b] = regs[b] - p
    mu = _charge(versions, state, used, t) if used else 0
    last.update(regs)
    return mu


# ---------------------------------------------------------------- checks, display
# Validation and the text summary are needed by the head-end and when a new
# tariff arrives, not at every poll: they live in tariff_check.py, imported
# for the call. On the board (MicroPython) the module is dropped again right
# after, so its ~6 KB of bytecode do not stay in the heap.

def _checked(name, arg):
    import sys
    try:
        from concentrator import tariff_check as c
    except ImportError:               # tariff.py used on its own, outside the package
        import tariff_check as c
    try:
        return getattr(c, name)(arg)
    finally:
        if sys.implementation.name == "micropython":
            sys.modules.pop(c.__name__, None)
            pkg = sys.modules.get("concentrator")
            if pkg is not None:
                pkg.__dict__.pop("tariff_check", None)


def validate(spec):
    """Check one tariff version; raise ValueError saying what is wrong."""
    return _checked("validate", spec)


def validate_versions(versions):
    """Check a list of versions (each valid, version numbers unique)."""
    return _checked("validate_versions", versions)


def price_summary(spec):
    """Plain-text description of one tariff version, for people."""
    return _checked("price_summary", spec)


def fmt_date(days):
    return "%04d-%02d-%02d" % civil_from_days(days)


def fmt_money(mu):
    """mu -> '12.3456' (currency units, 4 decimals)."""
    s = "-" if mu < 0 else ""
    mu = -mu if mu < 0 else mu
    return "%s%d.%04d" % (s, mu // 10000, mu % 10000)


def fmt_kwh(wh):
    s = "%d" % (wh // 1000)
    r = wh % 1000
    if r:
        s += (".%03d" % r).rstrip("0")
    return s
