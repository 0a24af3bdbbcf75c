"""Meters as staff see them: account, balance, last reading, relay, board."""
import time

from sqlmodel import select

from ..core.money import format_kwh, format_money
from ..models import Account, Concentrator, Meter, Unit
from .actor import scoped


def meter_rows(session, actor, offline_after_s, bus_errors=None, now=None, property_id=None):
    now = int(now or time.time())
    cq = scoped(select(Concentrator), actor, Concentrator.property_id)
    if property_id is not None:
        cq = cq.where(Concentrator.property_id == property_id)
    concs = {c.id: c for c in session.exec(cq).all()}
    if not concs:
        return []
    meters = session.exec(select(Meter).where(Meter.concentrator_id.in_(sorted(concs)))
                          .order_by(Meter.concentrator_id, Meter.index)).all()
    acc_ids = sorted({m.account_id for m in meters if m.account_id is not None})
    accounts = {a.id: a for a in session.exec(select(Account).where(Account.id.in_(acc_ids)))} if acc_ids else {}
    unit_ids = sorted({m.unit_id for m in meters if m.unit_id is not None})
    units = dict(session.exec(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids))).all()) if unit_ids else {}
    errs = bus_errors or {}
    rows = []
    for m in meters:
        c = concs[m.concentrator_id]
        a = accounts.get(m.account_id)
        c_online = bool(c.online and c.last_seen is not None and now - c.last_seen <= offline_after_s)
        rows.append({
            "id": m.id, "meter_id": m.meter_id, "model": m.model, "index": m.index,
            "concentrator": c.dev, "concentrator_online": c_online, "property_id": c.property_id,
            "unit_id": m.unit_id, "unit": units.get(m.unit_id),
            "account_id": m.account_id, "tenant": a.name if a else None,
            "balance_mu": a.balance_mu if a else None,
            "balance": format_money(a.balance_mu) if a else None,
            "low_balance": bool(a and a.balance_mu < a.low_balance_threshold_mu),
            "last_energy_wh": m.last_energy_wh, "last_kwh": format_kwh(m.last_energy_wh),
            "last_power_w": m.last_power_w, "last_reading_ts": m.last_ts,
            "billed_energy_wh": m.billed_energy_wh,
            "relay_closed": m.relay_closed, "meter_online": m.online,
            "local_credit_mu": m.local_credit_mu,
            "last_seen": c.last_seen,
            "bus_errors": errs.get(m.id),
        })
    return rows
