"""Sealing downlink messages: device key + a per-concentrator counter that is
persisted (allocated inside the caller's transaction)."""
from sqlalchemy import update
from sqlmodel import select

from concentrator import protocol

from .models import Account, Concentrator, Meter, now_s


def next_n(session, conc_id, count=1):
    """Reserve `count` downlink counters; returns the first one."""
    row = session.execute(
        update(Concentrator)
        .where(Concentrator.id == conc_id)
        .values(last_down_n=Concentrator.last_down_n + count)
        .returning(Concentrator.last_down_n)
        .execution_options(synchronize_session=False)
    ).first()
    return int(row[0]) - count + 1


def _seal_n(conc, n, kind, ts, fields):
    body = protocol.message(conc.dev, n, kind, int(ts if ts is not None else now_s()), **fields)
    return protocol.topic_down(conc.dev), protocol.seal(body, protocol.key_from_hex(conc.key_hex))


def seal(session, conc, kind, ts=None, **fields):
    """-> (topic, payload bytes) for concentrator `conc` (model instance)."""
    return _seal_n(conc, next_n(session, conc.id), kind, ts, fields)


def seal_many(session, conc, items, ts=None):
    """items: [(kind, fields dict)] for one concentrator -> sealed messages
    with consecutive counters (one database round trip)."""
    if not items:
        return []
    n = next_n(session, conc.id, len(items))
    return [_seal_n(conc, n + i, kind, ts, fields) for i, (kind, fields) in enumerate(items)]


def credit_fields(meter, balance_mu):
    return {"m": meter.index, "bal": int(balance_mu),
            "e": int(meter.billed_energy_wh)}


def credit_for_meters(session, meters, ts=None):
    """A `credit` message for each meter that has an account and a billed
    reference reading (without one the board could not use the balance)."""
    meters = [m for m in meters if m.account_id is not None and m.billed_energy_wh is not None]
    if not meters:
        return []
    bal = dict(session.exec(select(Account.id, Account.balance_mu)
                            .where(Account.id.in_(sorted({m.account_id for m in meters})))).all())
    by_conc = {}
    for m in sorted(meters, key=lambda m: (m.concentrator_id, m.index)):
        by_conc.setdefault(m.concentrator_id, []).append((protocol.CREDIT, credit_fields(m, bal[m.account_id])))
    out = []
    for conc_id, items in by_conc.items():
        out += seal_many(session, session.get(Concentrator, conc_id), items, ts=ts)
    return out


def credit_for_accounts(session, account_ids, ts=None):
    """Credit messages for every meter of these accounts (any concentrator)."""
    if not account_ids:
        return []
    meters = session.exec(select(Meter).where(Meter.account_id.in_(sorted(account_ids)))).all()
    return credit_for_meters(session, meters, ts=ts)
