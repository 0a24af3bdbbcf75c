"""Top consumers: the units that used most energy in the range (daily rollups)."""
from sqlalchemy import func, select

from ...models import Building, Meter, Rollup, Unit
from .base import KWH, MONEY, Col, Report

MAX_LIMIT = 500


def report(session, f, limit=20):
    limit = max(1, min(int(limit), MAX_LIMIT))
    energy = func.sum(Rollup.energy_wh)
    q = (select(Building.name, Unit.name, Unit.floor_area_dm2, energy, func.sum(Rollup.cost_mu))
         .join(Meter, Meter.id == Rollup.meter_id).join(Unit, Unit.id == Meter.unit_id)
         .join(Building, Building.id == Unit.building_id)
         .where(Rollup.period == "d", Rollup.start >= f.start, Rollup.start < f.end,
                Building.property_id == f.property_id)
         .group_by(Building.name, Unit.id, Unit.name, Unit.floor_area_dm2)
         .order_by(energy.desc(), Building.name, Unit.name).limit(limit))
    if f.building_id is not None:
        q = q.where(Building.id == f.building_id)
    rows = []
    for i, (bname, uname, area, wh, mu) in enumerate(session.execute(q).all()):
        area = int(area or 0)
        rows.append({"rank": i + 1, "building": bname, "unit": uname, "energy_wh": int(wh or 0),
                     "cost_mu": int(mu or 0),
                     # Wh per m2 (floor area in dm2: 100 dm2 = 1 m2)
                     "wh_per_m2": int(wh or 0) * 100 // area if area else None})
    cols = [Col("rank", "Rank", "int"), Col("building", "Building"), Col("unit", "Unit"),
            Col("energy_wh", "Energy kWh", KWH, total=True), Col("cost_mu", "Cost", MONEY, total=True),
            Col("wh_per_m2", "kWh per m²", KWH)]
    chart = {"kind": "hbar", "unit": "kWh", "x": ["%s %s" % (r["building"], r["unit"]) for r in rows][::-1],
             "series": [{"name": "Energy", "data": [round(r["energy_wh"] / 1000, 3) for r in rows][::-1]}]}
    return Report("top", "Top consumers", f, cols, rows, chart)
