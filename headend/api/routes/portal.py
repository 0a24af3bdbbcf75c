"""The tenant portal's API: one's own accounts (balance, days left, money
per hour, price band, use, recharges), alert preferences and thresholds,
online top-up. Nobody else's: another account's id answers 404."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ...core import permissions as P
from ...core.money import AmountError, format_kwh, format_money, format_price, parse_amount
from ...models import AccountPublic, LedgerEntryPublic
from ...models.alert import AlertPreferencePublic, AlertPreferenceUpdate
from ...services import accounts as svc
from ...services import alert_rules, portal
from ...services.actor import Actor
from ...services.errors import Invalid
from ..deps import Id, Limit, PagingDep, SessionDep, paged, require
from .accounts import LedgerPage
from .common import entry_public

router = APIRouter(prefix="/api/portal", tags=["portal"])


class AmountIn(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    amount: str = Field(max_length=24, description='exact decimal string, at most two decimals, e.g. "20.00"')


class Use(BaseModel):
    energy_wh: int
    kwh: str
    cost_mu: int
    cost: str


class PortalMeter(BaseModel):
    id: int
    meter_id: str
    unit: Optional[str]
    relay_closed: Optional[bool]
    online: Optional[bool]
    power_w: Optional[int]
    energy_wh: Optional[int]
    last_ts: Optional[int]
    band: Optional[str]
    price_mu_per_kwh: Optional[int]
    mu_per_hour: Optional[int]


class PortalAccount(BaseModel):
    account_id: int
    name: str
    property: str
    as_of: int
    balance_mu: int
    balance: str
    low: bool
    threshold_mu: int
    threshold: str
    days_left: Optional[str] = Field(description="days the balance lasts at the last 7 days' use (None: no use)")
    rate_per_day_mu: Optional[int]
    mu_per_hour: Optional[int]
    per_hour: Optional[str] = Field(description="money per hour at the current power and price")
    band: Optional[str]
    price_mu_per_kwh: Optional[int]
    price: Optional[str]
    meters: list[PortalMeter]
    today: Use
    this_month: Use
    last_month: Use
    chart: dict[str, list[int]] = Field(description="Wh per local day: this_month, last_month")
    history: list[LedgerEntryPublic]
    statements: list[dict[str, Any]]
    apportionment: list[dict[str, Any]]
    topup_available: bool
    receipts: dict[int, dict[str, Any]] = Field(default_factory=dict,
                                                description="ledger entry id -> its receipt {id, receipt_no}")


class Threshold(BaseModel):
    account_id: int
    threshold_mu: int
    threshold: str


def _use(d):
    return Use(energy_wh=d["energy_wh"], kwh=format_kwh(d["energy_wh"]), cost_mu=d["cost_mu"],
               cost=format_money(d["cost_mu"]))


def account_public(v):
    a = v["account"]
    return PortalAccount(
        account_id=a.id, name=a.name, property=v["property"], as_of=v["as_of"], balance_mu=v["balance_mu"],
        balance=format_money(v["balance_mu"]), low=v["low"], threshold_mu=v["threshold_mu"],
        threshold=format_money(v["threshold_mu"]), days_left=v["days_left"], rate_per_day_mu=v["rate_per_day_mu"],
        mu_per_hour=v["mu_per_hour"], per_hour=format_money(v["mu_per_hour"]) if v["mu_per_hour"] is not None else None,
        band=v["band"], price_mu_per_kwh=v["price_mu_per_kwh"],
        price=format_price(v["price_mu_per_kwh"]) if v["price_mu_per_kwh"] is not None else None,
        meters=[PortalMeter(**m) for m in v["meters"]], today=_use(v["today"]), this_month=_use(v["this_month"]),
        last_month=_use(v["last_month"]), chart=v["chart"], history=[entry_public(e) for e in v["history"]],
        statements=v["statements"], apportionment=v["apportionment"], topup_available=v["topup_available"],
        receipts=v["receipts"])


def parse_money(text):
    try:
        return parse_amount(text, positive=False)
    except AmountError as e:
        raise Invalid(str(e))


@router.get("/accounts", response_model=list[AccountPublic])
def my_accounts(request: Request, response: Response, session: SessionDep,
                actor: Annotated[Actor, require(P.PORTAL)], paging: PagingDep):
    page = svc.list_accounts(session, actor, paging=paging)
    page.items = [svc.public(a) for a in page.items]
    return paged(request, response, page)


@router.get("/summary", response_model=list[PortalAccount])
def summary(request: Request, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    """Each of one's accounts as the portal shows it."""
    providers = request.app.state.payments
    return [account_public(portal.account_view(session, actor, a.id, providers=providers))
            for a in portal.my_accounts(session, actor)]


@router.get("/accounts/{account_id}", response_model=PortalAccount)
def my_account(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    return account_public(portal.account_view(session, actor, account_id, providers=request.app.state.payments))


@router.get("/accounts/{account_id}/ledger", response_model=LedgerPage)
def my_ledger(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)], limit: Limit = 100):
    """One of one's own accounts with its entries, newest first (404 for anyone else's)."""
    a, rows, _names, total = svc.ledger_page(session, actor, account_id, limit)
    return LedgerPage(account_id=a.id, name=a.name, balance_mu=a.balance_mu, balance=format_money(a.balance_mu),
                      ledger_sum_mu=total, entries=[entry_public(e) for e in rows])


@router.put("/accounts/{account_id}/threshold", response_model=Threshold)
def set_threshold(account_id: Id, body: AmountIn, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    """Warn me when the balance falls below this ("0" or "0.00": only by days left)."""
    a = alert_rules.set_threshold(session, actor, account_id, parse_money(body.amount))
    session.commit()
    return Threshold(account_id=a.id, threshold_mu=a.low_balance_threshold_mu,
                     threshold=format_money(a.low_balance_threshold_mu))


@router.get("/receipts/{receipt_id}/pdf", response_class=Response)
def my_receipt_pdf(receipt_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)],
                   lang: Annotated[str, Query(pattern="^(zh-CN|en)$")] = "zh-CN"):
    """One of one's own receipts as a PDF (404 for anyone else's)."""
    from ...services import receipts
    from ...web import receipt_doc
    doc = receipts.document(session, actor, receipt_id)
    return Response(receipt_doc.render_pdf(doc, lang), media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="%s.pdf"' % doc["receipt"]["receipt_no"]})


@router.get("/preferences", response_model=AlertPreferencePublic)
def preferences(session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    t = alert_rules.own_tenant(session, actor)
    return alert_rules.preference_public(t, alert_rules.preference(session, t))


@router.put("/preferences", response_model=AlertPreferencePublic)
def update_preferences(body: AlertPreferenceUpdate, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    """Channels ("sms", "email"), days left to warn at, quiet hours ("22:00"-"07:00"), language."""
    t, pref = alert_rules.update_preference(session, actor, body.model_dump(exclude_unset=True))
    session.commit()
    return alert_rules.preference_public(t, pref)
