"""Selling credit (售电): the one service every entry point calls (dashboard,
API, CLI, payment callbacks). A sale is a `recharge` ledger entry naming the
person who took the money, and the new credit is always queued for the
account's boards in the same transaction."""
from ..core import permissions as P
from ..core.money import MAX_AMOUNT_MU, format_exact
from ..models.ledger import RECHARGE
from . import audit, ledger, pushes
from .accounts import get_account
from .errors import Invalid


class Sale:
    def __init__(self, entry, pushed):
        self.entry = entry
        self.pushed = pushed


def sell(session, actor, account_id, amount_mu, note="", push=True):
    """Sell `amount_mu` of credit to an account. -> Sale (the ledger entry
    and the number of credit messages queued)."""
    a = get_account(session, actor, account_id)
    actor.check(P.MONEY_SELL, a.property_id)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int) or amount_mu <= 0:
        raise Invalid("a sale is a positive amount")
    if amount_mu > MAX_AMOUNT_MU:
        raise Invalid("amount too large")
    if a.status != "open":
        raise Invalid("account %s is closed" % a.id)
    entry = ledger.post(session, a.id, RECHARGE, amount_mu, user_id=actor.user_id, source=actor.source,
                        note=note)
    session.flush()
    audit.record(session, actor, "money.sale", "ledger_entry", entry.id, property_id=a.property_id,
                 before={"balance_mu": entry.balance_after_mu - amount_mu},
                 after={"account_id": a.id, "amount": format_exact(amount_mu),
                        "balance_mu": entry.balance_after_mu})
    pushed = pushes.queue_credit(session, {a.id}) if push else 0
    return Sale(entry, pushed)
