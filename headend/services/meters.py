"""Meters as staff see them: account, balance, last reading, relay, board;
one page at a time, filtered and searched in the database."""
import time

from sqlalchemy import and_, false, or_
from sqlmodel import select

from ..core.money import format_kwh, format_money
from ..core.paging import Paging, paginate, search
from ..models import Account, Concentrator, Meter, MeterBusErrors, Unit
from .actor import scoped

# ?state= of the staff list
STATES = ("low_balance", "relay_open", "offline")


def meter_query(actor, offline_after_s, now, property_id=None, concentrator=None, state=None, q=""):
    """(Meter, Concentrator, Account, unit name) rows the actor sees, in board order."""
    query = (select(Meter, Concentrator, Account, Unit.name)
             .join(Concentrator, Meter.concentrator_id == Concentrator.id)
             .outerjoin(Account, Meter.account_id == Account.id)
             .outerjoin(Unit, Meter.unit_id == Unit.id))
    query = scoped(query, actor, Concentrator.property_id)
    if property_id is not None:
        query = query.where(Concentrator.property_id == property_id)
    if concentrator:
        query = query.where(Concentrator.dev == concentrator)
    if state == "low_balance":
        query = query.where(Account.balance_mu < Account.low_balance_threshold_mu)
    elif state == "relay_open":
        query = query.where(Meter.relay_closed == false())
    elif state == "offline":
        query = query.where(or_(Concentrator.online == false(), Concentrator.last_seen.is_(None),
                                Concentrator.last_seen < now - offline_after_s,
                                and_(Meter.online.is_not(None), Meter.online == false())))
    query = search(query, q, Meter.meter_id, Concentrator.dev, Account.name, Unit.name)
    return query.order_by(Concentrator.id, Meter.index)


def meter_rows(session, actor, offline_after_s, bus_errors=None, now=None, property_id=None, paging=None,
               concentrator=None, state=None):
    """A core.paging.Page of meter rows (dicts, MeterRow's fields); paging
    None: the first DEFAULT_LIMIT."""
    now = int(now or time.time())
    paging = paging or Paging()
    page = paginate(session, meter_query(actor, offline_after_s, now, property_id, concentrator, state, paging.q),
                    paging, scalars=False)
    errs = bus_errors if bus_errors is not None else bus_errors_of(session, [m.id for m, _c, _a, _u in page.items])
    rows = []
    for m, c, a, unit in page.items:
        c_online = bool(c.online and c.last_seen is not None and now - c.last_seen <= offline_after_s)
        rows.append({
            "id": m.id, "meter_id": m.meter_id, "model": m.model, "index": m.index,
            "concentrator": c.dev, "concentrator_online": c_online, "property_id": c.property_id,
            "unit_id": m.unit_id, "unit": unit,
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
    page.items = rows
    return page


def bus_errors_of(session, meter_ids):
    """meter pk -> {"timeouts", "crc", "wrong_address", "exceptions",
    "offline", "ts"}: the counters of the board's last status (one query)."""
    if not meter_ids:
        return {}
    rows = session.exec(select(MeterBusErrors).where(MeterBusErrors.meter_id.in_(sorted(meter_ids)))).all()
    return {r.meter_id: {"timeouts": r.timeouts, "crc": r.crc, "wrong_address": r.wrong_address,
                         "exceptions": r.exceptions, "offline": r.offline, "ts": r.ts} for r in rows}
