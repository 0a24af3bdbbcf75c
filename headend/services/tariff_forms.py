"""Tariffs as a manager edits them: a form of prices typed as decimals
(flat, tiered 阶梯, time-of-use 尖峰平谷 with seasons) turned into a version
spec of concentrator.tariff; a month's cost preview for a consumption
profile; and the resale check of grid power (转供电): a tariff whose highest
price per kWh is above the official price plus the allowed mark-up is
flagged before it is saved."""
import calendar

from concentrator import tariff as T

from ..core.money import AmountError, day_bounds, format_money, parse_amount, parse_day, parse_kwh
from ..models import Property
from . import property_settings
from .errors import Invalid, NotFound

BANDS = T.BANDS
FLAT, TIERED, TOU = "flat", "tiered", "tou"
KINDS = (FLAT, TIERED, TOU)

# hourly weights of a day (0..23), for weekdays and weekends: what the preview bills
PROFILES = {
    "home": ("Home: mornings and evenings",
             [2, 2, 2, 2, 2, 3, 6, 8, 5, 3, 3, 3, 4, 3, 3, 3, 4, 7, 10, 12, 12, 10, 6, 3],
             [2, 2, 2, 2, 2, 2, 3, 5, 7, 7, 6, 6, 7, 6, 5, 5, 6, 8, 10, 12, 12, 10, 6, 3]),
    "shop": ("Shop: open 09:00-21:00",
             [1, 1, 1, 1, 1, 1, 1, 1, 3, 8, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 9, 3, 1, 1],
             [1, 1, 1, 1, 1, 1, 1, 1, 3, 9, 11, 11, 11, 11, 11, 11, 11, 11, 11, 10, 9, 3, 1, 1]),
    "office": ("Office: weekdays 08:00-18:00",
               [1, 1, 1, 1, 1, 1, 1, 3, 9, 10, 10, 10, 9, 10, 10, 10, 10, 9, 4, 2, 1, 1, 1, 1],
               [1] * 24),
    "even": ("The same every hour", [1] * 24, [1] * 24),
    "night": ("Mostly at night (charging, bakery)",
              [10, 10, 10, 10, 10, 8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 5, 8, 10],
              [10, 10, 10, 10, 10, 8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 5, 8, 10]),
}


def price(text, what):
    """A price typed per kWh ("0.5880", at most 4 decimals) -> mu per kWh."""
    try:
        return parse_amount(text, decimals=4, positive=False)
    except AmountError as e:
        raise Invalid("%s: %s" % (what, e))


def _kwh(text, what):
    try:
        return parse_kwh(text)
    except AmountError as e:
        raise Invalid("%s: %s" % (what, e))


def _timetable(rows, what):
    """[("HH:MM", band), ...] as typed -> the spec's list (the first at 00:00)."""
    out = []
    for k, (hm, band) in enumerate(rows):
        hm, band = (hm or "").strip(), (band or "").strip()
        if not hm and not band:
            continue
        if band not in BANDS:
            raise Invalid("%s, row %d: choose a band (%s)" % (what, k + 1, ", ".join(BANDS)))
        out.append([hm, band])
    if not out:
        raise Invalid("%s: give at least one period starting at 00:00" % what)
    return out


def spec_from_form(form, tz_offset_s, version=None, effective=0):
    """A version spec from what a manager typed (services.tariff_forms.TariffForm
    as a dict): kind, price or prices per band, tiers, timetables per season.
    Raises Invalid naming the field; the spec is checked by tariff.validate."""
    kind = form.get("kind")
    if kind not in KINDS:
        raise Invalid("kind: flat, tiered or tou")
    spec = {"version": version if version is not None else 1, "effective": effective, "tz_offset_s": tz_offset_s}
    if form.get("name"):
        spec["name"] = form["name"][:100]
    if kind == TOU:
        prices = {b: price(p, "price of %s" % b) for b, p in (form.get("prices") or {}).items() if (p or "").strip()}
        seasons = []
        for k, s in enumerate(form.get("seasons") or []):
            workday = _timetable(s.get("workday") or [], "season %d, weekdays" % (k + 1))
            weekend = _timetable(s["weekend"], "season %d, weekends" % (k + 1)) if any(
                (a or b) for a, b in s.get("weekend") or []) else None
            seasons.append((s.get("from") or "01-01", s.get("to") or "12-31", workday, weekend))
        if not seasons:
            raise Invalid("a time-of-use tariff needs a timetable")
        days, sea = {}, []
        for k, (frm, to, workday, weekend) in enumerate(seasons):
            days["s%d-workday" % k] = workday
            entry = {"from": frm, "to": to, "weekday": "s%d-workday" % k}
            if weekend:
                days["s%d-weekend" % k] = weekend
                entry["weekend"] = "s%d-weekend" % k
            sea.append(entry)
        used = {b for tt in days.values() for _h, b in tt}
        missing = sorted(used - set(prices))
        if missing:
            raise Invalid("give the price of %s (used in the timetable)" % ", ".join(missing))
        spec["prices"] = {b: prices[b] for b in BANDS if b in used}
        spec["tou"] = {"days": days, "seasons": sea}
    else:
        spec["price"] = price(form.get("price") or "", "price")
    tiers = [(t.get("from_kwh") or "", t.get("add") or "") for t in form.get("tiers") or []]
    tiers = [(a.strip(), b.strip()) for a, b in tiers if a.strip() or b.strip()]
    if kind == TIERED and not tiers:
        raise Invalid("a tiered tariff needs its tiers (from kWh, added price)")
    if tiers:
        spec["tiers"] = [{"from_wh": 0, "add": 0}] + [
            {"from_wh": _kwh(a, "tier %d from" % (k + 2)), "add": price(b, "tier %d price" % (k + 2))}
            for k, (a, b) in enumerate(tiers)]
    try:
        return T.validate(spec)
    except ValueError as e:
        raise Invalid(str(e))


