"""Load curves per meter, from the readings (models/reading.py): what the
readings hold is the register (Wh) and the instantaneous power (W) at each
reading, so a curve gives per reading the power the meter reported (kW)
and the average power since the previous reading (kW, from the register
rise). Voltage, current and power factor are not in the readings the
boards send (docs/protocol.md "rd"): the curve has no such series.

    curve(session, actor, meter_pk, start, end) -> {"meter_id", "points": [(ts, power_w, avg_w)]}
"""
from sqlmodel import select

from concentrator import protocol

from ..core import permissions as P
from ..models import Concentrator, Meter, Reading
from .errors import Invalid, NotFound

MAX_WINDOW_S = 35 * 86400
MAX_POINTS = 5000


def curve(session, actor, meter_pk, start, end):
    if end <= start or end - start > MAX_WINDOW_S:
        raise Invalid("a window of at most %d days" % (MAX_WINDOW_S // 86400))
    m = session.get(Meter, meter_pk)
    conc = session.get(Concentrator, m.concentrator_id) if m is not None else None
    if conc is None or not actor.sees(conc.property_id):
        raise NotFound("no meter %s" % meter_pk)
    actor.check(P.PROPERTY_READ, conc.property_id)
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    prev = session.exec(select(Reading.ts, Reading.energy_wh).where(
        Reading.meter_id == meter_pk, Reading.ts > 0, Reading.ts < start, present)
        .order_by(Reading.ts.desc(), Reading.seq.desc()).limit(1)).first()
    rows = session.exec(select(Reading.ts, Reading.energy_wh, Reading.power_w).where(
        Reading.meter_id == meter_pk, Reading.ts >= start, Reading.ts < end, present)
        .order_by(Reading.ts, Reading.seq).limit(MAX_POINTS)).all()
    points = []
    for ts, wh, w in rows:
        avg = None
        if prev is not None and ts > prev[0] and wh >= prev[1]:
            avg = (wh - prev[1]) * 3600 // (ts - prev[0])
        points.append((int(ts), int(w), avg))
        prev = (ts, wh)
    return {"meter_id": m.meter_id, "points": points, "truncated": len(rows) == MAX_POINTS}
