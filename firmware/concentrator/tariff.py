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
_SPEC_KEYS = ("version", "effective", "name", "currency", "tz_offset_s",
              "price", "prices", "tou", "tiers", "cycle", "note")
_TOU_KEYS = ("days", "seasons", "weekend_days", "holidays")
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


def cycle_start_day(spec, t):
    """Local day number on which the billing cycle containing t began."""
    cd, n, sm = _cycle(spec)
    day = (t + spec["tz_offset_s"]) // _DAY
    y, m, d = civil_from_days(day)
    mi = y * 12 + m - 1
    if d < cd:
        mi -= 1
    mi -= (mi - (sm - 1)) % n
    return days_from_civil(mi // 12, mi % 12 + 1, cd)


def cycle_start(spec, t):
    """Unix time (UTC) at which the billing cycle containing t began."""
    spec = spec_at(spec, t)
    return cycle_start_day(spec, t) * _DAY - spec["tz_offset_s"]


# ---------------------------------------------------------------- costing

def _tier_exact(tiers, e):
    # surcharge of the first `e` Wh of a cycle, in mu*Wh/kWh
    s = 0
    n = len(tiers)
    for i in range(n):
        lo = tiers[i]["from_wh"]
        if e <= lo:
            break
        hi = tiers[i + 1]["from_wh"] if i + 1 < n else e
        if hi > e:
            hi = e
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
        c += _tier_exact(tiers, cycle_wh_before + tot) - _tier_exact(tiers, cycle_wh_before)
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
    spec, late = _segment(versions, state, t)
    if spec.get("tou"):
        if band not in spec["prices"] and late:
            band = band_at_local(spec, t + spec["tz_offset_s"])
        if band not in spec["prices"]:
            raise ValueError("band %r has no price in tariff version %d"
                             % (band, spec["version"]))
    else:
        band = "flat"
    if not wh:
        return 0
    e = state["e"]
    e[band] = e.get(band, 0) + wh
    state["wh"] += wh
    seg = cost_exact(spec, e, state["cwh"]) // 1000
    d = seg - state["seg"]
    state["seg"] = seg
    return d


def charge_registers(versions, state, regs, t):
    """Bill from cumulative per-band meter registers {band: Wh} read at t.

    The first call only records the baseline.  A register that went down
    (meter replaced or reset) restarts its baseline without charging."""
    last = state.get("reg")
    if last is None:
        state["reg"] = dict(regs)
        _segment(versions, state, t)
        return 0
    mu = 0
    for b in regs:
        v = regs[b]
        p = last.get(b)
        if p is not None and v > p:
            mu += charge(versions, state, b, v - p, t)
        last[b] = v
    return mu


# ---------------------------------------------------------------- validation

def _int(x, what, lo=None, hi=None):
    if type(x) is not int:
        raise ValueError("%s must be an integer, got %r" % (what, x))
    if lo is not None and x < lo:
        raise ValueError("%s must be >= %d, got %d" % (what, lo, x))
    if hi is not None and x > hi:
        raise ValueError("%s must be <= %d, got %d" % (what, hi, x))


def _fmt(s, like, what):
    # s must look like `like` ("HH:MM", "MM-DD", "YYYY-MM-DD"): digits and separators
    ok = type(s) is str and len(s) == len(like)
    if ok:
        for i in range(len(like)):
            c = s[i]
            if like[i] in ":-":
                ok = ok and c == like[i]
            else:
                ok = ok and "0" <= c <= "9"
    if not ok:
        raise ValueError("%s must be a string like %s, got %r" % (what, like, s))


def validate(spec):
    """Check one tariff version; raise ValueError saying what is wrong."""
    if type(spec) is not dict:
        raise ValueError("tariff spec must be a JSON object (dict)")
    v = spec.get("version")
    _int(v, "version", 0)
    w = "tariff version %d: " % v
    try:
        _validate(spec)
    except ValueError as ex:
        raise ValueError(w + str(ex.args[0] if ex.args else ex))
    return spec


def _validate(spec):
    for k in spec:
        if k not in _SPEC_KEYS:
            raise ValueError("unknown key %r (allowed: %s)" % (k, ", ".join(_SPEC_KEYS)))
    if "effective" not in spec:
        raise ValueError("missing 'effective' (Unix seconds UTC)")
    _int(spec["effective"], "effective")
    if "tz_offset_s" not in spec:
        raise ValueError("missing 'tz_offset_s' (site offset from UTC in seconds, China 28800)")
    _int(spec["tz_offset_s"], "tz_offset_s", -50400, 50400)
    for k in ("name", "currency", "note"):
        if k in spec and type(spec[k]) is not str:
            raise ValueError("%s must be a string" % k)
    tou = spec.get("tou")
    if tou is None:
        if "prices" in spec:
            raise ValueError("'prices' is for time-of-use tariffs; without 'tou' give one 'price'")
        if "price" not in spec:
            raise ValueError("missing 'price' (mu per kWh)")
        _int(spec["price"], "price", 0)
    else:
        if "price" in spec:
            raise ValueError("a time-of-use tariff takes 'prices' per band, not 'price'")
        prices = spec.get("prices")
        if type(prices) is not dict or not prices:
            raise ValueError("missing 'prices' ({band: mu per kWh})")
        for b in prices:
            if type(b) is not str or not b or len(b) > 16:
                raise ValueError("band name %r must be a short string" % (b,))
            _int(prices[b], "prices[%r]" % b, 0)
        _validate_tou(tou, prices)
    tiers = spec.get("tiers")
    if tiers is not None:
        if type(tiers) is not list or not tiers:
            raise ValueError("'tiers' must be a non-empty list")
        prev = -1
        for i in range(len(tiers)):
            tr = tiers[i]
            if type(tr) is not dict or "from_wh" not in tr or "add" not in tr:
                raise ValueError("tiers[%d] must be {\"from_wh\": Wh, \"add\": mu per kWh}" % i)
            for k in tr:
                if k not in ("from_wh", "add"):
                    raise ValueError("tiers[%d]: unknown key %r" % (i, k))
            _int(tr["from_wh"], "tiers[%d].from_wh" % i, 0)
            _int(tr["add"], "tiers[%d].add" % i, 0)
            if i == 0 and tr["from_wh"] != 0:
                raise ValueError("tiers[0].from_wh must be 0 (the first tier starts at zero)")
            if tr["from_wh"] <= prev:
                raise ValueError("tiers[%d].from_wh must be greater than tiers[%d].from_wh"
                                 % (i, i - 1))
            prev = tr["from_wh"]
    cyc = spec.get("cycle")
    if cyc is not None:
        if type(cyc) is not dict:
            raise ValueError("'cycle' must be {\"day\": 1..28, \"months\": n, \"start_month\": 1..12}")
        for k in cyc:
            if k not in ("day", "months", "start_month"):
                raise ValueError("cycle: unknown key %r" % (k,))
        _int(cyc.get("day", 1), "cycle.day", 1, 28)
        mo = cyc.get("months", 1)
        _int(mo, "cycle.months", 1, 12)
        if 12 % mo:
            raise ValueError("cycle.months must divide 12 (1, 2, 3, 4, 6 or 12), got %d" % mo)
        _int(cyc.get("start_month", 1), "cycle.start_month", 1, 12)


def _validate_tou(tou, prices):
    if type(tou) is not dict:
        raise ValueError("'tou' must be an object with 'days' and 'seasons'")
    for k in tou:
        if k not in _TOU_KEYS:
            raise ValueError("tou: unknown key %r (allowed: %s)" % (k, ", ".join(_TOU_KEYS)))
    days = tou.get("days")
    if type(days) is not dict or not days:
        raise ValueError("tou.days must map a day-profile name to [[\"HH:MM\", band], ...]")
    for name in days:
        prof = days[name]
        w = "tou.days[%r]" % (name,)
        if type(prof) is not list or not prof:
            raise ValueError(w + " must be a non-empty list of [\"HH:MM\", band]")
        prev = -1
        for i in range(len(prof)):
            ent = prof[i]
            if type(ent) is not list or len(ent) != 2:
                raise ValueError("%s[%d] must be [\"HH:MM\", band]" % (w, i))
            _fmt(ent[0], "HH:MM", "%s[%d] start" % (w, i))
            m = _hm(ent[0])
            if m >= 1440 or int(ent[0][3:5]) > 59:
                raise ValueError("%s[%d]: %r is not a time of day" % (w, i, ent[0]))
            if i == 0 and m != 0:
                raise ValueError("%s must start at \"00:00\"" % w)
            if m <= prev:
                raise ValueError("%s[%d]: times must increase" % (w, i))
            prev = m
            if ent[1] not in prices:
                raise ValueError("%s[%d]: band %r has no price in 'prices'" % (w, i, ent[1]))
    seasons = tou.get("seasons")
    if type(seasons) is not list or not seasons:
        raise ValueError("tou.seasons must be a non-empty list")
    for i in range(len(seasons)):
        s = seasons[i]
        w = "tou.seasons[%d]" % i
        if type(s) is not dict:
            raise ValueError(w + " must be an object")
        for k in s:
            if k not in ("from", "to", "weekday", "weekend", "name"):
                raise ValueError("%s: unknown key %r" % (w, k))
        for k in ("from", "to"):
            _fmt(s.get(k), "MM-DD", "%s.%s" % (w, k))
            md = _md(s[k])
            if not (1 <= md // 100 <= 12 and 1 <= md % 100 <= _mdays(md // 100)):
                raise ValueError("%s.%s: %r is not a date" % (w, k, s[k]))
        for k in ("weekday", "weekend"):
            if k in s or k == "weekday":
                if s.get(k) not in days:
                    raise ValueError("%s.%s must name a profile in tou.days, got %r"
                                     % (w, k, s.get(k)))
    # every day of the year (29 February included) in exactly one season
    rng = [(_md(s["from"]), _md(s["to"])) for s in seasons]
    for m in range(1, 13):
        for d in range(1, _mdays(m) + 1):
            md = m * 100 + d
            n = 0
            for a, b in rng:
                if (a <= md <= b) if a <= b else (md >= a or md <= b):
                    n += 1
            if n != 1:
                raise ValueError("tou.seasons: %02d-%02d is covered by %d seasons (need exactly 1)"
                                 % (m, d, n))
    wd = tou.get("weekend_days", [5, 6])
    if type(wd) is not list:
        raise ValueError("tou.weekend_days must be a list of 0..6 (Monday=0)")
    for x in wd:
        _int(x, "tou.weekend_days item", 0, 6)
    hol = tou.get("holidays", [])
    if type(hol) is not list:
        raise ValueError("tou.holidays must be a list of \"YYYY-MM-DD\"")
    for x in hol:
        _fmt(x, "YYYY-MM-DD", "tou.holidays item")


def _mdays(m):
    return (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1]


def validate_versions(versions):
    """Check a list of versions (each valid, version numbers unique)."""
    if type(versions) is dict:
        versions = [versions]
    if type(versions) is not list or not versions:
        raise ValueError("tariff versions must be a non-empty list")
    seen = {}
    for s in versions:
        validate(s)
        if s["version"] in seen:
            raise ValueError("tariff version %d appears twice" % s["version"])
        seen[s["version"]] = 1
    return versions


# ---------------------------------------------------------------- display

def _tz_txt(tz):
    sg = "+" if tz >= 0 else "-"
    tz = -tz if tz < 0 else tz
    return "UTC%s%02d:%02d" % (sg, tz // 3600, tz % 3600 // 60)


def price_summary(spec):
    """Plain-text description of one tariff version, for people."""
    tz = spec["tz_offset_s"]
    cur = spec.get("currency", "")
    cu = (" " + cur) if cur else ""
    loc = spec["effective"] + tz
    day = loc // _DAY
    sec = loc - day * _DAY
    out = ["Tariff %s version %d, in force from %s %02d:%02d (%s)" % (
        repr(spec["name"]) if "name" in spec else "", spec["version"],
        fmt_date(day), sec // 3600, sec % 3600 // 60, _tz_txt(tz))]
    tou = spec.get("tou")
    if tou:
        prices = spec["prices"]
        names = [b for b in BANDS if b in prices] + sorted([b for b in prices if b not in BANDS])
        out.append("Price per kWh by time of day: " + ", ".join(
            ["%s %s%s" % (b, fmt_money(prices[b]), cu) for b in names]))
        for s in tou["seasons"]:
            if s.get("weekend", s["weekday"]) != s["weekday"]:
                kinds = [("weekdays", s["weekday"]), ("weekends and holidays", s["weekend"])]
            else:
                kinds = [("every day", s["weekday"])]
            for label, prof in kinds:
                out.append("  %s..%s %s: %s" % (s["from"], s["to"], label, ", ".join(
                    ["from %s %s" % (e[0], e[1]) for e in tou["days"][prof]])))
    else:
        out.append("Price per kWh: %s%s" % (fmt_money(spec["price"]), cu))
    tiers = spec.get("tiers")
    if tiers:
        cd, n, sm = _cycle(spec)
        per = {1: "month", 12: "year"}.get(n, "%d months" % n)
        out.append("Tiers by consumption per billing cycle (one %s, starting day %d%s):" % (
            per, cd, (" of month %d" % sm) if n > 1 else ""))
        for i in range(len(tiers)):
            lo = tiers[i]["from_wh"]
            rng = ("%s-%s kWh" % (fmt_kwh(lo), fmt_kwh(tiers[i + 1]["from_wh"]))
                   if i + 1 < len(tiers) else "above %s kWh" % fmt_kwh(lo))
            if tou:
                out.append("  %s: +%s%s per kWh" % (rng, fmt_money(tiers[i]["add"]), cu))
            else:
                out.append("  %s: %s%s per kWh" % (
                    rng, fmt_money(spec["price"] + tiers[i]["add"]), cu))
    return "\n".join(out)
