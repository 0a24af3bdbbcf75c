"""Day end (日结): a business day's sales, reversals, refunds and adjustments
per payment method and per cashier, reconciled to the ledger; closing a day
keeps its totals and sends every later movement to the next open day.

A cashier reads their own figures; whoever may close days (managers) reads
every cashier's."""
import time

from sqlalchemy import func
from sqlmodel import select

from ..core import permissions as P
from ..core.money import AmountError, day_bounds, local_date, parse_day
from ..models import Account, CashDay, LedgerEntry, Property, Receipt, User
from ..models.ledger import ADJUSTMENT as L_ADJUSTMENT
from ..models.ledger import RECHARGE, REFUND as L_REFUND, REVERSAL as L_REVERSAL
from ..models.receipt import METHODS, NO_METHOD, RECEIPT_KINDS, REFUND, REVERSAL, SALE
from . import audit, property_settings, receipts
from .errors import Conflict, Invalid, NotFound

DESK_LEDGER_KINDS = (RECHARGE, L_REVERSAL, L_REFUND, L_ADJUSTMENT)
CASH_KINDS = (SALE, REVERSAL, REFUND)       # what moves money in or out of the drawer


def _day(day):
    try:
        return parse_day(day)
    except AmountError as e:
        raise Invalid(str(e))


def _sums(rows):
    d = {k: 0 for k in RECEIPT_KINDS}
    d["count"] = 0
    for r in rows:
        d[r.kind] += r.amount_mu
        d["count"] += 1
    d["net"] = sum(d[k] for k in CASH_KINDS)
    return d


def _check_property(session, actor, property_id):
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.CASH_REPORT, property_id)


def report(session, actor, property_id, day, cashier_id=None):
    """The day's figures. Every amount is in mu, signed as in the ledger
    (sales +, reversals and refunds -); `net` is what the drawer holds per
    method (sales + reversals + refunds). `reconciled`: the receipts' sum
    equals their ledger entries' sum, each entry has the receipt's kind, and
    no desk entry of that day is without a receipt."""
    _check_property(session, actor, property_id)
    day = _day(day)
    if not actor.can(P.CASH_CLOSE, property_id):
        if cashier_id is not None and cashier_id != actor.user_id:
            raise NotFound("no such cashier's report")
        cashier_id = actor.user_id          # a cashier: their own day
    q = select(Receipt).where(Receipt.property_id == property_id, Receipt.business_day == day)
    if cashier_id is not None:
        q = q.where(Receipt.user_id == cashier_id)
    rows = session.exec(q.order_by(Receipt.number)).all()
    names = dict(session.exec(select(User.id, User.display_name).where(
        User.id.in_(sorted({r.user_id for r in rows} | ({cashier_id} if cashier_id else set()))))).all())
    by_method = []
    for m in METHODS + (NO_METHOD,):
        sel = [r for r in rows if r.method == m]
        if sel:
            by_method.append(dict(_sums(sel), method=m))
    by_cashier = []
    for uid in sorted({r.user_id for r in rows}):
        by_cashier.append(dict(_sums([r for r in rows if r.user_id == uid]), user_id=uid, cashier=names.get(uid, "")))
    problems = _reconcile(session, property_id, day, rows, cashier_id)
    closed = session.exec(select(CashDay).where(CashDay.property_id == property_id, CashDay.day == day)).first()
    totals = _sums(rows)
    if closed is not None and cashier_id is None and closed.totals.get("totals") != totals:
        problems.append("the day was closed with other totals: %s" % closed.totals.get("totals"))
    prefix = property_settings.of(session, property_id).receipt_prefix
    return {"property_id": property_id, "day": day, "cashier_id": cashier_id,
            "cashier": names.get(cashier_id, "") if cashier_id else "",
            "closed": closed is not None, "closed_at": closed.closed if closed else None,
            "closed_by": _username(session, closed.closed_by_user_id) if closed else None,
            "totals": totals, "by_method": by_method, "by_cashier": by_cashier,
            "first_receipt": receipts.receipt_no(prefix, rows[0].number) if rows else None,
            "last_receipt": receipts.receipt_no(prefix, rows[-1].number) if rows else None,
            "receipts": receipts.publics(session, rows),
            "reconciled": not problems, "problems": problems}


