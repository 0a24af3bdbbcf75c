"""Tenants' accounts from move-in to move-out on the dashboard: opening an
account (开户) with its tenant record and move-in, the account's page
(tenant record, move in and out, refunds and adjustments, its tariff), the
units of a property and their occupants, meter swaps."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import select

from ...api.deps import Id, SessionDep, require_web
from ...api.routes.common import wake_outbox
from ...core import permissions as P
from ...core.money import parse_amount, parse_kwh
from ...models import Tariff, Tenant
from ...models.receipt import IDEMPOTENCY_PATTERN, METHOD_PATTERN, METHOD_TEXT, METHODS
from ...services import accounts, corrections, devices, lifecycle, tenants
from ...services.actor import Actor
from ...services.errors import NotFound
from ..i18n import N_
from ..render import page
from .common import attempt, chosen_property
from .desk import new_key

router = APIRouter(prefix="/staff", include_in_schema=False)
Text = Annotated[str, Form(max_length=200)]
Day = Annotated[str, Form(pattern=r"^(|[0-9]{4}-[0-9]{2}-[0-9]{2})$")]     # a date, or empty
Method = Annotated[str, Form(pattern=METHOD_PATTERN)]
Key = Annotated[str, Form(pattern=IDEMPOTENCY_PATTERN)]
OptId = Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)]


def _money(text, signed=False):
    return parse_amount(text, signed=signed, positive=not signed) if (text or "").strip() not in ("", "0") else 0


def _vacant_units(session, actor, property_id):
    return [r["unit"] for r in lifecycle.unit_rows(session, actor, property_id) if r["account"] is None]


def _tariff_names(session, property_id):
    """{tariff name: a version row id} of a property (what a tariff select offers)."""
    names = {}
    for r in session.exec(select(Tariff).where(Tariff.property_id == property_id)
                          .order_by(Tariff.name, Tariff.version)).all():
        names.setdefault(r.name, r.id)
    return names


# ------------------------------------------------------------------ units
@router.get("/units", response_class=HTMLResponse)
def units(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
          property_id: OptId = None):
    props, prop = chosen_property(session, actor, property_id)
    return page(request, "staff/units.html", {"properties": props, "prop": prop,
                                              "rows": lifecycle.unit_rows(session, actor, prop.id)})


# ------------------------------------------------------------------ opening an account
def _new_page(request, session, actor, property_id, unit_id=None, error=None, form=None, status_code=200):
    props, prop = chosen_property(session, actor, property_id)
    return page(request, "staff/account_new.html", {
        "properties": props, "prop": prop, "units": _vacant_units(session, actor, prop.id), "unit_id": unit_id,
        "tariffs": _tariff_names(session, prop.id) if actor.can(P.TARIFFS_WRITE, prop.id) else {},
        "methods": METHODS, "method_text": METHOD_TEXT, "key": new_key(), "error": error, "form": form or {}},
        status_code=status_code)


@router.get("/accounts/new", response_class=HTMLResponse)
def new_account(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)],
                property_id: OptId = None, unit_id: OptId = None):
    return _new_page(request, session, actor, property_id, unit_id)


@router.post("/accounts/new", response_class=HTMLResponse)
def open_account(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)],
                 property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)], name: Text, idempotency_key: Key,
                 unit_id: Annotated[Optional[int], Form(ge=1, le=2 ** 31 - 1)] = None, phone: Text = "",
                 id_number: Text = "", contract_start: Day = "", contract_end: Day = "", deposit: Text = "",
                 opening_credit: Text = "", method: Method = "cash",
                 tariff_id: Annotated[Optional[int], Form(ge=1, le=2 ** 31 - 1)] = None):
    form = {"name": name, "phone": phone, "id_number": id_number, "contract_start": contract_start,
            "contract_end": contract_end, "deposit": deposit, "opening_credit": opening_credit, "method": method}
    def open_():
        t = tenants.create_tenant(session, actor, property_id, name, phone=phone, id_number=id_number,
                                  contract_start=contract_start or None, contract_end=contract_end or None,
                                  deposit=deposit or "0")
        a = accounts.create_account(session, actor, property_id, tenant_id=t.id)
        if tariff_id:
            accounts.set_tariff(session, actor, a.id, tariff_id)
        sale = lifecycle.move_in(session, actor, a.id, unit_id, opening_credit_mu=_money(opening_credit),
                                 method=method, idempotency_key=idempotency_key)["sale"] if unit_id else None
        return a, sale
    done, error, status = attempt(session, open_)
    if error:
        return _new_page(request, session, actor, property_id, unit_id, error=error, form=form, status_code=status)
    wake_outbox(request)
    a, sale = done
    target = "/staff/receipts/%d" % sale.receipt.id if sale else "/staff/accounts/%d" % a.id
    return RedirectResponse(target, status_code=303)


# ------------------------------------------------------------------ one account
def _account_page(request, session, actor, account_id, error=None, done=None, status_code=200):
    a = accounts.get_account(session, actor, account_id)
    t = session.get(Tenant, a.tenant_id) if a.tenant_id else None
    names = _tariff_names(session, a.property_id)
    meter_ids = [m["id"] for m in tenants.hit(session, a)["meters"]]
    return page(request, "staff/account.html", {
        "account": a, "hit": tenants.hit(session, a), "tenant": tenants.public(session, t) if t else None,
        "vacant": _vacant_units(session, actor, a.property_id), "tariffs": names, "meter_ids": meter_ids,
        "methods": METHODS, "method_text": METHOD_TEXT, "key": new_key(), "error": error, "done": done,
        "can": {k: actor.can(v, a.property_id) for k, v in (("adjust", P.MONEY_ADJUST), ("tariff", P.TARIFFS_WRITE),
                                                           ("write", P.ACCOUNTS_WRITE), ("swap", P.DEVICES_WRITE),
                                                           ("sell", P.MONEY_SELL))}},
        status_code=status_code)


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
def account_page(account_id: Id, request: Request, session: SessionDep,
                 actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)]):
    return _account_page(request, session, actor, account_id)


def _do(request, session, actor, account_id, action, done):
    """Run one change of the account page; the page again with the outcome."""
    result, error, status = attempt(session, action)
    if error:
        return _account_page(request, session, actor, account_id, error=error, status_code=status)
    wake_outbox(request)
    receipt = getattr(result, "receipt", None)
    if receipt is not None:
        return RedirectResponse("/staff/receipts/%d" % receipt.id, status_code=303)
    return _account_page(request, session, actor, account_id, done=done)


@router.post("/accounts/{account_id}/tenant", response_class=HTMLResponse)
def update_tenant(account_id: Id, request: Request, session: SessionDep,
                  actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)], name: Text, phone: Text = "",
                  id_number: Text = "", contract_start: Day = "", contract_end: Day = "", deposit: Text = ""):
    def action():
        a = accounts.get_account(session, actor, account_id)
        if a.tenant_id is None:
            raise NotFound("no tenant on account %s" % account_id)
        return tenants.update_tenant(session, actor, a.tenant_id, name=name, phone=phone,
                                     id_number=id_number or None, contract_start=contract_start or None,
                                     contract_end=contract_end or None, deposit=deposit or None)
    return _do(request, session, actor, account_id, action, N_("Tenant record saved"))


@router.post("/accounts/{account_id}/move-in", response_class=HTMLResponse)
def move_in(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)],
            unit_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)], idempotency_key: Key, opening_credit: Text = "",
            method: Method = "cash"):
    def action():
        r = lifecycle.move_in(session, actor, account_id, unit_id, opening_credit_mu=_money(opening_credit),
                              method=method, idempotency_key=idempotency_key)
        return r["sale"]
    return _do(request, session, actor, account_id, action, N_("Moved in"))


@router.post("/accounts/{account_id}/move-out", response_class=HTMLResponse)
def move_out(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ACCOUNTS_WRITE)],
             idempotency_key: Key, settlement: Annotated[str, Form(pattern=r"^(refund|carry_over)$")] = "carry_over",
             unit_id: Annotated[Optional[int], Form(ge=1, le=2 ** 31 - 1)] = None, method: Method = "cash",
             reason: Text = ""):
    def action():
        r = lifecycle.move_out(session, actor, account_id, unit_id, settlement=settlement, method=method,
                               reason=reason, idempotency_key=idempotency_key)
        return r["refund"]
    return _do(request, session, actor, account_id, action, N_("Moved out"))


@router.post("/accounts/{account_id}/adjust", response_class=HTMLResponse)
def adjust(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_ADJUST)],
           amount: Annotated[str, Form(max_length=24)], reason: Text, idempotency_key: Key):
    return _do(request, session, actor, account_id, lambda: corrections.adjust(
        session, actor, account_id, parse_amount(amount, signed=True, positive=False), reason,
        idempotency_key=idempotency_key), N_("Adjusted"))


@router.post("/accounts/{account_id}/refund", response_class=HTMLResponse)
def refund(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_ADJUST)],
           reason: Text, idempotency_key: Key, amount: Annotated[str, Form(max_length=24)] = "",
           method: Method = "cash"):
    return _do(request, session, actor, account_id, lambda: corrections.refund(
        session, actor, account_id, _money(amount) or None, method=method, reason=reason,
        idempotency_key=idempotency_key), N_("Refunded"))


@router.post("/accounts/{account_id}/tariff", response_class=HTMLResponse)
def set_tariff(account_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.TARIFFS_WRITE)],
               tariff_id: Annotated[Optional[int], Form(ge=1, le=2 ** 31 - 1)] = None):
    return _do(request, session, actor, account_id,
               lambda: accounts.set_tariff(session, actor, account_id, tariff_id), N_("Tariff saved"))


# ------------------------------------------------------------------ meter swap
def _swap_page(request, session, actor, meter_pk, error=None, status_code=200):
    m, conc = devices.get_meter(session, actor, meter_pk)
    return page(request, "staff/meter_swap.html", {"meter": m, "conc": conc, "error": error},
                status_code=status_code)


@router.get("/meters/{meter_pk}/swap", response_class=HTMLResponse)
def swap_page(meter_pk: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.DEVICES_WRITE)]):
    return _swap_page(request, session, actor, meter_pk)


@router.post("/meters/{meter_pk}/swap", response_class=HTMLResponse)
def swap(meter_pk: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.DEVICES_WRITE)],
         new_meter_id: Annotated[str, Form(min_length=1, max_length=64)], opening_kwh: Text = "0",
         final_kwh: Text = "", new_model: Text = ""):
    _m, conc = devices.get_meter(session, actor, meter_pk)
    _done, error, status = attempt(session, lambda: lifecycle.swap_meter(
        session, actor, meter_pk, new_meter_id, new_model or None,
        parse_kwh(final_kwh) if final_kwh.strip() else None, parse_kwh(opening_kwh or "0")))
    if error:
        return _swap_page(request, session, actor, meter_pk, error=error, status_code=status)
    wake_outbox(request)
    return RedirectResponse("/staff/units?property_id=%d" % conc.property_id, status_code=303)
