"""Accounts, their ledger, and selling credit."""
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from ...core import permissions as P
from ...core.money import AmountError, format_exact, format_money, parse_amount
from ...models import AccountCreate, AccountPublic, LedgerEntryPublic
from ...models.base import Body
from ...services import accounts as svc
from ...services import sales
from ...services.actor import Actor
from ...services.errors import Invalid
from ..deps import Id, Limit, OptId, PagingDep, SessionDep, paged, require
from .common import wake_outbox

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


class RechargeIn(Body):
    amount: str = Field(max_length=24, description='exact decimal string in currency units, at most two '
                                                   'decimals, e.g. "50.00" (no exponents, no floats)')
    note: str = Field(default="", max_length=500)


class SaleResult(BaseModel):
    entry: LedgerEntryPublic
    balance_mu: int
    balance: str
    credits_pushed: int


class LedgerPage(BaseModel):
    account_id: int
    name: str
    balance_mu: int
    balance: str
    ledger_sum_mu: int
    entries: list[LedgerEntryPublic]


def entry_public(e, names=None):
    d = e.model_dump()
    d["amount"] = format_exact(e.amount_mu)
    d["username"] = (names or {}).get(e.user_id)
    return LedgerEntryPublic(**d)


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
def recharge(account_id: Id, body: RechargeIn, request: Request, session: SessionDep,
             actor: Annotated[Actor, require(P.MONEY_SELL)]):
    """Sell credit: one `recharge` ledger entry naming you, then a `credit`
    push to every meter of the account."""
    try:
        amount_mu = parse_amount(body.amount)
    except AmountError as e:
        raise Invalid(str(e))
    sale = sales.sell(session, actor, account_id, amount_mu, note=body.note)
    session.commit()
    wake_outbox(request)
    e = sale.entry
    return SaleResult(entry=entry_public(e, {actor.user_id: actor.username}), balance_mu=e.balance_after_mu,
                      balance=format_money(e.balance_after_mu), credits_pushed=sale.pushed)


@router.get("/{account_id}/ledger", response_model=LedgerPage)
def account_ledger(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
                   limit: Limit = 200, before_id: OptId = None):
    """Newest first. Each entry: kind, signed amount_mu, balance_after_mu, who (user or board), reference."""
    a, rows, names, total = svc.ledger_page(session, actor, account_id, limit, before_id)
    return LedgerPage(account_id=a.id, name=a.name, balance_mu=a.balance_mu, balance=format_money(a.balance_mu),
                      ledger_sum_mu=total, entries=[entry_public(e, names) for e in rows])
