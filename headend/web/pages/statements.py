"""Monthly statements on the dashboard: a manager starts a property's run
and watches its progress (htmx polls the run's partial), staff download any
account's statement of their properties; tenants download their own and
try the TOU advice on the portal."""
import time
from typing import Annotated, Optional

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...api.deps import Id, OptId, SessionDep, require_web
from ...api.routes.common import pdf_response
from ...api.routes.statements import Lang, Month, Share, month_zip, run_in_background
from ...core import permissions as P
from ...core.paging import Paging
from ...models.statement import MONTH_PATTERN
from ...services import months, statements, tou_advice
from ...services.actor import Actor
from ...services.errors import DomainError
from .. import statement_doc
from ..render import language_of, page
from .common import chosen_property

router = APIRouter(include_in_schema=False)
MonthQ = Annotated[Optional[str], Query(pattern=MONTH_PATTERN, max_length=7)]


def _context(session, actor, prop, props, month, offset=0, run=None, error=None):
    listed = statements.list_statements(session, actor, prop.id, month, Paging(limit=100, offset=offset))
    return {"properties": props, "prop": prop, "month": month, "runs": statements.recent_runs(session, actor, prop.id),
            "page": listed, "params": {"property_id": prop.id, "month": month}, "run": run, "error": error,
            "can_run": actor.can(P.STATEMENTS_RUN, prop.id)}


@router.get("/staff/statements", response_class=HTMLResponse)
def statements_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)],
                    property_id: OptId = None, month: MonthQ = None,
                    offset: Annotated[int, Query(ge=0, le=10 ** 7)] = 0):
    props, prop = chosen_property(session, actor, property_id)
    month = month or months.previous(int(time.time()), prop.tz_offset_s)
    return page(request, "staff/statements.html", _context(session, actor, prop, props, month, offset))


@router.post("/staff/statements/runs", response_class=HTMLResponse)
def start_run(request: Request, background: BackgroundTasks, session: SessionDep,
              actor: Annotated[Actor, require_web(P.STATEMENTS_RUN)],
              property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)],
              month: Annotated[str, Form(max_length=7)]):
    props, prop = chosen_property(session, actor, property_id)
    try:
        run = statements.start_run(session, actor, prop.id, month)
        session.commit()
    except DomainError as e:
        session.rollback()
        shown = month if statements.MONTH_RE.match(month) else months.previous(int(time.time()),
                                                                                          prop.tz_offset_s)
        return page(request, "staff/statements.html", _context(session, actor, prop, props, shown, error=e.message),
                    status_code=e.status)
    run_id = run.id
    response = page(request, "staff/statements.html", _context(session, actor, prop, props, month, run=run),
                    status_code=202)
    session.rollback()          # hold no transaction (on SQLite: no write lock) while the run works
    background.add_task(run_in_background, request.app.state.session_factory, run_id)
    return response


@router.get("/staff/statements/runs/{run_id}", response_class=HTMLResponse)
def run_progress(run_id: Id, request: Request, session: SessionDep,
                 actor: Annotated[Actor, require_web(P.REPORTS_READ)]):
    """The run's progress: what the page's htmx polling swaps in (it stops when the run is over)."""
    return page(request, "partials/statement_run.html", {"run": statements.get_run(session, actor, run_id)})


@router.get("/staff/statements/{month}.zip", response_class=Response)
def staff_zip(month: Month, request: Request, session: SessionDep,
              actor: Annotated[Actor, require_web(P.REPORTS_READ)],
              property_id: Annotated[int, Query(ge=1, le=2 ** 31 - 1)], lang: Lang = None):
    """The month's issued statements of a property, every PDF in one ZIP."""
    return month_zip(session, actor, property_id, month, lang or language_of(request, actor.user))


@router.get("/staff/statements/{account_id}/{month}.pdf", response_class=Response)
def staff_pdf(account_id: Id, month: Month, request: Request, session: SessionDep,
              actor: Annotated[Actor, require_web(P.REPORTS_READ)], lang: Lang = None):
    doc = statements.staff_document(session, actor, account_id, month)
    return pdf_response(statement_doc.render_pdf(doc, lang or language_of(request, actor.user)),
                        statement_doc.filename(doc))


@router.get("/portal/statements/{month}.pdf", response_class=Response)
def portal_pdf(month: Month, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)],
               account_id: OptId = None, lang: Lang = None):
    """One of one's own issued statements (404 for anyone else's)."""
    doc = statements.tenant_document(session, actor, month, account_id)
    return pdf_response(statement_doc.render_pdf(doc, lang or language_of(request, actor.user)),
                        statement_doc.filename(doc))


@router.get("/portal/accounts/{account_id}/advice", response_class=HTMLResponse)
def portal_advice(account_id: Id, request: Request, session: SessionDep,
                  actor: Annotated[Actor, require_web(P.PORTAL)], share: Share = tou_advice.DEFAULT_SHARE_PCT):
    """The TOU advice of one's own account for a share (the portal's form swaps it in)."""
    return page(request, "tenant/advice.html", {"adv": tou_advice.advice(session, actor, account_id, share),
                                                "shares": tou_advice.SHARES_PCT, "account_id": account_id})