def _username(session, user_id):
    u = session.get(User, user_id)
    return u.display_name if u else ""


def _reconcile(session, property_id, day, rows, cashier_id):
    problems = []
    if rows:
        entries = {e.id: e for e in session.exec(select(LedgerEntry).where(
            LedgerEntry.id.in_([r.ledger_entry_id for r in rows]))).all()}
        for r in rows:
            e = entries.get(r.ledger_entry_id)
            if e is None or e.amount_mu != r.amount_mu or e.kind != receipts.LEDGER_KIND[r.kind] \
                    or e.account_id != r.account_id:
                problems.append("receipt %d does not match its ledger entry" % r.number)
        ledger_sum = sum(e.amount_mu for e in entries.values())
        if ledger_sum != sum(r.amount_mu for r in rows):
            problems.append("receipts sum to %d mu, their ledger entries to %d mu"
                            % (sum(r.amount_mu for r in rows), ledger_sum))
    start, end = day_bounds(day, receipts.tz_of(session, property_id))
    q = (select(func.count()).select_from(LedgerEntry)
         .join(Account, Account.id == LedgerEntry.account_id)
         .outerjoin(Receipt, Receipt.ledger_entry_id == LedgerEntry.id)
         .where(Account.property_id == property_id, LedgerEntry.kind.in_(DESK_LEDGER_KINDS),
                LedgerEntry.created >= start, LedgerEntry.created < end, Receipt.id.is_(None)))
    if cashier_id is not None:
        q = q.where(LedgerEntry.user_id == cashier_id)
    missing = session.exec(q).one()
    if missing:
        problems.append("%d ledger entries of that day have no receipt" % missing)
    return problems


def close(session, actor, property_id, day, now=None):
    """Close a business day: it keeps its report and takes no more receipts."""
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.CASH_CLOSE, property_id)
    day = _day(day)
    now = int(now if now is not None else time.time())
    receipts.lock(session, property_id)          # no receipt is issued while we close
    today = local_date(now, receipts.tz_of(session, property_id))
    if day > today:
        raise Invalid("%s has not begun yet (today is %s)" % (day, today))
    if session.exec(select(CashDay).where(CashDay.property_id == property_id, CashDay.day == day)).first():
        raise Conflict("%s is closed already" % day)
    rep = report(session, actor, property_id, day)
    if not rep["reconciled"]:
        raise Conflict("%s does not reconcile: %s" % (day, "; ".join(rep["problems"])))
    kept = {"totals": rep["totals"], "by_method": rep["by_method"], "by_cashier": rep["by_cashier"],
            "first_receipt": rep["first_receipt"], "last_receipt": rep["last_receipt"]}
    row = CashDay(property_id=property_id, day=day, closed=now, closed_by_user_id=actor.user_id, totals=kept)
    session.add(row)
    session.flush()
    audit.record(session, actor, "money.day_close", "cash_day", row.id, property_id=property_id,
                 after={"day": day, "totals": rep["totals"]})
    return row


def days(session, actor, property_id, limit=14):
    """Recent business days of a property, newest first: [(day, closed)]."""
    _check_property(session, actor, property_id)
    seen = set(session.exec(select(Receipt.business_day).where(Receipt.property_id == property_id)
                            .group_by(Receipt.business_day).order_by(Receipt.business_day.desc())
                            .limit(limit)).all())
    closed = receipts.closed_days(session, property_id)
    today = receipts.open_day(session, property_id)
    seen.add(today)
    return [(d, d in closed) for d in sorted(seen, reverse=True)[:limit]]
