"""The tenant record (name, phone, ID number, contract dates, deposit) and
the cashier's search: find a tenant's account by unit, name, phone or
meter. ID numbers are kept whole and shown masked everywhere."""
from sqlalchemy import or_
from sqlmodel import select

from ..core import permissions as P
from ..core.money import AmountError, day_bounds, format_money, local_date, parse_amount, parse_day
from ..models import Account, Meter, Occupancy, Property, Tenant, Unit
from ..models.account import KIND_TENANT
from . import audit
from .actor import scoped
from .errors import Invalid, NotFound

MAX_HITS = 50


def mask_id_number(text):
    """"110101199003071234" -> "1101**********1234": what lists show."""
    if not text:
        return ""
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def _tz(session, property_id):
    p = session.get(Property, property_id)
    return p.tz_offset_s if p is not None else 28800


def _date(text, tz):
    if text is None:
        return None
    try:
        return day_bounds(parse_day(text), tz)[0]
    except AmountError as e:
        raise Invalid(str(e))


def _deposit(text):
    try:
        return parse_amount(text, positive=False) if text not in (None, "", "0") else 0
    except AmountError as e:
        raise Invalid("deposit: %s" % e)


def public(session, t):
    tz = _tz(session, t.property_id)
    return {"id": t.id, "property_id": t.property_id, "name": t.name, "phone": t.phone, "email": t.email,
            "id_number": mask_id_number(t.id_number),
            "contract_start": local_date(t.contract_start, tz) if t.contract_start is not None else None,
            "contract_end": local_date(t.contract_end, tz) if t.contract_end is not None else None,
            "deposit_mu": t.deposit_mu, "deposit": format_money(t.deposit_mu)}


def _snapshot(session, t):
    d = public(session, t)
    d.pop("id")
    return d


def create_tenant(session, actor, property_id, name, phone="", email="", id_number="", contract_start=None,
                  contract_end=None, deposit="0"):
    actor.check(P.ACCOUNTS_WRITE, property_id)
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise Invalid("no property %s" % property_id)
    tz = _tz(session, property_id)
    t = Tenant(property_id=property_id, name=name.strip(), phone=(phone or "").strip(), email=(email or "").strip(),
               id_number=(id_number or "").strip(), contract_start=_date(contract_start, tz),
               contract_end=_date(contract_end, tz), deposit_mu=_deposit(deposit))
    if not t.name:
        raise Invalid("a tenant has a name")
    if t.contract_start is not None and t.contract_end is not None and t.contract_end < t.contract_start:
        raise Invalid("the contract ends before it starts")
    session.add(t)
    session.flush()
    audit.record(session, actor, "tenant.create", "tenant", t.id, property_id=property_id, after=_snapshot(session, t))
    return t


def get_tenant(session, actor, tenant_id):
    t = session.get(Tenant, tenant_id)
    if t is None or not actor.sees(t.property_id) or (actor.is_tenant and t.id != actor.tenant_id):
        raise NotFound("no tenant %s" % tenant_id)
    return t


def update_tenant(session, actor, tenant_id, **changes):
    t = get_tenant(session, actor, tenant_id)
    actor.check(P.ACCOUNTS_WRITE, t.property_id)
    before = _snapshot(session, t)
    tz = _tz(session, t.property_id)
    for k in ("name", "phone", "email", "id_number"):
        if changes.get(k) is not None:
            setattr(t, k, changes[k].strip())
    for k in ("contract_start", "contract_end"):
        if changes.get(k) is not None:
            setattr(t, k, _date(changes[k], tz))
    if changes.get("deposit") is not None:
        t.deposit_mu = _deposit(changes["deposit"])
    if not t.name:
        raise Invalid("a tenant has a name")
    session.add(t)
    for a in session.exec(select(Account).where(Account.tenant_id == t.id)).all():
        if a.name != t.name:       # what pages and new receipts show
            a.name = t.name
            session.add(a)
    session.flush()
    audit.record(session, actor, "tenant.update", "tenant", t.id, property_id=t.property_id, before=before,
                 after=_snapshot(session, t))
    return t


def list_tenants(session, actor, property_id=None, q=None, limit=200):
    query = scoped(select(Tenant), actor, Tenant.property_id)
    if actor.is_tenant:
        query = query.where(Tenant.id == actor.tenant_id)
    if property_id is not None:
        query = query.where(Tenant.property_id == property_id)
    if q:
        like = "%" + q.strip() + "%"
        query = query.where(or_(Tenant.name.ilike(like), Tenant.phone.ilike(like)))
    return session.exec(query.order_by(Tenant.name, Tenant.id).limit(limit)).all()


def search(session, actor, q, property_id=None, limit=MAX_HITS):
    """The cashier's search: tenants' accounts whose unit, tenant name,
    phone or meter id contains `q` (any case). -> [hit dicts]: account,
    tenant (masked), units, meters, balance, open or closed."""
    q = (q or "").strip()
    if not q:
        return []
    like = "%" + q + "%"
    by_unit = (select(Occupancy.account_id).join(Unit, Unit.id == Occupancy.unit_id)
               .where(Unit.name.ilike(like), Occupancy.end.is_(None)))
    by_meter = select(Meter.account_id).where(Meter.meter_id.ilike(like), Meter.account_id.is_not(None))
    by_tenant = select(Tenant.id).where(or_(Tenant.name.ilike(like), Tenant.phone.ilike(like)))
    query = scoped(select(Account), actor, Account.property_id).where(
        Account.kind == KIND_TENANT,
        or_(Account.id.in_(by_unit), Account.id.in_(by_meter), Account.tenant_id.in_(by_tenant)))
    if property_id is not None:
        query = query.where(Account.property_id == property_id)
    accounts = session.exec(query.order_by(Account.status.desc(), Account.name, Account.id).limit(limit)).all()
    return [hit(session, a) for a in accounts]


def hit(session, a):
    """An account as the desk shows it."""
    from .accounts import units_of
    t = session.get(Tenant, a.tenant_id) if a.tenant_id else None
    meters = session.exec(select(Meter).where(Meter.account_id == a.id).order_by(Meter.meter_id)).all()
    return {"account_id": a.id, "property_id": a.property_id, "name": a.name, "status": a.status,
            "balance_mu": a.balance_mu, "balance": format_money(a.balance_mu),
            "low_balance": a.balance_mu < a.low_balance_threshold_mu,
            "phone": t.phone if t else "", "tenant_id": a.tenant_id,
            "units": [{"id": u.id, "name": u.name} for u in units_of(session, a.id)],
            "meters": [{"id": m.id, "meter_id": m.meter_id, "relay_closed": m.relay_closed,
                        "last_energy_wh": m.last_energy_wh} for m in meters]}
