"""The sales desk (售电) as a cashier uses it all day, in three screens:
find the tenant (by unit, name, phone or meter) -> amount and payment method
-> the receipt (print view and PDF), where a sale can also be reversed.
Every form carries an idempotency key made when it was shown, so a double
click or a resent form sells once; a sale answers with a redirect to its
receipt (a reload shows the receipt, it does not sell again)."""
import uuid
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...api.deps import Id, SessionDep, require_web
from ...api.routes.common import pdf_response, wake_outbox
from ...core import permissions as P
from ...core.money import parse_amount
from ...models.receipt import IDEMPOTENCY_PATTERN, METHOD_PATTERN, METHOD_TEXT, METHODS, SALE
from ...services import accounts, corrections, receipts, sales, tenants
from ...services.actor import Actor
from .. import receipt_doc
from ..render import language_of, page
from .common import attempt

router = APIRouter(prefix="/staff", include_in_schema=False)
QUICK_AMOUNTS = ("50.00", "100.00", "200.00", "500.00")
Key = Annotated[str, Form(pattern=IDEMPOTENCY_PATTERN)]


def new_key():
    return uuid.uuid4().hex


# ------------------------------------------------------------------ screen 1: find
@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
         q: Annotated[str, Query(max_length=100)] = "",
         account_id: Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)] = None):
    if account_id is not None:
        return RedirectResponse("/staff/desk/accounts/%d" % account_id, status_code=303)
    return page(request, "staff/desk.html", {"q": q, "hits": tenants.search(session, actor, q) if q else None})


@router.get("/desk/search", response_class=HTMLResponse)
def search(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
           q: Annotated[str, Query(max_length=100)] = ""):
    """The hits alone: what the search box's htmx swaps in as the cashier types."""
    return page(request, "partials/desk_hits.html", {"q": q, "hits": tenants.search(session, actor, q) if q else None})


# ------------------------------------------------------------------ screen 2: amount and method
def _account_page(request, session, actor, account_id, error=None, form=None, status_code=200):
    a = accounts.get_account(session, actor, account_id)
    recent = session.exec(receipts.query(actor, account_id=a.id).limit(8)).all()
    return page(request, "staff/desk_account.html", {
        "hit": tenants.hit(session, a), "account": a, "recent": receipts.publics(session, recent),
        "methods": METHODS, "method_text": METHOD_TEXT, "quick": QUICK_AMOUNTS, "key": new_key(),
        "error": error, "form": form or {"method": "cash"}}, status_code=status_code)


@router.get("/desk/accounts/{account_id}", response_class=HTMLResponse)
def account(account_id: Id, request: Request, session: SessionDep,
            actor: Annotated[Actor, require_web(P.MONEY_SELL)]):
    return _account_page(request, session, actor, account_id)


@router.get("/desk/accounts/{account_id}/card", response_class=HTMLResponse)
def account_card(account_id: Id, request: Request, session: SessionDep,
                 actor: Annotated[Actor, require_web(P.MONEY_SELL)]):
    """The account card alone (balance, meters, relays): refreshed live."""
    a = accounts.get_account(session, actor, account_id)
    return page(request, "partials/account_card.html", {"hit": tenants.hit(session, a)})


@router.post("/desk/accounts/{account_id}/sell", response_class=HTMLResponse)
def sell(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
         amount: Annotated[str, Form(max_length=24)], idempotency_key: Key,
         method: Annotated[str, Form(pattern=METHOD_PATTERN)] = "cash",
         reference: Annotated[str, Form(max_length=100)] = "", note: Annotated[str, Form(max_length=500)] = ""):
    sale, error, status = attempt(session, lambda: sales.sell(
        session, actor, account_id, parse_amount(amount), note=note, method=method, reference=reference.strip(),
        idempotency_key=idempotency_key))
    if error:
        return _account_page(request, session, actor, account_id, error=error, status_code=status,
                             form={"amount": amount, "method": method, "reference": reference, "note": note})
    wake_outbox(request)
    return RedirectResponse("/staff/receipts/%d" % sale.receipt.id, status_code=303)


# ------------------------------------------------------------------ screen 3: the receipt
@router.get("/receipts/{receipt_id}", response_class=HTMLResponse)
def receipt(receipt_id: Id, request: Request, session: SessionDep,
            actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    return _receipt_page(request, session, actor, receipt_id)


def _receipt_page(request, session, actor, receipt_id, error=None, status_code=200):
    doc = receipts.document(session, actor, receipt_id)
    r = doc["receipt"]
    return page(request, "staff/receipt.html", {
        "doc": doc, "r": r, "lines": receipt_doc.lines(doc), "title": receipt_doc.title(r), "key": new_key(),
        "error": error, "can_reverse": r["kind"] == SALE and not r["reversed_by_receipt_id"]
        and actor.can(P.MONEY_REVERSE, r["property_id"])}, status_code=status_code)


@router.get("/receipts/{receipt_id}/pdf", response_class=Response)
def receipt_pdf(receipt_id: Id, request: Request, session: SessionDep,
                actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    doc = receipts.document(session, actor, receipt_id)
    return pdf_response(receipt_doc.render_pdf(doc, language_of(request, actor.user)), doc["receipt"]["receipt_no"])


@router.post("/receipts/{receipt_id}/reverse", response_class=HTMLResponse)
def reverse(receipt_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_REVERSE)],
            reason: Annotated[str, Form(max_length=500)], idempotency_key: Key):
    mv, error, status = attempt(session, lambda: corrections.reverse(session, actor, receipt_id, reason,
                                                                      idempotency_key=idempotency_key))
    if error:
        return _receipt_page(request, session, actor, receipt_id, error=error, status_code=status)
    wake_outbox(request)
    return RedirectResponse("/staff/receipts/%d" % mv.receipt.id, status_code=303)
