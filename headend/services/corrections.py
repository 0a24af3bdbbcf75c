"""Corrections: nothing in the ledger is ever edited or deleted; a mistake is
put right by a new, linked, numbered movement.

- reversal (冲正): cancels a whole sale, linked to it; the cashier who made
  the sale may reverse it on the same (open) business day, a manager at any
  time (the reversal then counts in the current open day);
- refund (退费): pays remaining credit back (at move-out), at most the balance;
- adjustment (调账): a manager's signed correction with a mandatory reason.
"""
from ..core import permissions as P
from ..core.money import MU_PER_CENT, format_exact
from ..models.receipt import ADJUSTMENT, NO_METHOD, REFUND, REVERSAL, SALE
from . import audit, ledger, pushes, receipts
from .accounts import get_account
from .errors import Conflict, Forbidden, Invalid
from .receipts import receipt_no
from .sales import check_method

MIN_REASON = 3


def _reason(reason):
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise Invalid("give the reason (at least %d characters)" % MIN_REASON)
    return reason


def _number(session, r):
    from . import property_settings
    return receipt_no(property_settings.of(session, r.property_id).receipt_prefix, r.number)


def reverse(session, actor, receipt_id, reason, idempotency_key=None, now=None, push=True):
    """Reverse sale `receipt_id` in full. -> receipts.Movement."""
    sale = receipts.get_receipt(session, actor, receipt_id)
    actor.check(P.MONEY_REVERSE, sale.property_id)
    reason = _reason(reason)
    if sale.kind != SALE:
        raise Invalid("only a sale can be reversed (%s is a %s)" % (_number(session, sale), sale.kind))
    account = get_account(session, actor, sale.account_id)
    receipts.lock(session, sale.property_id)
    earlier = receipts.by_key(session, sale.property_id, idempotency_key)
    done = receipts.reversal_of(session, sale.id)
    if done is not None and (earlier is None or earlier.id != done.id):
        raise Conflict("%s was reversed already by %s" % (_number(session, sale), _number(session, done)))
    if earlier is None and not actor.can(P.MONEY_ADJUST, sale.property_id):
        # a cashier: own sales, on the day they were made, while that day is open
        if sale.user_id != actor.user_id:
            raise Forbidden("a cashier reverses only their own sales: ask a manager")
        today = receipts.open_day(session, sale.property_id, now)
        if sale.business_day != today:
            raise Forbidden("a cashier reverses only sales of the open day (%s; this sale counts in %s): "
                            "ask a manager" % (today, sale.business_day))
    mv = receipts.record(session, actor, account, REVERSAL, -sale.amount_mu, sale.method, reference=sale.reference,
                         reason=reason, reverses=sale, key=idempotency_key, now=now)
    if mv.replayed:
        return mv
    audit.record(session, actor, "money.reversal", "ledger_entry", mv.entry.id, property_id=sale.property_id,
                 before={"balance_mu": mv.entry.balance_after_mu + sale.amount_mu, "receipt": sale.number},
                 after={"account_id": account.id, "amount": format_exact(-sale.amount_mu), "reason": reason,
                        "receipt": mv.receipt.number, "balance_mu": mv.entry.balance_after_mu})
    if push:
        pushes.queue_credit(session, {account.id})
    return mv


def refund(session, actor, account_id, amount_mu=None, method="cash", reference="", reason="",
           idempotency_key=None, now=None, push=True, audit_it=True):
    """Pay remaining credit back: `amount_mu` (whole fen, at most the
    balance), or the balance rounded down to the fen when None."""
    account = get_account(session, actor, account_id)
    actor.check(P.MONEY_ADJUST, account.property_id)
    reason = _reason(reason)
    check_method(method)
    receipts.lock(session, account.property_id)
    if receipts.by_key(session, account.property_id, idempotency_key) is None:
        balance = ledger.balance(session, account.id)
        if amount_mu is None:
            amount_mu = balance - balance % MU_PER_CENT if balance > 0 else 0
        if amount_mu <= 0:
            raise Invalid("nothing to refund: the balance is %s" % format_exact(balance))
        if amount_mu % MU_PER_CENT:
            raise Invalid("a refund is in whole fen (cents)")
        if amount_mu > balance:
            raise Invalid("a refund of %s is more than the balance %s" % (format_exact(amount_mu),
                                                                        format_exact(balance)))
    mv = receipts.record(session, actor, account, REFUND, -amount_mu, method, reference=reference, reason=reason,
                         key=idempotency_key, now=now)
    if mv.replayed:
        return mv
    if mv.entry.balance_after_mu < 0:   # consumption was charged meanwhile
        raise Conflict("the balance changed while refunding: try again")
    if audit_it:
        audit.record(session, actor, "money.refund", "ledger_entry", mv.entry.id, property_id=account.property_id,
                     before={"balance_mu": mv.entry.balance_after_mu + amount_mu},
                     after={"account_id": account.id, "amount": format_exact(-amount_mu), "method": method,
                            "reason": reason, "receipt": mv.receipt.number, "balance_mu": mv.entry.balance_after_mu})
    if push:
        pushes.queue_credit(session, {account.id})
    return mv


def adjust(session, actor, account_id, amount_mu, reason, idempotency_key=None, now=None, push=True,
           audit_it=True, allow_sub_fen=False):
    """A manager's correction: + credits the account, - debits it."""
    account = get_account(session, actor, account_id)
    actor.check(P.MONEY_ADJUST, account.property_id)
    reason = _reason(reason)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int) or amount_mu == 0:
        raise Invalid("an adjustment is a non-zero amount")
    if amount_mu % MU_PER_CENT and not allow_sub_fen:
        raise Invalid("an adjustment is in whole fen (cents)")
    mv = receipts.record(session, actor, account, ADJUSTMENT, amount_mu, NO_METHOD, reason=reason,
                         key=idempotency_key, now=now)
    if mv.replayed:
        return mv
    if audit_it:
        audit.record(session, actor, "money.adjustment", "ledger_entry", mv.entry.id, property_id=account.property_id,
                     before={"balance_mu": mv.entry.balance_after_mu - amount_mu},
                     after={"account_id": account.id, "amount": format_exact(amount_mu), "reason": reason,
                            "receipt": mv.receipt.number, "balance_mu": mv.entry.balance_after_mu})
    if push:
        pushes.queue_credit(session, {account.id})
    return mv
