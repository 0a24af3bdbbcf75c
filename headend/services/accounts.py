"""Accounts: a tenant's (opened at the desk, 开户) and each property's
vacancy account; what a unit's occupancy is (services.lifecycle moves
tenants in and out; services.tenants keeps the tenant record)."""
from sqlmodel import select

from ..core import permissions as P
from ..core.paging import Paging, listed
from ..models import Account, Occupancy, Property, Tariff, Tenant, Unit, now_s
from ..models.account import KIND_TENANT, KIND_VACANCY
from . import audit, ledger
from .actor import scoped
from .errors import Invalid, NotFound


def visible(actor, account):
    if account is None:
        return False
    if actor.is_tenant:
        return account.tenant_id is not None and account.tenant_id == actor.tenant_id
    return actor.sees(account.property_id)


def get_account(session, actor, account_id):
    a = session.get(Account, account_id)
    if not visible(actor, a):
        raise NotFound("no account %s" % account_id)
    return a


def list_accounts(session, actor, property_id=None, paging=None):
    """A tenant's own accounts, or the accounts of the staff's properties
    (with paging: a core.paging.Page, searched by name or account number)."""
    q = select(Account)
    if actor.is_tenant:
        q = q.where(Account.tenant_id == actor.tenant_id)
    else:
        q = scoped(q, actor, Account.property_id)
    if property_id is not None:
        q = q.where(Account.property_id == property_id)
    q = q.order_by(Account.id)
    if paging is not None and paging.q.strip().lstrip("#").isdigit() and len(paging.q.strip()) < 10:
        q = q.where(Account.id == int(paging.q.strip().lstrip("#")))
        paging = Paging(paging.limit, paging.offset)
    return listed(session, q, paging, Account.name)


def create_account(session, actor, property_id, tenant_name=None, tenant_id=None, low_balance_threshold_mu=0,
                   tariff_id=None, opening_balance_mu=0):
    """Open a tenant's account (开户): for an existing tenant, or a new
    tenant of that name. An opening balance is posted as a sale by the
    actor."""
    actor.check(P.ACCOUNTS_WRITE, property_id)
    prop = session.get(Property, property_id)
    if prop is None:
        raise Invalid("no property %s" % property_id)
    if tariff_id is not None:
        t = session.get(Tariff, tariff_id)
        if t is None or t.property_id != property_id:
            raise Invalid("no tariff %s in this property" % tariff_id)
    if tenant_id is not None:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or tenant.property_id != property_id:
            raise Invalid("no tenant %s in this property" % tenant_id)
    elif tenant_name:
        from .tenants import create_tenant
        tenant = create_tenant(session, actor, property_id, tenant_name)
    else:
        raise Invalid("give the tenant (tenant_id) or a new tenant's name")
    a = Account(property_id=property_id, tenant_id=tenant.id, kind=KIND_TENANT, name=tenant.name,
                low_balance_threshold_mu=low_balance_threshold_mu, tariff_id=tariff_id)
    session.add(a)
    session.flush()
    audit.record(session, actor, "account.open", "account", a.id, property_id=property_id,
                 after={"tenant_id": tenant.id, "name": a.name, "tariff_id": tariff_id,
                        "low_balance_threshold_mu": low_balance_threshold_mu})
    if opening_balance_mu:
        from .sales import sell
        sell(session, actor, a.id, opening_balance_mu, note="opening balance", push=False)
    return a


def vacancy_account(session, property_id):
    """The property's account for meters in units nobody occupies."""
    a = session.exec(select(Account).where(Account.property_id == property_id,
                                           Account.kind == KIND_VACANCY)).first()
    if a is None:
        a = Account(property_id=property_id, kind=KIND_VACANCY, name="Vacant units")
        session.add(a)
        session.flush()
    return a


def occupant(session, unit_id, at=None):
    """The account occupying a unit at time `at` (now), or None."""
    at = at if at is not None else now_s()
    return session.exec(select(Occupancy).where(Occupancy.unit_id == unit_id, Occupancy.start <= at,
                                                (Occupancy.end.is_(None)) | (Occupancy.end > at))
                        .order_by(Occupancy.start.desc())).first()


def occupy(session, actor, account_id, unit_id, start=None):
    """Account `account_id` moves into unit `unit_id` (services.lifecycle.move_in)."""
    from .lifecycle import move_in
    return move_in(session, actor, account_id, unit_id, now=start)["occupancy"]


def units_of(session, account_id):
    rows = session.exec(select(Unit).join(Occupancy, Occupancy.unit_id == Unit.id)
                        .where(Occupancy.account_id == account_id, Occupancy.end.is_(None))).all()
    return rows


def public(account):
    from ..core.money import format_money
    d = account.model_dump()
    d["balance"] = format_money(account.balance_mu)
    return d


def ledger_page(session, actor, account_id, limit=200, before_id=None):
    from ..models import LedgerEntry, User
    a = get_account(session, actor, account_id)
    q = select(LedgerEntry).where(LedgerEntry.account_id == a.id)
    if before_id is not None:
        q = q.where(LedgerEntry.id < before_id)
    rows = session.exec(q.order_by(LedgerEntry.id.desc()).limit(max(1, min(limit, 1000)))).all()
    names = dict(session.exec(select(User.id, User.username).where(
        User.id.in_(sorted({e.user_id for e in rows if e.user_id is not None})))).all()) if rows else {}
    return a, rows, names, ledger.ledger_sum(session, a.id)


def set_tariff(session, actor, account_id, tariff_id):
    """The account's own tariff (None: the property's). Its meters are billed
    with it from their next reading (a new accumulator; the cycle's energy
    still counts for the tiers)."""
    from . import audit
    a = get_account(session, actor, account_id)
    actor.check(P.TARIFFS_WRITE, a.property_id)
    if tariff_id is not None:
        t = session.get(Tariff, tariff_id)
        if t is None or t.property_id != a.property_id:
            raise Invalid("no tariff %s in this property" % tariff_id)
    before = a.tariff_id
    a.tariff_id = tariff_id
    session.add(a)
    session.flush()
    audit.record(session, actor, "tariff.account", "account", a.id, property_id=a.property_id,
                 before={"tariff_id": before}, after={"tariff_id": tariff_id})
    return a
