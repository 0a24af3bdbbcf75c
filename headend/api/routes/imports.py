"""Bulk import of buildings, units, tenants and meters (CSV or XLSX)."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ...core import permissions as P
from ...models.base import MAX_ID
from ...services import imports
from ...services.actor import Actor
from ..deps import SessionDep, require
from .common import wake_outbox

router = APIRouter(prefix="/api/import", tags=["import"])


class RowReport(BaseModel):
    line: int
    unit: str
    changes: list[str]
    error: Optional[str]


class ImportReport(BaseModel):
    dry_run: bool
    applied: bool
    rows: list[RowReport]
    errors: int
    changes: int


@router.post("", response_model=ImportReport)
async def import_sheet(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTIES_WRITE)],
                       property_id: Annotated[int, Query(ge=1, le=MAX_ID)], dry_run: bool = True,
                       filename: Annotated[str, Query(max_length=200)] = ""):
    """The request body is the file itself (CSV or XLSX; columns in
    GET /api/import/template.csv). `dry_run` (the default) reports what
    would change and every row's error and changes nothing; `dry_run=false`
    imports everything, or nothing when any row has an error."""
    data = await request.body()
    report = imports.run(session, actor, property_id, imports.read_rows(data, filename), dry_run=dry_run)
    if report["applied"]:
        session.commit()
        wake_outbox(request)
    return report


@router.get("/template.csv", response_class=Response)
def template(actor: Annotated[Actor, require(P.PROPERTIES_WRITE)]):
    """An example sheet with every column."""
    return Response(imports.template_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="wattkeeper-import.csv"'})
