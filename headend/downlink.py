"""Sealing downlink messages: device key + a per-concentrator counter that is
persisted (allocated inside the caller's transaction). While a rekey is in
progress (Concentrator.key_next_hex) downlinks use the new key; the rekey
command itself is sealed with the old one (old_key=True)."""
from sqlalchemy import func, update
from sqlmodel import select

from concentrator import protocol

from .models import Account, Concentrator, LedgerEntry, Meter, now_s

COMMAND_TTL_S = 300


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


def down_key_hex(conc, old_key=False):
    if conc.key_next_hex and not old_key:
        return conc.key_next_hex
    return conc.key_hex


def _seal_n(conc, n, kind, ts, fields, old_key=False):
    body = protocol.message(conc.dev, n, kind, int(ts if ts is not None else now_s()), **fields)
    return protocol.topic_down(conc.dev), protocol.seal(body, protocol.key_from_hex(down_key_hex(conc, old_key)))


def seal(session, conc, kind, ts=None, old_key=False, **fields):
    """-> (topic, payload bytes) for concentrator `conc` (model instance)."""
    return _seal_n(conc, next_n(session, conc.id), kind, ts, fields, old_key)


def command(session, conc, op, ts=None, old_key=False, **fields):
    """A signed `cmd` (expires COMMAND_TTL_S after ts)."""
    ts = int(ts if ts is not None else now_s())
    return seal(session, conc, protocol.COMMAND, ts=ts, old_key=old_key, exp=ts + COMMAND_TTL_S, op=op, **fields)


def rekey_command(session, conc, ts=None):
    """The pending rekey command again (sealed with the old key)."""
    return command(session, conc, "rekey", ts=ts, old_key=True, nonce=conc.rekey_nonce)


def tariff_message(session, conc, versions, ts=None):
    return seal(session, conc, protocol.TARIFF, ts=ts, spec=list(versions))


def seal_many(session, conc, items, ts=None):
    """items: [(kind, fields dict)] for one concentrator -> sealed messages
    with consecutive counters (one database round trip)."""
    if not items:
        return []
    n = next_n(session, conc.id, len(items))
    return [_seal_n(conc, n + i, kind, ts, fields) for i, (kind, fields) in enumerate(items)]


def credit_fields(meter, balance_mu, top=0):
    """{"m", "bal", "e", "c", "top"} (docs/protocol.md): `c` is the board's
    charged_mu in the last billed reading, absent before there is one."""
    d = {"m": meter.index, "bal": int(balance_mu), "e": int(meter.billed_energy_wh)}
    if meter.board_charged_mu is not None:
        d["c"] = int(meter.board_charged_mu)
    d["top"] = int(top)
    return d


def recharge_counts(session, account_ids):
    """account id -> number of recharge ledger entries (`top`)."""
    if not account_ids:
        return {}
    rows = session.exec(select(LedgerEntry.account_id, func.count())
                        .where(LedgerEntry.account_id.in_(sorted(account_ids)), LedgerEntry.kind == "recharge")
                        .group_by(LedgerEntry.account_id)).all()
    return {a: int(n) for a, n in rows}


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
        out += seal_many(session, session.get(Concentrator, conc_id), items, ts=ts)
    return out


def credit_for_accounts(session, account_ids, ts=None):
    """Credit messages for every meter of these accounts (any concentrator)."""
    if not account_ids:
        return []
    meters = session.exec(select(Meter).where(Meter.account_id.in_(sorted(account_ids)))).all()
    return credit_for_meters(session, meters, ts=ts)


def tariff_for_site(session, site_id, ts=None):
    """A `tariff` message with the site's versions for every concentrator of
    the site (after a tariff change)."""
    from .provision import site_versions
    versions = site_versions(session, site_id)
    if not versions:
        return []
    concs = session.exec(select(Concentrator).where(Concentrator.site_id == site_id).order_by(Concentrator.id)).all()
    return [tariff_message(session, c, versions, ts=ts) for c in concs]
