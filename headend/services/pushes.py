"""What the boards must hear after a change: a `credit` per meter (balance
at a reference reading) and the property's `tariff`. Built sealed; people's
changes go through the outbox (queue_*), the ingest publishes its own
replies directly."""
from sqlmodel import select

from concentrator import protocol

from ..models import Account, Concentrator, Meter
from ..transport import downlink, outbox


# A board bills its own meters with the same tariff code as the head-end
# (concentrator/credit.py): after a reading the head-end billed exactly as
# the board did, the board's local credit is already right, and a credit
# would only confirm it. The ingest sends one when the board cannot know the
# balance (a first reference, a different charge, another meter of the same
# account, a reading without the board's charge) and, to repair one lost on
# the way, at least once per CREDIT_REFRESH_S per meter (at an hour
# boundary shifted per board, so a fleet's refreshes do not come together).
CREDIT_REFRESH_S = 3600


def refresh_due(conc_id, prev_ts, ts):
    """Did a meter's billed readings cross its board's refresh boundary
    between prev_ts and ts (None: never billed before)?"""
    if not prev_ts or not ts:
        return True
    off = (conc_id * 977) % CREDIT_REFRESH_S
    return (prev_ts + off) // CREDIT_REFRESH_S != (ts + off) // CREDIT_REFRESH_S


def credit_fields(meter, balance_mu, top=0):
    """{"m", "bal", "e", "c", "top"} (docs/protocol.md): `c` is the board's
    charged_mu in the last billed reading, absent before there is one."""
    d = {"m": meter.index, "bal": int(balance_mu), "e": int(meter.billed_energy_wh)}
    if meter.board_charged_mu is not None:
        d["c"] = int(meter.board_charged_mu)
    d["top"] = int(top)
    return d


def recharge_counts(session, account_ids):
    """account id -> number of sales less reversals (`top`, the meter-side
    recharge count a fraud check compares): Account.recharge_count, kept by
    services.ledger.post, not a count over the ledger."""
    if not account_ids:
        return {}
    return {a: int(n) for a, n in session.exec(select(Account.id, Account.recharge_count)
                                               .where(Account.id.in_(sorted(account_ids)))).all()}


def credit_for_meters(session, meters, ts=None):
    """A `credit` message for each meter that has an account and a billed
    reference reading (without one the board could not use the balance)."""
    meters = [m for m in meters if m.account_id is not None and m.billed_energy_wh is not None]
    if not meters:
        return []
    ids = sorted({m.account_id for m in meters})
    bal = dict(session.exec(select(Account.id, Account.balance_mu).where(Account.id.in_(ids))).all())
    top = recharge_counts(session, ids)
    by_conc = {}
    for m in sorted(meters, key=lambda m: (m.concentrator_id, m.index)):
        by_conc.setdefault(m.concentrator_id, []).append(
            (protocol.CREDIT, credit_fields(m, bal[m.account_id], top.get(m.account_id, 0))))
    out = []
    for conc_id, items in by_conc.items():
        out += downlink.seal_many(session, session.get(Concentrator, conc_id), items, ts=ts)
    return out


def credit_for_accounts(session, account_ids, ts=None):
    """Credit messages for every meter of these accounts (any concentrator)."""
    if not account_ids:
        return []
    meters = session.exec(select(Meter).where(Meter.account_id.in_(sorted(account_ids)))).all()
    return credit_for_meters(session, meters, ts=ts)


def tariff_for_property(session, property_id, ts=None):
    """A `tariff` message with the property's versions for each of its boards."""
    from .tariffs import property_versions
    versions = property_versions(session, property_id)
    if not versions:
        return []
    concs = session.exec(select(Concentrator).where(Concentrator.property_id == property_id)
                         .order_by(Concentrator.id)).all()
    return [downlink.tariff_message(session, c, versions, ts=ts) for c in concs]


def queue_credit(session, account_ids, ts=None):
    """Queue the new credit of these accounts for their boards; -> count."""
    return len(outbox.queue(session, credit_for_accounts(session, account_ids, ts=ts)))


def queue_credit_for_meters(session, meters, ts=None):
    return len(outbox.queue(session, credit_for_meters(session, meters, ts=ts)))


def queue_tariff(session, property_id, ts=None):
    return len(outbox.queue(session, tariff_for_property(session, property_id, ts=ts)))
