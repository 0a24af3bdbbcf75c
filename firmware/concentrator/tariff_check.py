# Tariff checks and display, loaded on demand (tariff.validate & co. import
# this module when called; the head-end may import it directly).  The billing
# arithmetic itself is in tariff.py; see docs/tariffs.md.
try:
    from concentrator.tariff import (BANDS, _DAY, _cycle, _hm, _md, fmt_date, fmt_kwh,
                                     fmt_money)
except ImportError:                   # next to a tariff.py outside the package
    from tariff import BANDS, _DAY, _cycle, _hm, _md, fmt_date, fmt_kwh, fmt_money


_SPEC_KEYS = ("version", "effective", "name", "currency", "tz_offset_s",
              "price", "prices", "tou", "tiers", "cycle", "note")
_TOU_KEYS = ("days", "seasons", "weekend_days", "holidays")


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
