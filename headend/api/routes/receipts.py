"""Receipts of the sales desk: list, one, its PDF, reversing a sale."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request, Response

from ...core import permissions as P
from ...models import ReceiptPublic
from ...models.base import MAX_ID
from ...models.dayend import DAY_PATTERN
from ...models.receipt import ReversalIn
from ...services import corrections, receipts
from ...services.actor import Actor
from ...web import receipt_doc
from ..deps import Id, Limit, Offset, SessionDep, require
from .common import MovementResult, commit_movement, movement_result, pdf_response

router = APIRouter(prefix="/api/receipts", tags=["receipts"])
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]
Lang = Annotated[str, Query(pattern=r"^(zh-CN|en)$")]


@router.get("", response_model=list[ReceiptPublic])
def list_receipts(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], property_id: OptId = None,
                  day: Annotated[Optional[str], Query(pattern=DAY_PATTERN)] = None, user_id: OptId = None,
                  account_id: OptId = None,
                  kind: Annotated[Optional[str], Query(pattern=r"^(sale|reversal|refund|adjustment)$")] = None,
                  limit: Limit = 200, offset: Offset = 0):
    """Newest first; filters: property, business day (YYYY-MM-DD), cashier (user_id), account, kind."""
    q = receipts.query(actor, property_id, day, user_id, account_id, kind)
    return receipts.publics(session, session.exec(q.offset(offset).limit(limit)).all())


@router.get("/{receipt_id}", response_model=ReceiptPublic)
def get_receipt(receipt_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return receipts.public(session, receipts.get_receipt(session, actor, receipt_id))


@router.get("/{receipt_id}/pdf", response_class=Response)
def receipt_pdf(receipt_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
                lang: Lang = "zh-CN"):
    """The printable receipt as a PDF, in Chinese (zh-CN) or English (en)."""
    doc = receipts.document(session, actor, receipt_id)
    return pdf_response(receipt_doc.render_pdf(doc, lang), doc["receipt"]["receipt_no"])


@router.post("/{receipt_id}/reverse", response_model=MovementResult, status_code=201)
def reverse(receipt_id: Id, body: ReversalIn, request: Request, response: Response, session: SessionDep,
            actor: Annotated[Actor, require(P.MONEY_REVERSE)]):
    """Reverse a sale (冲正) with a reason: a `reversal` entry of minus the
    sale, linked to it, with its own slip. A cashier reverses their own
    sales of the open business day; a manager any sale, at any time (the
    reversal counts in the current open day). A sale is reversed once."""
    mv = corrections.reverse(session, actor, receipt_id, body.reason, idempotency_key=body.idempotency_key)
    commit_movement(request, session, response, mv)
    return movement_result(session, actor, mv)
