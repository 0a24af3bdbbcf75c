"""The audit log, with filters, and as CSV."""
import csv
import io
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from ...core import permissions as P
from ...models import AuditLog, AuditLogPublic
from ...services import audit
from ...services.actor import Actor
from ...core.paging import paginate, search
from ..deps import OptId, PagingDep, SessionDep, paged, require

router = APIRouter(prefix="/api/audit", tags=["audit"])
T = Annotated[Optional[int], Query(ge=0, le=2 ** 40)]
Action = Annotated[Optional[str], Query(max_length=64)]

CSV_COLUMNS = ("id", "ts", "username", "user_id", "actor_kind", "ip", "action", "object_type", "object_id",
               "property_id", "before", "after", "detail")


@router.get("", response_model=list[AuditLogPublic])
def list_audit(request: Request, response: Response, session: SessionDep,
               actor: Annotated[Actor, require(P.AUDIT_READ)], paging: PagingDep, action: Action = None,
               user_id: OptId = None, property_id: OptId = None, since: T = None, until: T = None):
    """Newest first, one page at a time (not counted: the Link header has the next page).
    `action` matches a prefix (`login`, `money.`, `relay.`, `tariff.`, `key.`, `user.`,
    `policy.`); `q` searches user name and detail."""
    q = search(audit.query(actor, action, user_id, property_id, since, until), paging.q,
               AuditLog.username, AuditLog.detail)
    return paged(request, response, paginate(session, q, paging, count=False))


@router.get(".csv", response_class=StreamingResponse)
def export_audit(session: SessionDep, actor: Annotated[Actor, require(P.AUDIT_READ)], action: Action = None,
                 user_id: OptId = None, property_id: OptId = None, since: T = None, until: T = None):
    """The same rows as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    return audit_csv_response(session, audit.query(actor, action, user_id, property_id, since, until))


def audit_csv_response(session, q):
    import json

    def rows():
        buf = io.StringIO()
        w = csv.writer(buf)
        buf.write("\ufeff")
        w.writerow(CSV_COLUMNS)
        yield buf.getvalue()
        for r in session.exec(q.execution_options(yield_per=500)):
            buf.seek(0)
            buf.truncate()
            w.writerow([r.id, r.ts, r.username, r.user_id, r.actor_kind, r.ip, r.action, r.object_type,
                        r.object_id, r.property_id, json.dumps(r.before, ensure_ascii=False) if r.before else "",
                        json.dumps(r.after, ensure_ascii=False) if r.after else "", r.detail])
            yield buf.getvalue()
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
