"""Monthly statements (账单): start a property's run and follow its
progress, read or download any account's statement (staff of its
property), download one's own (tenants), TOU advice."""
import logging
from typing import Annotated, Any, Optional

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from ...core import permissions as P
from ...core.money import format_money
from ...models.statement import MONTH_PATTERN, StatementRunIn, StatementRunPublic
from ...services import statements, tou_advice
from ...services.actor import Actor
from ..deps import Id, OptId, SessionDep, require
from .common import pdf_response

router = APIRouter(tags=["statements"])
log = logging.getLogger("headend.statements")
Month = Annotated[str, Path(pattern=MONTH_PATTERN, max_length=7, description='"2026-11"')]
Lang = Annotated[Optional[str], Query(pattern="^(zh-CN|en)$")]
Share = Annotated[int, Query(ge=1, le=100, description="per cent of peak-band energy moved to the valley band")]


def run_in_background(session_factory, run_id):
    """execute() after the response; a failure is kept on the run (status failed, error)."""
    try:
        statements.execute(session_factory, run_id)
    except Exception:
        log.exception("statement run %s failed", run_id)


MAX_ZIP_STATEMENTS = 5000    # one download; more: one by one through the API


def month_zip(session, actor, property_id, month, lang):
    """Every issued statement of a property's month as PDFs in one ZIP (built
    in a temporary file, then streamed with its length and file count)."""
    import tempfile

    from ...services.reports.export import iter_file
    from ...web import statement_doc
    count, docs = statements.issued_documents(session, actor, property_id, month, limit=MAX_ZIP_STATEMENTS)
    f = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    try:
        statement_doc.write_zip(docs, lang, f)
        size = f.tell()
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return StreamingResponse(iter_file(f), media_type="application/zip", headers={
        "Content-Disposition": 'attachment; filename="statements-%d-%s.zip"' % (property_id, month),
        "Content-Length": str(size), "X-File-Count": str(count)})


def language(lang, request, actor):
    from ...web.render import language_of
    return lang or language_of(request, actor.user)


class StatementLine(BaseModel):
    kind: str
    band: Optional[str] = None
    from_wh: Optional[int] = None
    to_wh: Optional[int] = None
    energy_wh: int
    price_mu_per_kwh: Optional[int]
    amount_mu: int
    version: Optional[int]


class StatementOut(BaseModel):
    account_id: int
    tenant: str
    property: str
    month: str
    start: int
    end: int
    opening_mu: int
    opening: str
    movements: dict[str, int]
    closing_mu: int
    closing: str
    energy_wh: int
    consumption_mu: int
    lines: list[StatementLine]
    rounding_mu: int
    other_mu: int
    days_wh: list[int]
    entries: list[dict[str, Any]]
    advice: dict[str, Any]


def statement_out(doc):
    c = doc["consumption"]
    return StatementOut(
        account_id=doc["account"].id, tenant=doc["tenant"], property=doc["property"], month=doc["month"],
        start=doc["start"], end=doc["end"], opening_mu=doc["opening_mu"], opening=format_money(doc["opening_mu"]),
        movements=doc["movements"], closing_mu=doc["closing_mu"], closing=format_money(doc["closing_mu"]),
        energy_wh=c["energy_wh"], consumption_mu=c["charged_mu"], lines=[StatementLine(**ln) for ln in c["lines"]],
        rounding_mu=c["rounding_mu"], other_mu=c["other_mu"], days_wh=c["days"], entries=doc["entries"],
        advice=doc["advice"])


@router.post("/api/statements/runs", response_model=StatementRunPublic, status_code=202)
def start_run(body: StatementRunIn, request: Request, background: BackgroundTasks, session: SessionDep,
              actor: Annotated[Actor, require(P.STATEMENTS_RUN)]):
    """Issue the statements of a property's month (which has ended): the
    run works in the background; follow it with GET /api/statements/runs/{id}."""
    run = statements.start_run(session, actor, body.property_id, body.month)
    session.commit()
    background.add_task(run_in_background, request.app.state.session_factory, run.id)
    return run


@router.get("/api/statements/runs/{run_id}", response_model=StatementRunPublic)
def get_run(run_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.REPORTS_READ)]):
    return statements.get_run(session, actor, run_id)


@router.get("/api/accounts/{account_id}/statements/{month}", response_model=StatementOut)
def account_statement(account_id: Id, month: Month, session: SessionDep,
                      actor: Annotated[Actor, require(P.REPORTS_READ)]):
    """An account's statement of a month, as numbers (staff of its property)."""
    return statement_out(statements.staff_document(session, actor, account_id, month))


@router.get("/api/accounts/{account_id}/statements/{month}/pdf", response_class=Response)
def account_statement_pdf(account_id: Id, month: Month, request: Request, session: SessionDep,
                          actor: Annotated[Actor, require(P.REPORTS_READ)], lang: Lang = None):
    """An account's statement of a month as a PDF, in Chinese (zh-CN) or English (en)."""
    from ...web import statement_doc
    doc = statements.staff_document(session, actor, account_id, month)
    return pdf_response(statement_doc.render_pdf(doc, language(lang, request, actor)), statement_doc.filename(doc))


@router.get("/api/statements/{month}/zip", response_class=StreamingResponse)
def month_statements_zip(month: Month, request: Request, session: SessionDep,
                         actor: Annotated[Actor, require(P.REPORTS_READ)],
                         property_id: Annotated[int, Query(ge=1, le=2 ** 31 - 1)], lang: Lang = None):
    """Every issued statement of a property's month as PDFs in one ZIP (404 before any is issued)."""
    return month_zip(session, actor, property_id, month, language(lang, request, actor))


@router.get("/api/portal/statements/{month}/pdf", response_class=Response)
def my_statement_pdf(month: Month, request: Request, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)],
                     account_id: OptId = None, lang: Lang = None):
    """One of one's own issued statements as a PDF (default: one's first
    account); 404 for anyone else's or a month not issued."""
    from ...web import statement_doc
    doc = statements.tenant_document(session, actor, month, account_id)
    return pdf_response(statement_doc.render_pdf(doc, language(lang, request, actor)), statement_doc.filename(doc))


@router.get("/api/portal/accounts/{account_id}/tou-advice", response_model=dict[str, Any])
def my_tou_advice(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)],
                  share: Share = tou_advice.DEFAULT_SHARE_PCT,
                  month: Annotated[Optional[str], Query(pattern=MONTH_PATTERN, max_length=7)] = None):
    """What moving `share` per cent of last month's (or `month`'s) peak-band
    energy to the valley band would have saved, in mu."""
    return tou_advice.advice(session, actor, account_id, share, month=month)
