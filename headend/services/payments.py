"""Online top-ups: a payment order opened for an account, and the
provider's notification turned into a sale, once. Signed and fresh
(payments.provider verifies), replay-safe (a notification seen before,
by nonce, changes nothing) and idempotent (the provider's transaction id
sells once, however often the provider repeats it)."""
import secrets
import time

from sqlmodel import select

from ..core import permissions as P
from ..core.money import MAX_AMOUNT_MU, MU_PER_CENT, format_money
from ..models import PaymentNotice, PaymentOrder, User
from ..models.payment import FAILED, PAID, PENDING
from .accounts import get_account
from .actor import Actor
from .errors import Invalid, NotFound

SOLD, DUPLICATE, REFUSED, NOT_PAID, NOT_CREDITED = "sold", "duplicate", "refused", "not paid", "not credited"


def new_order_no(now):
    return "P%d%s" % (now, secrets.token_hex(6))


def open_order(session, actor, account_id, amount_mu, provider, now=None):
    """A tenant (its own account) or a cashier opens a payment order."""
    now = int(now if now is not None else time.time())
    a = get_account(session, actor, account_id)
    if actor.is_tenant:
        actor.check(P.PORTAL)
    else:
        actor.check(P.MONEY_SELL, a.property_id)
    if a.status != "open":
        raise Invalid("account %s is closed" % a.id)
    if amount_mu <= 0 or amount_mu > MAX_AMOUNT_MU or amount_mu % MU_PER_CENT:
        raise Invalid("a top-up is a positive amount in whole fen")
    order = PaymentOrder(order_no=new_order_no(now), property_id=a.property_id, account_id=a.id,
                         provider=provider.name, method=provider.method, amount_mu=amount_mu, status=PENDING,
                         created_by_user_id=actor.user_id, created=now)
    order.pay = provider.create(order)
    session.add(order)
    session.flush()
    return order


def get_order(session, actor, order_no):
    o = session.exec(select(PaymentOrder).where(PaymentOrder.order_no == order_no)).first()
    if o is None:
        raise NotFound("no payment order %s" % order_no)
    get_account(session, actor, o.account_id)     # the tenant's own, or a property the staff sees
    return o


def public(order):
    d = order.model_dump()
    d["amount"] = format_money(order.amount_mu)
    return d


def _payer(session, order):
    """Who the sale names: the person who opened the order, selling through
    the provider on that one account's property."""
    from .users import actor_for
    user = session.get(User, order.created_by_user_id)
    base = actor_for(session, user, source="payment")
    return Actor(user, {P.MONEY_SELL, P.PROPERTY_READ}, {order.property_id}, ip=base.ip, source="payment")


def notify(session, provider, note, now=None):
    """Apply a verified notification. -> (outcome, detail, order or None).
    Every outcome but a replay is recorded (PaymentNotice)."""
    from .sales import sell
    now = int(now if now is not None else time.time())
    if session.exec(select(PaymentNotice).where(PaymentNotice.provider == provider.name,
                                                PaymentNotice.nonce == note.nonce)).first():
        return DUPLICATE, "this very notification was seen before", None
    notice = PaymentNotice(provider=provider.name, nonce=note.nonce, ts=note.ts, received=now, order_no=note.order_no,
                           provider_txn_id=note.provider_txn_id)
    session.add(notice)
    order = session.exec(select(PaymentOrder).where(PaymentOrder.order_no == note.order_no,
                                                    PaymentOrder.provider == provider.name).with_for_update()).first()
    outcome, detail = _apply(session, provider, note, order, sell, now)
    notice.outcome, notice.detail = outcome, detail[:500]
    session.flush()
    return outcome, detail, order


def _apply(session, provider, note, order, sell, now):
    if order is None:
        return REFUSED, "no such order"
    if order.status == PAID:
        if order.provider_txn_id == note.provider_txn_id:
            return DUPLICATE, "paid already (receipt %s)" % order.receipt_id
        return REFUSED, "paid already by transaction %s" % order.provider_txn_id
    if not note.paid:
        if order.status == PENDING:
            order.status = FAILED
            session.add(order)
        return NOT_PAID, "the provider says %s" % note.detail
    if note.amount_mu != order.amount_mu:
        return REFUSED, "paid %s, the order is for %s" % (format_money(note.amount_mu), format_money(order.amount_mu))
    order.status, order.paid, order.provider_txn_id = PAID, now, note.provider_txn_id
    try:
        with session.begin_nested():
            sale = sell(session, _payer(session, order), order.account_id, order.amount_mu, note="online top-up",
                        method=order.method, reference=note.provider_txn_id,
                        idempotency_key="pay:%s:%s" % (provider.name, note.provider_txn_id), now=now)
    except Invalid as e:
        # the money was taken but cannot be credited (account closed...): staff settle it
        order.status = FAILED
        session.add(order)
        return NOT_CREDITED, e.message
    order.receipt_id = sale.receipt.id
    session.add(order)
    return SOLD, "receipt %d" % sale.receipt.number


def now():
    return int(time.time())
