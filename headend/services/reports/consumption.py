"""Consumption by day or month per unit, building or bucket, from the
interval rollups (services/rollups): energy by tariff band and its cost.

period "d": the daily rollups of the days in the range; "m": the monthly
rollups of the months that start in it (give whole months)."""
from sqlalchemy import func, select

from ...models import Building, Meter, Rollup, Unit
from ..errors import Invalid
from ..rollups import BANDS
from .base import DATE, INT, KWH, MONEY, MONTH, Col, Report, local_day

GROUPS = ("unit", "building", "day")
BAND_TITLES = {"sharp": "Sharp", "peak": "Peak", "flat": "Flat", "valley": "Valley", "deep_valley": "Deep valley",
               "": "Other"}


def _where(q, f, period):
    q = (q.join(Meter, Meter.id == Rollup.meter_id).join(Unit, Unit.id == Meter.unit_id)
         .join(Building, Building.id == Unit.building_id)
         .where(Rollup.period == period, Rollup.start >= f.start, Rollup.start < f.end,
                Building.property_id == f.property_id))
    return q if f.building_id is None else q.where(Building.id == f.building_id)


SUMS = (func.sum(Rollup.energy_wh), func.sum(Rollup.cost_mu), func.sum(Rollup.readings))


def report(session, f, period="d", group="unit"):
    """Two aggregations in the database: the rows (per unit, building or
    bucket, by band) and the chart (per bucket, by band)."""
    if period not in ("d", "m"):
        raise Invalid("period: d (days) or m (months)")
    if group not in GROUPS:
        raise Invalid("group: one of %s" % ", ".join(GROUPS))
    keys = {"unit": (Building.name, Unit.name, Unit.id), "building": (Building.name, Building.id),
            "day": (Rollup.start,)}[group]
    raw = session.execute(_where(select(*keys, Rollup.band, *SUMS), f, period).group_by(*keys, Rollup.band)).all()
    per_bucket = raw if group == "day" else session.execute(
        _where(select(Rollup.start, Rollup.band, *SUMS), f, period).group_by(Rollup.start, Rollup.band)).all()
    bands = [b for b in BANDS + ("",) if any(r[-4] == b and r[-3] for r in per_bucket)]
    n = len(keys)
    rows = {}
    for r in raw:
        key, band = tuple(r[:n]), r[n]
        wh, mu, cnt = (int(x or 0) for x in r[n + 1:])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {"energy_wh": 0, "cost_mu": 0, "readings": 0}
            row.update({"b_" + b: 0 for b in bands})
            if group == "unit":
                row.update(building=key[0], unit=key[1], unit_id=key[2])
            elif group == "building":
                row.update(building=key[0], building_id=key[1])
            else:
                row["day"] = local_day(key[0], f.tz)
        row["energy_wh"] += wh
        row["cost_mu"] += mu
        row["readings"] += cnt
        if band in bands:
            row["b_" + band] += wh
    buckets = {}
    for start, band, wh, _mu, _n in per_bucket:
        bk = buckets.setdefault(start, dict.fromkeys(bands, 0))
        if band in bk:
            bk[band] += int(wh or 0)
    ordered = [rows[k] for k in sorted(rows)]
    first = {"unit": [Col("building", "Building"), Col("unit", "Unit")], "building": [Col("building", "Building")],
             "day": [Col("day", "Day" if period == "d" else "Month", DATE if period == "d" else MONTH)]}[group]
    cols = first + [Col("b_" + b, BAND_TITLES[b] + " kWh", KWH, total=True) for b in bands] + [
        Col("energy_wh", "Energy kWh", KWH, total=True), Col("cost_mu", "Cost", MONEY, total=True),
        Col("readings", "Readings", INT, total=True)]
    xs = sorted(buckets)
    chart = {"kind": "bar", "unit": "kWh",
             "x": [local_day(s, f.tz).isoformat()[:10 if period == "d" else 7] for s in xs],
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
