"""Reports for property managers (docs/reports.md): one module per report,
each `report(session, filters, ...) -> base.Report`, the filters checked by
base.filters (the actor's properties, P.REPORTS_READ). Exports: export.py.

    rep = reports.run(session, actor, "consumption", property_id=1, start="2026-12-01", end="2026-12-31",
                      period="d", group="unit")
"""
from . import balances, consumption, health, sales, top  # noqa: F401
from .base import Filters, Report, filters  # noqa: F401
from ..errors import NotFound

NAMES = ("consumption", "sales", "balances", "top", "health")
TITLES = {"consumption": "Consumption", "sales": "Sales", "balances": "Arrears and low balances",
          "top": "Top consumers", "health": "Concentrator and meter health"}
# the choices each report takes ("group"), the first is the default
GROUPS = {"consumption": consumption.GROUPS, "sales": sales.GROUPS}


def run(session, actor, name, property_id=None, building_id=None, start=None, end=None, period=None,
        group=None, limit=None, now=None, offline_after_s=900):
    import time
    if name not in NAMES:
        raise NotFound("no report %r" % name)
    now = int(now if now is not None else time.time())
    f = filters(session, actor, property_id, building_id, start, end, now=now)
    if name == "consumption":
        return consumption.report(session, f, period or "d", group or "unit")
    if name == "sales":
        return sales.report(session, f, group or "day")
    if name == "balances":
        return balances.report(session, f)
    if name == "top":
        return top.report(session, f, limit or 20)
    return health.report(session, f, now, offline_after_s)
