"""Sealing downlink messages: device key + a per-concentrator counter that is
persisted (allocated inside the caller's transaction)."""
from sqlalchemy import update
from sqlmodel import select

from concentrator import protocol

from .models import Account, Concentrator, Meter, now_s


def next_n(session, conc_id):
    row = session.execute(
        update(Concentrator)
        .where(Concentrator.id == conc_id)
        .values(last_down_n=Concentrator.last_down_n + 1)
        .returning(Concentrator.last_down_n)
    ).first()
    return int(row[0])


def seal(session, conc, kind, ts=None, **fields):
    """-> (topic, payload bytes) for concentrator `conc` (model instance)."""
    n = next_n(session, conc.id)
    body = protocol.message(conc.dev, n, kind, int(ts if ts is not None else now_s()), **fields)
    return protocol.topic_down(conc.dev), protocol.seal(body, protocol.key_from_hex(conc.key_hex))


def credit_fields(meter, balance_mu):
    return {"m": meter.index, "bal": int(balance_mu),
            "e": int(meter.billed_energy_wh)}


def credit_for_meters(session, meters, ts=None):
    """A `credit` message for each meter that has an account and a billed
    reference reading (without one the board could not use the balance)."""
    out = []
    concs = {}
    for m in sorted(meters, key=lambda m: (m.concentrator_id, m.index)):
        if m.account_id is None or m.billed_energy_wh is None:
            continue
        bal = session.exec(select(Account.balance_mu).where(Account.id == m.account_id)).one()
        conc = concs.get(m.concentrator_id)
        if conc is None:
            conc = concs[m.concentrator_id] = session.get(Concentrator, m.concentrator_id)
        out.append(seal(session, conc, protocol.CREDIT, ts=ts, **credit_fields(m, bal)))
    return out


def credit_for_accounts(session, account_ids, ts=None):
    """Credit messages for every meter of these accounts (any concentrator)."""
    if not account_ids:
        return []
    meters = session.exec(select(Meter).where(Meter.account_id.in_(sorted(account_ids)))).all()
    return credit_for_meters(session, meters, ts=ts)
