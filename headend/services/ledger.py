"""Money moves only through the ledger. Every entry updates the account's
cached balance in the same statement-level atomic UPDATE, so the cache always
equals the sum of the ledger (also with several writers on PostgreSQL).
Entries are never edited or deleted (the table refuses it): a correction is a
new entry linked to the one it corrects."""
from sqlalchemy import func, update
from sqlmodel import select

from ..core.db import is_postgres
from ..models import Account, Concentrator, LedgerEntry, Meter, now_s
from ..models.ledger import LEDGER_KINDS, RECHARGE, REVERSAL, SOURCES
from .errors import Invalid, NotFound


def post(session, account_id, kind, amount_mu, *, user_id=None, concentrator_id=None, source="api",
         reference="", note="", related_entry_id=None, created=None):
    """Add a ledger entry and update the cached balance. Does not commit.
    Every entry names who caused it: a user (user_id) or a board
    (concentrator_id). Account objects already loaded in the session keep
    their old balance_mu: use the entry's balance_after_mu."""
    if kind not in LEDGER_KINDS:
        raise Invalid("unknown ledger kind %r" % kind)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int):
        raise Invalid("amount_mu must be an int")
    if user_id is None and concentrator_id is None:
        raise Invalid("every ledger entry names a user or a board")
    if source not in SOURCES:
        raise Invalid("unknown source %r" % source)
    lock_boards_of(session, account_id)
    values = {"balance_mu": Account.balance_mu + amount_mu}
    if kind in (RECHARGE, REVERSAL):
        # the meter-side recharge count (`top` of credit pushes), moved with the balance
        values["recharge_count"] = Account.recharge_count + (1 if kind == RECHARGE else -1)
    row = session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(**values)
        .returning(Account.balance_mu)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        raise NotFound("no account %r" % account_id)
    entry = LedgerEntry(account_id=account_id, kind=kind, amount_mu=amount_mu, balance_after_mu=row[0],
                        user_id=user_id, concentrator_id=concentrator_id, source=source,
                        related_entry_id=related_entry_id, reference=reference[:200], note=note[:500],
                        created=created or now_s())
    session.add(entry)
    return entry


def lock_boards_of(session, account_id):
    """PostgreSQL: lock the rows of the boards the account has meters on,
    in id order, before its balance: the order the ingest takes them in
    (boards, then accounts). The other way round, a sale (account, then the
    board's downlink counter for its credit) and a worker billing the same
    board deadlocked. SQLite locks the whole database: nothing to do."""
    if is_postgres(session):
        session.execute(select(Concentrator.id).where(Concentrator.id.in_(
            select(Meter.concentrator_id).where(Meter.account_id == account_id))).order_by(Concentrator.id)
            .with_for_update()).all()


def ledger_sum(session, account_id):
    return session.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount_mu), 0)).where(LedgerEntry.account_id == account_id)
    ).one()


def balance(session, account_id):
    return session.exec(select(Account.balance_mu).where(Account.id == account_id)).one()


def check_cache(session):
    """Accounts whose cached balance differs from their ledger sum -> list of
    (account_id, cached, ledger_sum). Empty when consistent."""
    sums = dict(session.exec(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_mu)).group_by(LedgerEntry.account_id)
    ).all())
    bad = []
    for acc_id, cached in session.exec(select(Account.id, Account.balance_mu)).all():
        s = int(sums.get(acc_id, 0) or 0)
        if s != cached:
            bad.append((acc_id, cached, s))
    return bad
