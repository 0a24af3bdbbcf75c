"""Receipts (models.receipt) and the one way a desk movement of money is
recorded: record() posts the ledger entry and issues its numbered receipt in
the caller's transaction.

Numbering is gapless per property: the counter row is locked first (SELECT
... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
writers) and advanced in the same transaction, so a movement that rolls back
takes no number. The same lock serialises the day end (services.dayend), so
a receipt either counts in a day that is still open or sees it closed.

The business day of a receipt is its local calendar day, or the next open
day when that one is closed already."""
import time

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from ..core.db import is_postgres
from ..core.money import format_money, local_date, next_day
from ..models import Account, CashDay, LedgerEntry, Meter, Property, Receipt, ReceiptCounter, User
from ..models.ledger import ADJUSTMENT as L_ADJUSTMENT
from ..models.ledger import RECHARGE, REFUND as L_REFUND, REVERSAL as L_REVERSAL
from ..models.receipt import ADJUSTMENT, REFUND, REVERSAL, SALE
from . import ledger, property_settings
from .errors import Conflict, NotFound

LEDGER_KIND = {SALE: RECHARGE, REVERSAL: L_REVERSAL, REFUND: L_REFUND, ADJUSTMENT: L_ADJUSTMENT}


def receipt_no(prefix, number):
    """The receipt number as printed: prefix + six digits ("R000123")."""
    return "%s%06d" % (prefix or "", number)


def lock(session, property_id):
    """Take the property's receipt lock for this transaction (creating the
    counter row on first use)."""
    dialect = postgresql if is_postgres(session) else sqlite
    session.execute(dialect.insert(ReceiptCounter).values(property_id=property_id, last_number=0)
                    .on_conflict_do_nothing(index_elements=["property_id"]))
    return session.exec(select(ReceiptCounter).where(ReceiptCounter.property_id == property_id)
                        .with_for_update()).one()


def _next_number(session, property_id):
    row = session.execute(update(ReceiptCounter).where(ReceiptCounter.property_id == property_id)
                          .values(last_number=ReceiptCounter.last_number + 1)
                          .returning(ReceiptCounter.last_number)
                          .execution_options(synchronize_session=False)).one()
    return int(row[0])


def tz_of(session, property_id):
    p = session.get(Property, property_id)
    return p.tz_offset_s if p is not None else 28800


def closed_days(session, property_id, since=None):
    q = select(CashDay.day).where(CashDay.property_id == property_id)
    if since is not None:
        q = q.where(CashDay.day >= since)
    return set(session.exec(q).all())


def open_day(session, property_id, now=None):
    """The business day a movement made at `now` counts in: its local date,
    or the first later day that is not closed."""
    day = local_date(int(now if now is not None else time.time()), tz_of(session, property_id))
    closed = closed_days(session, property_id, since=day)
    while day in closed:
        day = next_day(day)
    return day


def by_key(session, property_id, key):
    if not key:
        return None
    return session.exec(select(Receipt).where(Receipt.property_id == property_id,
                                              Receipt.idempotency_key == key)).first()


class Movement:
    """What record() did: the ledger entry, its receipt, and whether it is
    the earlier answer to a repeated idempotency key (nothing new happened)."""

    def __init__(self, entry, receipt, replayed=False):
        self.entry = entry
        self.receipt = receipt
        self.replayed = replayed


def _replay(session, receipt, kind, account_id, amount_mu, method):
    if (receipt.kind, receipt.account_id, receipt.amount_mu, receipt.method) != (kind, account_id, amount_mu, method):
        raise Conflict("idempotency key already used for another movement (receipt %s)" % receipt.number)
    return Movement(ledger_entry(session, receipt), receipt, replayed=True)


def ledger_entry(session, receipt):
    return session.get(LedgerEntry, receipt.ledger_entry_id)


def snapshot(session, account):
    """What a receipt prints about the account: tenant, units, meters."""
    from .accounts import units_of
    units = ", ".join(u.name for u in units_of(session, account.id))
    meters = ", ".join(session.exec(select(Meter.meter_id).where(Meter.account_id == account.id)
                                    .order_by(Meter.meter_id)).all())
    return {"tenant_name": account.name[:200], "unit_names": units[:300], "meter_ids": meters[:300]}


