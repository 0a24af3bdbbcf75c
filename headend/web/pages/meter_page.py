"""A meter's page: its load curve (kW as reported, and the average kW from
its register) over the last days, as an ECharts line chart, with its latest
readings. The theft and bypass alerts link here (services/theft.METER_LINK)."""
import time
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...api.deps import Id, SessionDep, require_web
from ...core import permissions as P
from ...core.money import format_local
from ...models import Concentrator, Meter, Property
from ...services import load_curves
from ...services.actor import Actor
from ...services.errors import NotFound
from ..i18n import gettext
from ..render import page

router = APIRouter(prefix="/staff/meters", include_in_schema=False)
DAY = 86400


@router.get("/{meter_pk}", response_class=HTMLResponse)
def meter_page(meter_pk: Id, request: Request, session: SessionDep,
               actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
               days: Annotated[int, Query(ge=1, le=load_curves.MAX_WINDOW_S // DAY)] = 2,
               end: Annotated[Optional[int], Query(ge=DAY, le=2 ** 32, description="Unix s; default: the latest reading")] = None):
    m = session.get(Meter, meter_pk)
    conc = session.get(Concentrator, m.concentrator_id) if m is not None else None
    if conc is None or not actor.sees(conc.property_id):
        raise NotFound("no meter %s" % meter_pk)
    if end is None:     # the window ends at the meter's latest reading (a board's clock, not the server's)
        end = (m.last_ts or int(time.time())) + 1
    cur = load_curves.curve(session, actor, meter_pk, end - days * DAY, end)
    tz = session.get(Property, conc.property_id).tz_offset_s
    x = [format_local(ts, tz, seconds=False) for ts, _w, _a in cur["points"]]
    chart = {"kind": "line", "x": x, "unit_text": "kW", "series": [
        {"name": gettext("Reported kW"), "data": [w / 1000 for _t, w, _a in cur["points"]]},
        {"name": gettext("Average kW"), "data": [None if a is None else a / 1000 for _t, _w, a in cur["points"]]}]}
    latest = [(format_local(ts, tz), w, a) for ts, w, a in reversed(cur["points"][-12:])]
    return page(request, "staff/meter.html", {"meter": m, "conc": conc, "days": days, "chart": chart,
                                              "latest": latest, "truncated": cur["truncated"]})
