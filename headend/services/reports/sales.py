"""Sales by day, cashier or payment method, from the receipts of the sales
desk (services/receipts): sales, reversals and refunds as the desk and the
day end count them (signed as in the ledger), adjustments apart, by the
receipt's business day. Building filter: not applied (a receipt belongs to
an account, not a building)."""
from sqlmodel import select

from ...models import Receipt, User
from ...models.receipt import METHOD_TEXT
from ..dayend import _sums
from ..errors import Invalid
from .base import DATE, INT, MONEY, Col, Report, parse_day

GROUPS = ("day", "cashier", "method")


def report(session, f, group="day"):
    if group not in GROUPS:
        raise Invalid("group: one of %s" % ", ".join(GROUPS))
    rs = session.exec(select(Receipt).where(Receipt.property_id == f.property_id,
                                            Receipt.business_day >= f.start_day.isoformat(),
                                            Receipt.business_day <= f.end_day.isoformat())
                      .order_by(Receipt.number)).all()
    names = dict(session.exec(select(User.id, User.display_name).where(
        User.id.in_(sorted({r.user_id for r in rs})))).all()) if rs else {}
    keyf = {"day": lambda r: r.business_day, "cashier": lambda r: (names.get(r.user_id) or "", r.user_id),
            "method": lambda r: r.method}[group]
    groups = {}
    for r in rs:
        groups.setdefault(keyf(r), []).append(r)
    rows = []
    for k in sorted(groups):
        row = _sums(groups[k])
        if group == "day":
            row["day"] = parse_day(k, "day")
        elif group == "cashier":
            row["cashier"] = k[0]
        else:
            row["method"] = METHOD_TEXT.get(k, k)
        rows.append(row)
    first = {"day": Col("day", "Day", DATE), "cashier": Col("cashier", "Cashier"),
             "method": Col("method", "Payment method")}[group]
    cols = [first, Col("sale", "Sales", MONEY, True), Col("reversal", "Reversals", MONEY, True),
            Col("refund", "Refunds", MONEY, True), Col("net", "Net", MONEY, True),
            Col("adjustment", "Adjustments", MONEY, True), Col("count", "Receipts", INT, True)]
    label = {"day": lambda r: r["day"].isoformat(), "cashier": lambda r: r["cashier"],
             "method": lambda r: r["method"]}[group]
    chart = {"kind": "bar", "unit": "money", "x": [label(r) for r in rows],
             "series": [{"name": "Net", "data": [r["net"] / 10000 for r in rows]}]}
    return Report("sales", "Sales by " + {"day": "day", "cashier": "cashier", "method": "payment method"}[group],
                  f, cols, rows, chart)
