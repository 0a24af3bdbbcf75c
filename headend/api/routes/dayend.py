"""Day end (日结): the report of a business day, and closing it."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ...core import permissions as P
from ...models import DayCloseIn, ReceiptPublic
from ...models.base import MAX_ID
from ...models.dayend import DAY_PATTERN
from ...services import dayend, receipts
from ...services.actor import Actor
from ..deps import SessionDep, require

router = APIRouter(prefix="/api/dayend", tags=["day end"])


class Sums(BaseModel):
    sale: int
    reversal: int
    refund: int
    adjustment: int
    net: int
    count: int


class MethodSums(Sums):
    method: str


class CashierSums(Sums):
    user_id: int
    cashier: str


class DayEndReport(BaseModel):
    property_id: int
    day: str
    cashier_id: Optional[int]
    cashier: str
    closed: bool
    closed_at: Optional[int]
    closed_by: Optional[str]
    totals: Sums
    by_method: list[MethodSums]
    by_cashier: list[CashierSums]
    first_receipt: Optional[str]
    last_receipt: Optional[str]
    receipts: list[ReceiptPublic]
    reconciled: bool
    problems: list[str]


@router.get("", response_model=DayEndReport)
def report(session: SessionDep, actor: Annotated[Actor, require(P.CASH_REPORT)],
           property_id: Annotated[int, Query(ge=1, le=MAX_ID)],
           day: Annotated[Optional[str], Query(pattern=DAY_PATTERN)] = None,
           cashier_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None):
    """A business day's sales, reversals, refunds and adjustments per payment
    method and per cashier (amounts in mu, signed as in the ledger; `net` =
    what the drawer holds), each receipt, and whether it reconciles with the
    ledger. Default day: the open one. A cashier gets their own figures."""
    day = day or receipts.open_day(session, property_id)
    return dayend.report(session, actor, property_id, day, cashier_id)


@router.post("/close", response_model=DayEndReport)
def close(body: DayCloseIn, session: SessionDep, actor: Annotated[Actor, require(P.CASH_CLOSE)]):
    """Close a business day: its report is kept, and every later movement
    counts in the next open day. A day that does not reconcile is refused."""
    dayend.close(session, actor, body.property_id, body.day)
    session.commit()
    return dayend.report(session, actor, body.property_id, body.day)
