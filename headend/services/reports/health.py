"""Concentrator and meter health: per meter its board, when it was last
seen (last reading), whether it is online, the board's RS485 bus error
counters (as the board's last status message reported them, kept per meter
in the database), the intervals the board could not read it in
the range (FLAG_MISSING readings) and how long it has been offline."""
from sqlalchemy import func, select

from concentrator import protocol

from ...models import Concentrator, Meter, Reading, Unit
from .base import INT, TIME, Col, Report


def bus_errors_of(session, meter_ids):
    """meter pk -> total RS485 errors of the board's last status (the
    per-meter counters in the database: services/meters.bus_errors_of)."""
    from ..meters import bus_errors_of as counters
    return {mid: sum(int(e[k] or 0) for k in ("timeouts", "crc", "wrong_address", "exceptions"))
            for mid, e in counters(session, meter_ids).items()}


def report(session, f, now, offline_after_s):
    q = (select(Meter.id, Meter.meter_id, Concentrator.dev, Concentrator.last_seen, Concentrator.online,
                Meter.last_ts, Meter.online, Unit.name, Unit.building_id)
         .join(Concentrator, Concentrator.id == Meter.concentrator_id).outerjoin(Unit, Unit.id == Meter.unit_id)
         .where(Concentrator.property_id == f.property_id).order_by(Concentrator.dev, Meter.index))
    if f.building_id is not None:
        q = q.where(Unit.building_id == f.building_id)
    meters = session.execute(q).all()
    errs = bus_errors_of(session, [m[0] for m in meters])
    missing = {}
    if meters:
        missing = dict(session.execute(
            select(Reading.meter_id, func.count()).where(
                Reading.meter_id.in_([m[0] for m in meters]), Reading.ts >= f.start, Reading.ts < f.end,
                Reading.flags.op("&")(protocol.FLAG_MISSING) != 0).group_by(Reading.meter_id)).all())
    rows = []
    for mid, meter, dev, seen, conc_online, last_ts, m_online, unit, _b in meters:
        board_up = bool(conc_online) and seen is not None and now - seen <= offline_after_s
        up = board_up and m_online is not False and last_ts is not None and now - last_ts <= offline_after_s
        rows.append({"concentrator": dev, "meter": meter, "unit": unit or "", "board_seen": seen,
                     "last_reading": last_ts, "state": "online" if up else "offline",
                     "bus_errors": errs.get(mid, 0), "missing": int(missing.get(mid, 0)),
                     "offline_s": 0 if up else (now - last_ts if last_ts else None)})
    cols = [Col("concentrator", "Concentrator"), Col("meter", "Meter"), Col("unit", "Unit"),
            Col("board_seen", "Board last seen", TIME), Col("last_reading", "Last reading", TIME),
            Col("state", "State"), Col("bus_errors", "Bus errors", INT, True),
            Col("missing", "Missed readings", INT, True), Col("offline_s", "Offline for (h)", "hours")]
    off = sum(1 for r in rows if r["state"] == "offline")
    chart = {"kind": "bar", "unit": "", "x": ["Online", "Offline"],
             "series": [{"name": "Meters", "data": [len(rows) - off, off]}]}
    return Report("health", "Concentrator and meter health", f, cols, rows, chart)
