"""Selling credit (售电): the one service every entry point calls (dashboard,
API, CLI, payment callbacks). A sale is a `recharge` ledger entry naming the
person who took the money, with its numbered receipt (payment method and the
payment's own reference); an idempotency key makes a repeated request (a
double click, a retry, a provider's second notification) sell once. The new
credit is always queued for the account's boards in the same transaction."""
from ..core import permissions as P
from ..core.money import MAX_AMOUNT_MU, MU_PER_CENT, format_exact
from ..models.receipt import METHODS, SALE
from . import audit, pushes, receipts
from .accounts import get_account
from .errors import Invalid


class Sale:
    def __init__(self, movement, pushed):
        self.entry = movement.entry
        self.receipt = movement.receipt
        self.replayed = movement.replayed
        self.pushed = pushed


def check_method(method):
    if method not in METHODS:
        raise Invalid("payment method %r: one of %s" % (method, ", ".join(METHODS)))


def sell(session, actor, account_id, amount_mu, note="", push=True, method="cash", reference="",
         idempotency_key=None, now=None):
    """Sell `amount_mu` of credit to an account. -> Sale (the ledger entry,
    the receipt, whether it replays an earlier request with the same key,
    and the number of credit messages queued)."""
    a = get_account(session, actor, account_id)
    actor.check(P.MONEY_SELL, a.property_id)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int) or amount_mu <= 0:
        raise Invalid("a sale is a positive amount")
    if amount_mu > MAX_AMOUNT_MU:
        raise Invalid("amount too large")
    if amount_mu % MU_PER_CENT:
        raise Invalid("a sale is in whole fen (cents)")
    check_method(method)
    if a.status != "open":
        raise Invalid("account %s is closed" % a.id)
    mv = receipts.record(session, actor, a, SALE, amount_mu, method, reference=reference, note=note,
                         key=idempotency_key, now=now)
    if mv.replayed:
        return Sale(mv, 0)
    audit.record(session, actor, "money.sale", "ledger_entry", mv.entry.id, property_id=a.property_id,
                 before={"balance_mu": mv.entry.balance_after_mu - amount_mu},
                 after={"account_id": a.id, "amount": format_exact(amount_mu), "method": method,
                        "receipt": mv.receipt.number, "balance_mu": mv.entry.balance_after_mu})
    pushed = pushes.queue_credit(session, {a.id}) if push else 0
    return Sale(mv, pushed)
