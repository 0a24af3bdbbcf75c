"""Reports for property managers (docs/reports.md): one module per report,
each `report(session, filters, ...) -> base.Report`, the filters checked by
base.filters (the actor's properties, P.REPORTS_READ). Exports: export.py."""
from . import balances, consumption, health, sales, top  # noqa: F401
from .base import Filters, Report, filters  # noqa: F401

NAMES = ("consumption", "sales", "balances", "top", "health")
