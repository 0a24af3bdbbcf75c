"""Reports (docs/reports.md) as JSON, CSV and XLSX: consumption, sales,
arrears and low balances, top consumers, concentrator and meter health.
Filters: property_id (default: the first the caller sees), building_id,
start and end (local dates, inclusive; default: this month to today),
period (d, m), group, limit. Values are integers: Wh, mu, Unix s."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ...core import permissions as P
from ...services import reports
from ...services.actor import Actor
from ...services.reports import export
from ..deps import SessionDep, require

router = APIRouter(prefix="/api/reports", tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Day = Annotated[Optional[str], Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="local date YYYY-MM-DD")]
OptId = Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)]


class Params:
    def __init__(self, property_id: OptId = None, building_id: OptId = None, start: Day = None, end: Day = None,
                 period: Annotated[Optional[str], Query(pattern="^(d|m)$", description="consumption: days or months")] = None,
                 group: Annotated[Optional[str], Query(pattern="^(unit|building|day|cashier|method)$",
                                                       description="rows per ... (consumption, sales)")] = None,
                 limit: Annotated[Optional[int], Query(ge=1, le=500, description="top consumers: how many")] = None):
        self.property_id, self.building_id, self.start, self.end = property_id, building_id, start, end
        self.period, self.group, self.limit = period, group, limit

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if v is not None}


def run(request, session, actor, name, p):
    st = request.app.state
    group = p.group if p.group in reports.GROUPS.get(name, ()) else None
    return reports.run(session, actor, name, p.property_id, p.building_id, p.start, p.end, p.period, group,
                       p.limit, offline_after_s=st.settings.offline_after_s)


def filename(rep, ext):
    f = rep.filters
    return "%s-%d-%s-%s.%s" % (rep.name, f.property_id, f.start_day.isoformat(), f.end_day.isoformat(), ext)


def csv_response(rep, gettext=lambda s: s):
    return StreamingResponse(export.csv_chunks(rep, gettext), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="%s"' % filename(rep, "csv"),
        "X-Row-Count": str(export.row_count(rep))})


def xlsx_response(rep, gettext=lambda s: s):
    f, size = export.xlsx_file(rep, gettext)
    return StreamingResponse(export.iter_file(f), media_type=XLSX, headers={
        "Content-Disposition": 'attachment; filename="%s"' % filename(rep, "xlsx"),
        "Content-Length": str(size), "X-Row-Count": str(export.row_count(rep))})


class ColumnOut(BaseModel):
    key: str
    title: str
    kind: str


class ReportOut(BaseModel):
    report: str
    title: str
    filters: dict[str, Any]
    columns: list[ColumnOut]
    rows: list[dict[str, Any]]
    totals: Optional[dict[str, int]]
    chart: Optional[dict[str, Any]]


def _add(name):
    def as_json(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.REPORTS_READ)],
                p: Annotated[Params, Depends()]):
        return run(request, session, actor, name, p).as_dict()

    def as_csv(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.REPORTS_READ)],
               p: Annotated[Params, Depends()]):
        return csv_response(run(request, session, actor, name, p))

    def as_xlsx(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.REPORTS_READ)],
                p: Annotated[Params, Depends()]):
        return xlsx_response(run(request, session, actor, name, p))

    title = reports.TITLES[name]
    router.add_api_route("/%s" % name, as_json, methods=["GET"], response_model=ReportOut,
                         summary=title, name="report_" + name)
    router.add_api_route("/%s.csv" % name, as_csv, methods=["GET"], summary=title + " (CSV)",
                         response_class=StreamingResponse, name="report_%s_csv" % name,
                         responses={200: {"content": {"text/csv": {}}}})
    router.add_api_route("/%s.xlsx" % name, as_xlsx, methods=["GET"], summary=title + " (XLSX)",
                         response_class=StreamingResponse, name="report_%s_xlsx" % name,
                         responses={200: {"content": {XLSX: {}}}})


for _name in reports.NAMES:
    _add(_name)
