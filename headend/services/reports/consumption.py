"""Consumption by day or month per unit, building or bucket, from the
interval rollups (services/rollups): energy by tariff band and its cost.

period "d": the daily rollups of the days in the range; "m": the monthly
rollups of the months that start in it (give whole months)."""
from sqlalchemy import func, select

from ...models import Building, Meter, Rollup, Unit
from ..errors import Invalid
from ..rollups import BANDS
from .base import DATE, INT, KWH, MONEY, MONTH, TEXT, Col, Report, local_day

GROUPS = ("unit", "building", "day")
BAND_TITLES = {"sharp": "Sharp", "peak": "Peak", "flat": "Flat", "valley": "Valley", "deep_valley": "Deep valley",
               "": "Other"}


def _query(f, period):
    q = (select(Unit.id, Unit.name, Building.id, Building.name, Rollup.start, Rollup.band,
                func.sum(Rollup.energy_wh), func.sum(Rollup.cost_mu), func.sum(Rollup.readings))
         .join(Meter, Meter.id == Rollup.meter_id).join(Unit, Unit.id == Meter.unit_id)
         .join(Building, Building.id == Unit.building_id)
         .where(Rollup.period == period, Rollup.start >= f.start, Rollup.start < f.end,
                Building.property_id == f.property_id)
         .group_by(Unit.id, Unit.name, Building.id, Building.name, Rollup.start, Rollup.band))
    if f.building_id is not None:
        q = q.where(Building.id == f.building_id)
    return q


def report(session, f, period="d", group="unit"):
    if period not in ("d", "m"):
        raise Invalid("period: d (days) or m (months)")
    if group not in GROUPS:
        raise Invalid("group: one of %s" % ", ".join(GROUPS))
    raw = session.execute(_query(f, period)).all()
    bands = [b for b in BANDS + ("",) if any(r[5] == b and r[6] for r in raw)]
    rows, buckets = {}, {}
    for uid, uname, bid, bname, start, band, wh, mu, n in raw:
        wh, mu, n = int(wh or 0), int(mu or 0), int(n or 0)
        key = {"unit": (bname, uname, uid), "building": (bname, bid), "day": (start,)}[group]
        r = rows.get(key)
        if r is None:
            r = rows[key] = {"energy_wh": 0, "cost_mu": 0, "readings": 0}
            r.update({"b_" + b: 0 for b in bands})
            if group == "unit":
                r.update(building=bname, unit=uname, unit_id=uid)
            elif group == "building":
                r.update(building=bname, building_id=bid)
            else:
                r["day"] = local_day(start, f.tz)
        r["energy_wh"] += wh
        r["cost_mu"] += mu
        r["readings"] += n
        if band in bands:
            r["b_" + band] += wh
        bk = buckets.setdefault(start, dict.fromkeys(bands, 0))
        if band in bk:
            bk[band] += wh
    ordered = [rows[k] for k in sorted(rows)]
    first = {"unit": [Col("building", "Building"), Col("unit", "Unit")], "building": [Col("building", "Building")],
             "day": [Col("day", "Day" if period == "d" else "Month", DATE if period == "d" else MONTH)]}[group]
    cols = first + [Col("b_" + b, BAND_TITLES[b] + " kWh", KWH, total=True) for b in bands] + [
        Col("energy_wh", "Energy kWh", KWH, total=True), Col("cost_mu", "Cost", MONEY, total=True),
        Col("readings", "Readings", INT, total=True)]
    xs = sorted(buckets)
    chart = {"kind": "bar", "unit": "kWh",
             "x": [(local_day(s, f.tz).isoformat() if period == "d" else local_day(s, f.tz).isoformat()[:7])
                   for s in xs],
             "series": [{"name": BAND_TITLES[b], "stack": True, "band": b or "other",
                         "data": [round(buckets[s][b] / 1000, 3) for s in xs]} for b in bands]}
    title = "Consumption by %s" % ({"d": "day", "m": "month"}[period])
    return Report("consumption", title, f, cols, ordered, chart)


def meters_of(session, f):
    """The meter ids the report covers (for checks against the readings)."""
    q = select(Meter.id).join(Unit, Unit.id == Meter.unit_id).join(Building, Building.id == Unit.building_id) \
        .where(Building.property_id == f.property_id)
    if f.building_id is not None:
        q = q.where(Building.id == f.building_id)
    return [int(x) for x in session.execute(q).scalars()]
