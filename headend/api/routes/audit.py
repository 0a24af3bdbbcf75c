"""The audit log, with filters, and as CSV."""
import csv
import io
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ...core import permissions as P
from ...models import AuditLogPublic
from ...models.base import MAX_ID
from ...services import audit
from ...services.actor import Actor
from ..deps import Limit, Offset, SessionDep, require

router = APIRouter(prefix="/api/audit", tags=["audit"])
T = Annotated[Optional[int], Query(ge=0, le=2 ** 40)]
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]
Action = Annotated[Optional[str], Query(max_length=64)]

CSV_COLUMNS = ("id", "ts", "username", "user_id", "actor_kind", "ip", "action", "object_type", "object_id",
               "property_id", "before", "after", "detail")


@router.get("", response_model=list[AuditLogPublic])
def list_audit(session: SessionDep, actor: Annotated[Actor, require(P.AUDIT_READ)], action: Action = None,
               user_id: OptId = None, property_id: OptId = None, since: T = None, until: T = None,
               limit: Limit = 200, offset: Offset = 0):
    """Newest first. `action` matches a prefix (`login`, `money.`, `relay.`, `tariff.`,
    `key.`, `user.`, `policy.`)."""
    q = audit.query(actor, action, user_id, property_id, since, until)
    return session.exec(q.offset(offset).limit(limit)).all()


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
