"""Reports on the dashboard (docs/reports.md): each report a page with its
filters (property, building, dates, grouping), an ECharts chart and its
table, and its CSV and XLSX downloads (P.REPORTS_READ: managers, viewers,
admins). Downloads stream: the CSV row by row, the XLSX from a temporary
file with its Content-Length; the page shows the row count next to the
download links and the browser shows the download's progress."""
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...api.deps import SessionDep, require_web
from ...api.routes.reports import Params, csv_response, run, xlsx_response
from ...core import money
from ...core import permissions as P
from ...services import reports
from ...services.actor import Actor
from ...services.reports import base, export
from ..i18n import N_, gettext
from ..render import page
from .common import chosen_property

router = APIRouter(prefix="/staff/reports", include_in_schema=False)

# texts of the reports (services/reports), for the translation
TEXTS = (N_("Consumption"), N_("Sales"), N_("Arrears and low balances"), N_("Top consumers"),
         N_("Concentrator and meter health"), N_("Consumption by day"), N_("Consumption by month"),
         N_("Sales by day"), N_("Sales by cashier"), N_("Sales by payment method"),
         N_("Building"), N_("Unit"), N_("Day"), N_("Month"), N_("Sharp kWh"), N_("Peak kWh"), N_("Flat kWh"),
         N_("Valley kWh"), N_("Deep valley kWh"), N_("Other kWh"), N_("Energy kWh"), N_("Cost"), N_("Readings"),
         N_("Rank"), N_("kWh per m²"), N_("Energy"), N_("Cashier"), N_("Payment method"), N_("Sales"),
         N_("Reversals"), N_("Refunds"), N_("Net"), N_("Adjustments"), N_("Receipts"), N_("Account"),
         N_("Units"), N_("State"), N_("Balance"), N_("Low-balance threshold"), N_("Arrears"), N_("Accounts"),
         N_("Low balance"), N_("Concentrator"), N_("Meter"), N_("Board last seen"), N_("Last reading"),
         N_("Bus errors"), N_("Missed readings"), N_("Offline for (h)"), N_("Meters"), N_("Online"),
         N_("Offline"), N_("online"), N_("offline"), N_("arrears"), N_("low"), N_("Sharp"), N_("Peak"),
         N_("Flat"), N_("Valley"), N_("Deep valley"), N_("Other"), N_("Total"), N_("cash"), N_("WeChat Pay"),
         N_("Alipay"), N_("bank card"), N_("transfer"), N_("no payment"))
GROUP_TEXT = {"unit": N_("per unit"), "building": N_("per building"), "day": N_("per day or month"),
              "cashier": N_("per cashier"), "method": N_("per payment method")}

def _query(rep, p, **extra):
    from urllib.parse import urlencode
    d = dict(rep.filters.as_dict(), **{k: v for k, v in p.as_dict().items() if k in ("period", "group", "limit")})
    d.update(extra)
    return urlencode({k: v for k, v in d.items() if v is not None})


@router.get("", response_class=HTMLResponse)
def index(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)]):
    props, prop = chosen_property(session, actor)
    return page(request, "staff/reports.html", {"names": reports.NAMES, "titles": reports.TITLES, "prop": prop,
                                                "properties": props})


def _add(name):
    def show(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)],
             p: Annotated[Params, Depends()]):
        rep = run(request, session, actor, name, p)
        props, _prop = chosen_property(session, actor, rep.filters.property_id)
        return page(request, "staff/report.html", {
            "rep": rep, "names": reports.NAMES, "titles": reports.TITLES, "properties": props,
            "buildings": base.buildings_of(session, rep.filters.property_id), "params": p,
            "groups": reports.GROUPS.get(name, ()), "group_text": GROUP_TEXT,
            "query": _query(rep, p), "rows": export.row_count(rep),
            "chart": translated(rep.chart), "cells": [[shown(c.kind, r.get(c.key), rep.filters.tz) for c in rep.columns]
                                                      for r in rep.rows],
            "total_cells": None if rep.totals is None else [
                shown(c.kind, rep.totals.get(c.key), rep.filters.tz) if c.total else None for c in rep.columns]})

    def as_csv(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)],
               p: Annotated[Params, Depends()]):
        rep = run(request, session, actor, name, p)
        page_lang(request, actor)
        return csv_response(rep, gettext)

    def as_xlsx(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)],
                p: Annotated[Params, Depends()]):
        rep = run(request, session, actor, name, p)
        page_lang(request, actor)
        return xlsx_response(rep, gettext)

    router.add_api_route("/%s" % name, show, methods=["GET"], response_class=HTMLResponse, name="report-" + name)
    router.add_api_route("/%s.csv" % name, as_csv, methods=["GET"], name="report-%s-csv" % name)
    router.add_api_route("/%s.xlsx" % name, as_xlsx, methods=["GET"], name="report-%s-xlsx" % name)


def shown(kind, v, tz):
    """A cell as people read it on the page (core.money spellings)."""
    if v is None:
        return "—"
    if kind == base.KWH:
        return money.format_kwh(v)
    if kind == base.MONEY:
        return money.format_money(v)
    if kind == base.TIME:
        return money.format_local(v, tz)
    if kind == base.INT:
        return "{:,}".format(v)
    if kind == base.MONTH:
        return v.isoformat()[:7]
    if kind == "hours":
        return "%.1f" % (v / 3600)
    if kind == base.TEXT and isinstance(v, str):
        return gettext(v) if v in STATE_TEXTS else v
    return str(v)


STATE_TEXTS = {"online", "offline", "arrears", "low", "cash", "WeChat Pay", "Alipay", "bank card", "transfer",
               "no payment"}


def translated(chart):
    """The chart with its series names and category labels in the page's language."""
    if not chart:
        return chart
    out = dict(chart)
    out["series"] = [dict(s, name=gettext(s["name"])) for s in chart["series"]]
    if chart["kind"] != "bar" or not chart["x"] or not chart["x"][0][:1].isdigit():
        out["x"] = [gettext(x) if x in STATE_TEXTS or x in ("Arrears", "Low balance", "Online", "Offline") else x
                    for x in chart["x"]]
    out["unit_text"] = {"kWh": "kWh", "money": gettext("Amount"), "": gettext("Count")}[chart.get("unit", "")]
    return out


def page_lang(request, actor):
    """Downloads in the language of the person's pages."""
    from .. import i18n
    from ..render import language_of
    i18n.set_language(language_of(request, actor.user))


for _name in reports.NAMES:
    _add(_name)
