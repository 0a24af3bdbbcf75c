"""Accounts: opening them, their ledger, selling credit, refunds and
adjustments, moving tenants in and out, the account's own tariff."""
from typing import Annotated, Optional

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ...core import permissions as P
from ...core.money import format_money
from ...models import AccountCreate, AccountPublic, LedgerEntryPublic
from ...models.account import AccountTariff, MoveIn, MoveOut
from ...models.receipt import AdjustmentIn, RefundIn, SaleIn
from ...services import accounts as svc
from ...services import corrections, lifecycle, sales
from ...services.actor import Actor
from ..deps import Id, Limit, SessionDep, require
from .common import MovementResult, SaleResult, amount_of, commit_movement, entry_public, movement_result, wake_outbox
from ..deps import OptId, PagingDep, paged

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


class LedgerPage(BaseModel):
    account_id: int
    name: str
    balance_mu: int
    balance: str
    ledger_sum_mu: int
    entries: list[LedgerEntryPublic]


class Reading(BaseModel):
    meter_id: str
    energy_wh: Optional[int]
    ts: Optional[int]


class MoveInResult(BaseModel):
    account_id: int
    unit_id: int
    unit: str
    opening: list[Reading]
    sale: Optional[SaleResult] = None


class MoveOutResult(BaseModel):
    account_id: int
    units: list[str]
    final: list[Reading]
    vacant_relay: Optional[str]
    closed: bool
    refund: Optional[MovementResult] = None
    writeoff: Optional[MovementResult] = None


@router.post("", response_model=AccountPublic, status_code=201)
def create_account(body: AccountCreate, session: SessionDep, actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    a = svc.create_account(session, actor, body.property_id, tenant_name=body.tenant, tenant_id=body.tenant_id,
                           low_balance_threshold_mu=body.low_balance_threshold_mu, tariff_id=body.tariff_id)
    session.commit()
    return svc.public(a)


@router.get("", response_model=list[AccountPublic])
def list_accounts(request: Request, response: Response, session: SessionDep,
                  actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None):
    """One page (`limit`, `offset`; X-Total-Count and Link headers); `q` searches the name, or `#17` the number."""
    page = svc.list_accounts(session, actor, property_id, paging=paging)
    page.items = [svc.public(a) for a in page.items]
    return paged(request, response, page)


@router.get("/{account_id}", response_model=AccountPublic)
def get_account(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.public(svc.get_account(session, actor, account_id))


@router.post("/{account_id}/recharge", response_model=SaleResult, status_code=201)
def recharge(account_id: Id, body: SaleIn, request: Request, response: Response, session: SessionDep,
             actor: Annotated[Actor, require(P.MONEY_SELL)]):
    """Sell credit: one `recharge` ledger entry naming you, its numbered
    receipt (method, the payment's own reference), then a `credit` push to
    every meter of the account. The same `idempotency_key` again answers
    200 with the first sale's receipt and sells nothing."""
    sale = sales.sell(session, actor, account_id, amount_of(body.amount), note=body.note, method=body.method,
                      reference=body.reference, idempotency_key=body.idempotency_key)
    commit_movement(request, session, response, sale)
    return movement_result(session, actor, sale, SaleResult, credits_pushed=sale.pushed)


@router.post("/{account_id}/refund", response_model=MovementResult, status_code=201)
def refund(account_id: Id, body: RefundIn, request: Request, response: Response, session: SessionDep,
           actor: Annotated[Actor, require(P.MONEY_ADJUST)]):
    """Pay remaining credit back (退费): `amount` (whole fen, at most the
    balance) or the whole remaining credit; a `refund` entry and its slip."""
    mv = corrections.refund(session, actor, account_id, amount_of(body.amount) if body.amount else None,
                            method=body.method, reference=body.reference, reason=body.reason,
                            idempotency_key=body.idempotency_key)
    commit_movement(request, session, response, mv)
    return movement_result(session, actor, mv)


@router.post("/{account_id}/adjust", response_model=MovementResult, status_code=201)
def adjust(account_id: Id, body: AdjustmentIn, request: Request, response: Response, session: SessionDep,
           actor: Annotated[Actor, require(P.MONEY_ADJUST)]):
    """A manager's correction (调账) with a mandatory reason: "5.00" credits
    the account, "-5.00" debits it."""
    mv = corrections.adjust(session, actor, account_id, amount_of(body.amount, signed=True), body.reason,
                            idempotency_key=body.idempotency_key)
    commit_movement(request, session, response, mv)
    return movement_result(session, actor, mv)


@router.post("/{account_id}/move-in", response_model=MoveInResult, status_code=201)
def move_in(account_id: Id, body: MoveIn, request: Request, session: SessionDep,
            actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    """The tenant moves into a unit: its meters are billed to the account
    from their current reading (the opening reading), at `tariff_id` if
    given (a manager's), their relays return to the credit rule, and
    `opening_credit` (if any) is sold."""
    opening = amount_of(body.opening_credit) if body.opening_credit not in ("0", "0.00", "") else 0
    r = lifecycle.move_in(session, actor, account_id, body.unit_id, opening_credit_mu=opening, method=body.method,
                          reference=body.reference, idempotency_key=body.idempotency_key, tariff_id=body.tariff_id)
    session.commit()
    wake_outbox(request)
    sale = r["sale"]
    return MoveInResult(account_id=account_id, unit_id=r["unit"].id, unit=r["unit"].name, opening=r["opening"],
                        sale=movement_result(session, actor, sale, SaleResult, credits_pushed=sale.pushed)
                        if sale else None)


@router.post("/{account_id}/move-out", response_model=MoveOutResult)
def move_out(account_id: Id, body: MoveOut, request: Request, session: SessionDep,
             actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    """The tenant leaves (a unit, or all of them). Final readings: each
    meter's last billed reading; the meters go to the vacancy account and
    follow the vacant-unit rule. `refund` (a manager) pays the credit back and
    closes the account; `carry_over` keeps it open with its balance."""
    r = lifecycle.move_out(session, actor, account_id, body.unit_id, settlement=body.settlement, method=body.method,
                           reference=body.reference, reason=body.reason, idempotency_key=body.idempotency_key)
    session.commit()
    wake_outbox(request)
    return MoveOutResult(account_id=account_id, units=r["units"], final=r["final"], vacant_relay=r["vacant_relay"],
                         closed=r["closed"],
                         refund=movement_result(session, actor, r["refund"]) if r["refund"] else None,
                         writeoff=movement_result(session, actor, r["writeoff"]) if r["writeoff"] else None)


@router.put("/{account_id}/tariff", response_model=AccountPublic)
def set_tariff(account_id: Id, body: AccountTariff, session: SessionDep,
               actor: Annotated[Actor, require(P.TARIFFS_WRITE)]):
    """The account's own tariff (null: the property's), from each meter's next reading."""
    a = svc.set_tariff(session, actor, account_id, body.tariff_id)
    session.commit()
    return svc.public(a)


@router.get("/{account_id}/ledger", response_model=LedgerPage)
def account_ledger(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
                   limit: Limit = 200, before_id: OptId = None):
    """Newest first. Each entry: kind, signed amount_mu, balance_after_mu, who (user or board), reference."""
    a, rows, names, total = svc.ledger_page(session, actor, account_id, limit, before_id)
    return LedgerPage(account_id=a.id, name=a.name, balance_mu=a.balance_mu, balance=format_money(a.balance_mu),
                      ledger_sum_mu=total, entries=[entry_public(e, names) for e in rows])