def effective_of(day_text, tz_offset_s):
    """"2027-01-01" -> Unix s of that local midnight."""
    try:
        return day_bounds(parse_day(day_text), tz_offset_s)[0]
    except AmountError as e:
        raise Invalid(str(e))


# ------------------------------------------------------------------ resale limit
def highest_price(spec):
    """The most a kWh can cost under this version: its dearest band plus the
    highest tier surcharge (mu per kWh)."""
    top = max(spec["prices"].values()) if spec.get("tou") else spec.get("price", 0)
    return top + max([t["add"] for t in spec.get("tiers") or []] + [0])


def over_limit(session, property_id, spec):
    """None, or what a manager must see before saving a resale tariff that
    charges more than the official price plus the allowed mark-up."""
    st = property_settings.of(session, property_id)
    limit = property_settings.max_price_mu_per_kwh(st)
    top = highest_price(spec)
    if limit is None or top <= limit:
        return None
    return {"highest_mu_per_kwh": top, "limit_mu_per_kwh": limit,
            "grid_price_mu_per_kwh": st.grid_price_mu_per_kwh, "max_markup_bp": st.max_markup_bp}


# ------------------------------------------------------------------ preview
def preview(versions, profile, monthly_kwh_wh, year, month, tz_offset_s):
    """Bill `monthly_kwh_wh` Wh spread over the local month by a profile's
    hourly weights, hour by hour, through concentrator.tariff (tiers and
    versions included). -> {"total_mu", "wh", "bands": {band: {"wh", "mu"}},
    "avg_mu_per_kwh"}."""
    if profile not in PROFILES:
        raise Invalid("profile: one of %s" % ", ".join(PROFILES))
    _label, workday, weekend = PROFILES[profile]
    ndays = calendar.monthrange(year, month)[1]
    start = calendar.timegm((year, month, 1, 0, 0, 0)) - tz_offset_s
    day0 = T.days_from_civil(year, month, 1)
    weights = []
    for d in range(ndays):
        w = weekend if T.weekday(day0 + d) >= 5 else workday
        weights += w
    total_w = sum(weights)
    state, bands, total, cum_w, billed = T.new_state(), {}, 0, 0, 0
    for h, w in enumerate(weights):
        cum_w += w
        target = monthly_kwh_wh * cum_w // total_w
        wh, billed = target - billed, target
        if not wh:
            continue
        t = start + h * 3600 + 1800
        band = T.band_at(versions, t)
        mu = T.charge(versions, state, band, wh, t)
        b = bands.setdefault(band, {"wh": 0, "mu": 0})
        b["wh"] += wh
        b["mu"] += mu
        total += mu
    return {"total_mu": total, "wh": monthly_kwh_wh, "bands": bands,
            "avg_mu_per_kwh": total * 1000 // monthly_kwh_wh if monthly_kwh_wh else 0}


def preview_for(session, actor, property_id, tariff_id, spec, profile, monthly_kwh, month):
    """The preview of a saved tariff (every version) or of a version spec
    not saved yet, with the resale check. -> dict (api Preview)."""
    from . import billing, tariffs      # they use this module
    p = session.get(Property, property_id)
    if p is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    if tariff_id is not None:
        row = tariffs.get_tariff(session, actor, tariff_id)
        versions = tariffs.versions_for_tariff(session, row.id)
    else:
        try:
            versions = [billing.normalize_spec(spec, 1, 0, p.tz_offset_s)]
        except ValueError as e:
            raise Invalid(str(e))
    year, mon = (int(x) for x in month.split("-"))
    r = preview(versions, profile, _kwh(monthly_kwh, "monthly kWh"), year, mon, p.tz_offset_s)
    r["total"] = format_money(r["total_mu"])
    r["over_resale_limit"] = over_limit(session, property_id, T.spec_at(versions, calendar.timegm((year, mon, 1, 0, 0, 0))))
    return r
