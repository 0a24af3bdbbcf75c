"""Bulk import on the dashboard: upload a CSV or XLSX sheet, read the dry
run (what would change, every row's error), then import it."""
from typing import Annotated, Optional

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from ...api.deps import SessionDep, require_web
from ...api.routes.common import wake_outbox
from ...core import permissions as P
from ...services import imports
from ...services.actor import Actor
from ..render import page
from .common import attempt, chosen_property

router = APIRouter(prefix="/staff/import", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def import_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTIES_WRITE)],
                property_id: Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)] = None):
    props, prop = chosen_property(session, actor, property_id)
    return page(request, "staff/import.html", {"properties": props, "prop": prop, "report": None,
                                               "columns": imports.COLUMNS})


@router.post("", response_class=HTMLResponse)
async def upload(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTIES_WRITE)],
                 property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)], file: Annotated[UploadFile, File()],
                 apply: Annotated[str, Form(max_length=1)] = ""):
    props, prop = chosen_property(session, actor, property_id)
    data = await file.read(imports.MAX_BYTES + 1)
    report, error, status = attempt(session, lambda: imports.run(
        session, actor, prop.id, imports.read_rows(data, file.filename or ""), dry_run=apply != "1"))
    if report and report["applied"]:
        wake_outbox(request)
    return page(request, "staff/import.html", {"properties": props, "prop": prop, "report": report, "error": error,
                                               "filename": file.filename, "columns": imports.COLUMNS},
                status_code=status)


@router.get("/template.csv", response_class=Response)
def template(actor: Annotated[Actor, require_web(P.PROPERTIES_WRITE)]):
    return Response(imports.template_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="wattkeeper-import.csv"'})
