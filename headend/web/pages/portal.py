"""The tenant portal, phone first: each of one's accounts (balance, days
left, money per hour, price band, use with a chart, recharges, statements,
apportionment, top-up, alert threshold) and one's alert preferences."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from ...api.deps import Id, SessionDep, require_web
from ...core import permissions as P
from ...core.money import AmountError, parse_amount
from ...models.alert import TENANT_CHANNELS
from ...services import accounts, alert_rules, messages, portal, tou_advice
from ...services.actor import Actor
from ...services.errors import DomainError
from ..render import page

router = APIRouter(prefix="/portal", include_in_schema=False)
PORTAL_ACCOUNTS = 20         # a tenant's accounts on one page (a tenant has one or a few)


def _render(request, session, actor, notice=None, error=None, status_code=200, order=None):
    views = []
    for a in portal.my_accounts(session, actor):
        v = portal.account_view(session, actor, a.id, providers=request.app.state.payments)
        v["units"] = accounts.units_of(session, a.id)
        v["advice"] = tou_advice.advice(session, actor, a.id, now=v["as_of"])      # last month's (issue 11)
        v["advice_shares"] = tou_advice.SHARES_PCT
        views.append(v)
    tenant = alert_rules.own_tenant(session, actor)
    pref = alert_rules.preference_public(tenant, alert_rules.preference(session, tenant))
    return page(request, "tenant/portal.html", {"views": views, "pref": pref, "channels": TENANT_CHANNELS,
                                                "channel_labels": messages.CHANNEL_LABELS,
                                                "notice": notice, "error": error, "order": order},
                status_code=status_code)


@router.get("", response_class=HTMLResponse)
def portal_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)]):
    return _render(request, session, actor)


@router.get("/accounts/{account_id}/live", response_class=HTMLResponse)
def live(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)]):
    """The live part of an account's card: what the page's htmx refresh swaps in."""
    return page(request, "tenant/live.html", {"v": portal.account_view(session, actor, account_id,
                                                                        providers=request.app.state.payments)})


def _act(request, session, actor, action, done):
    try:
        action()
        session.commit()
    except (AmountError, DomainError) as e:
        session.rollback()
        return _render(request, session, actor, error=getattr(e, "message", None) or str(e),
                       status_code=getattr(e, "status", 422))
    return _render(request, session, actor, notice=done)


@router.post("/accounts/{account_id}/threshold", response_class=HTMLResponse)
def set_threshold(account_id: Id, request: Request, session: SessionDep,
                  actor: Annotated[Actor, require_web(P.PORTAL)], amount: Annotated[str, Form(max_length=24)]):
    return _act(request, session, actor,
                lambda: alert_rules.set_threshold(session, actor, account_id, parse_amount(amount, positive=False)),
                "threshold saved")


@router.post("/accounts/{account_id}/topup", response_class=HTMLResponse)
def topup(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)],
          amount: Annotated[str, Form(max_length=24)]):
    try:
        order = portal.start_topup(session, actor, account_id, parse_amount(amount), request.app.state.payments)
        session.commit()
    except (AmountError, DomainError) as e:
        session.rollback()
        return _render(request, session, actor, error=getattr(e, "message", None) or str(e),
                       status_code=getattr(e, "status", 422))
    return _render(request, session, actor, notice="top-up started", order=order)


@router.get("/receipts/{receipt_id}.pdf")
def receipt_pdf(receipt_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)]):
    """One of one's own receipts as a PDF, in the page's language."""
    from fastapi.responses import Response

    from ...services import receipts
    from .. import receipt_doc
    from ..render import language_of
    doc = receipts.document(session, actor, receipt_id)
    return Response(receipt_doc.render_pdf(doc, language_of(request, actor.user)), media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="%s.pdf"' % doc["receipt"]["receipt_no"]})


@router.post("/preferences", response_class=HTMLResponse)
def preferences(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)],
                channel: Annotated[Optional[list[str]], Form(max_length=2)] = None,
                days_left: Annotated[str, Form(max_length=3)] = "",
                quiet_start: Annotated[str, Form(max_length=5)] = "",
                quiet_end: Annotated[str, Form(max_length=5)] = "",
                language: Annotated[str, Form(max_length=8)] = ""):
    def save():
        if days_left.strip() and not days_left.strip().isdigit():
            raise AmountError("days left must be a whole number of days")
        changes = {"channels": channel or [], "days_left": int(days_left) if days_left.strip() else None,
                   "quiet_start": quiet_start.strip(), "quiet_end": quiet_end.strip()}
        for key in ("quiet_start", "quiet_end"):
            v = changes[key]
            if v and not (len(v) == 5 and v[2] == ":" and v[:2].isdigit() and v[3:].isdigit()):
                raise AmountError("%s must be a time such as 22:00" % key.replace("_", " "))
        if language in ("zh-CN", "en"):
            changes["language"] = language
        alert_rules.update_preference(session, actor, changes)
    return _act(request, session, actor, save, "preferences saved")
