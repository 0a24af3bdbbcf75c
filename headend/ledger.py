"""Money moves only through the ledger. Every entry updates the account's
cached balance in the same statement-level atomic UPDATE, so the cache always
equals the sum of the ledger (also with several writers on PostgreSQL)."""
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, update
from sqlmodel import select

from .models import LEDGER_KINDS, Account, LedgerEntry, now_s

MU_PER_UNIT = 10000


class LedgerError(ValueError):
    pass


def parse_amount(text):
    """Exact decimal string (currency units, up to 4 decimals) -> int mu."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise LedgerError("amount must be a decimal string such as \"12.50\"")
    s = text.strip()
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise LedgerError("amount %r is not a decimal number" % text)
    if not d.is_finite():
        raise LedgerError("amount %r is not a finite number" % text)
    mu = d * MU_PER_UNIT
    if mu != mu.to_integral_value():
        raise LedgerError("amount %r has more than 4 decimals (1 mu = 0.0001)" % text)
    return int(mu)


def format_mu(mu):
    """int mu -> "1234.5600" style string (exact)."""
    sign = "-" if mu < 0 else ""
    mu = abs(int(mu))
    return "%s%d.%04d" % (sign, mu // MU_PER_UNIT, mu % MU_PER_UNIT)


def post(session, account_id, kind, amount_mu, actor, reference="", note="", created=None):
    """Add a ledger entry and update the cached balance. Does not commit.
    Account objects already loaded in the session keep their old
    balance_mu: use the entry's balance_after_mu (or refresh)."""
    if kind not in LEDGER_KINDS:
        raise LedgerError("unknown ledger kind %r" % kind)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int):
        raise LedgerError("amount_mu must be an int")
    if not actor:
        raise LedgerError("every ledger entry needs an actor")
    row = session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(balance_mu=Account.balance_mu + amount_mu)
        .returning(Account.balance_mu)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        raise LedgerError("no account %r" % account_id)
    entry = LedgerEntry(account_id=account_id, kind=kind, amount_mu=amount_mu,
                        balance_after_mu=row[0], actor=str(actor), reference=reference,
                        note=note, created=created or now_s())
    session.add(entry)
    return entry


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