def record(session, actor, account, kind, amount_mu, method, reference="", reason="", note="",
           reverses=None, key=None, now=None):
    """Post `amount_mu` (signed, as the ledger: + credit) of `kind` to the
    account and issue its receipt. With an idempotency key already used:
    the earlier movement (replayed=True), or Conflict if it was another one.
    Does not audit or push (the caller knows what the action was)."""
    lock(session, account.property_id)
    earlier = by_key(session, account.property_id, key)
    if earlier is not None:
        return _replay(session, earlier, kind, account.id, amount_mu, method)
    now = int(now if now is not None else time.time())
    entry = ledger.post(session, account.id, LEDGER_KIND[kind], amount_mu, user_id=actor.user_id,
                        source=actor.source, reference=reference, note=(note or reason),
                        related_entry_id=reverses.ledger_entry_id if reverses is not None else None, created=now)
    session.flush()
    r = Receipt(property_id=account.property_id, number=_next_number(session, account.property_id), kind=kind,
                account_id=account.id, ledger_entry_id=entry.id, amount_mu=amount_mu, method=method,
                reference=reference[:100], reason=reason[:500],
                reverses_receipt_id=reverses.id if reverses is not None else None, user_id=actor.user_id,
                source=actor.source, business_day=open_day(session, account.property_id, now), created=now,
                idempotency_key=key, balance_after_mu=entry.balance_after_mu, **snapshot(session, account))
    session.add(r)
    session.flush()
    return Movement(entry, r)


# ------------------------------------------------------------------ reading
def get_receipt(session, actor, receipt_id):
    r = session.get(Receipt, receipt_id)
    if r is None:
        raise NotFound("no receipt %s" % receipt_id)
    if actor.is_tenant:
        a = session.get(Account, r.account_id)
        if a is None or a.tenant_id != actor.tenant_id:
            raise NotFound("no receipt %s" % receipt_id)
    elif not actor.sees(r.property_id):
        raise NotFound("no receipt %s" % receipt_id)
    return r


def reversal_of(session, receipt_id):
    return session.exec(select(Receipt).where(Receipt.reverses_receipt_id == receipt_id)).first()


def query(actor, property_id=None, day=None, user_id=None, account_id=None, kind=None):
    """The receipts an actor may read (a tenant: its own accounts'), newest first."""
    from .actor import scoped
    q = select(Receipt)
    if actor.is_tenant:
        q = q.where(Receipt.account_id.in_(select(Account.id).where(Account.tenant_id == actor.tenant_id)))
    else:
        q = scoped(q, actor, Receipt.property_id)
    for col, val in ((Receipt.property_id, property_id), (Receipt.business_day, day),
                     (Receipt.user_id, user_id), (Receipt.account_id, account_id), (Receipt.kind, kind)):
        if val is not None:
            q = q.where(col == val)
    return q.order_by(Receipt.id.desc())


def publics(session, receipts):
    """Receipts -> dicts (models.receipt.ReceiptPublic), with the printed
    number, the cashier's name and the reversal, in a few queries."""
    if not receipts:
        return []
    ids = [r.id for r in receipts]
    users = dict(session.exec(select(User.id, User.display_name).where(
        User.id.in_(sorted({r.user_id for r in receipts})))).all())
    reversed_by = dict(session.exec(select(Receipt.reverses_receipt_id, Receipt.id)
                                    .where(Receipt.reverses_receipt_id.in_(ids))).all())
    prefixes = {pid: property_settings.of(session, pid).receipt_prefix for pid in {r.property_id for r in receipts}}
    out = []
    for r in receipts:
        d = r.model_dump(exclude={"idempotency_key"})
        d.update(receipt_no=receipt_no(prefixes[r.property_id], r.number), amount=format_money(r.amount_mu),
                 balance_after=format_money(r.balance_after_mu), cashier=users.get(r.user_id, ""),
                 reversed_by_receipt_id=reversed_by.get(r.id))
        out.append(d)
    return out


def public(session, receipt):
    return publics(session, [receipt])[0]


def document(session, actor, receipt_id):
    """Everything a printed receipt shows (web.receipt_doc)."""
    r = get_receipt(session, actor, receipt_id)
    d = public(session, r)
    p = session.get(Property, r.property_id)
    prefix = property_settings.of(session, r.property_id).receipt_prefix
    reverses = session.get(Receipt, r.reverses_receipt_id) if r.reverses_receipt_id else None
    rev = reversal_of(session, r.id)
    return {"receipt": d, "property": p.name, "tz_offset_s": p.tz_offset_s,
            "reverses_no": receipt_no(prefix, reverses.number) if reverses else None,
            "reversed_by_no": receipt_no(prefix, rev.number) if rev else None}
