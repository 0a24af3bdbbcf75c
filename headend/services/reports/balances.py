"""Arrears and low balances: open accounts of the property whose balance is
below zero (arrears) or below their low-balance threshold (low), with the
units their meters are in. Balances as of now (the date range is not used)."""
from sqlmodel import select

from ...models import Account, Building, Meter, Unit
from .base import MONEY, Col, Report

ARREARS, LOW = "arrears", "low"


def report(session, f):
    q = select(Account).where(Account.property_id == f.property_id, Account.status == "open") \
        .where((Account.balance_mu < 0) | (Account.balance_mu < Account.low_balance_threshold_mu))
    accounts = session.exec(q.order_by(Account.balance_mu, Account.id)).all()
    units = {}
    if accounts:
        uq = select(Meter.account_id, Unit.name, Building.name, Building.id).join(Unit, Unit.id == Meter.unit_id) \
            .join(Building, Building.id == Unit.building_id).where(Meter.account_id.in_([a.id for a in accounts]))
        for aid, uname, bname, bid in session.exec(uq).all():
            units.setdefault(aid, []).append((bid, "%s %s" % (bname, uname)))
    rows = []
    for a in accounts:
        where = units.get(a.id, [])
        if f.building_id is not None and not any(bid == f.building_id for bid, _ in where):
            continue
        state = ARREARS if a.balance_mu < 0 else LOW
        rows.append({"account": a.name, "units": ", ".join(sorted(u for _, u in where)), "state": state,
                     "balance_mu": a.balance_mu, "threshold_mu": a.low_balance_threshold_mu,
                     "arrears_mu": -a.balance_mu if a.balance_mu < 0 else 0})
    cols = [Col("account", "Account"), Col("units", "Units"), Col("state", "State"),
            Col("balance_mu", "Balance", MONEY, True), Col("threshold_mu", "Low-balance threshold", MONEY),
            Col("arrears_mu", "Arrears", MONEY, True)]
    n_arr = sum(1 for r in rows if r["state"] == ARREARS)
    chart = {"kind": "bar", "unit": "", "x": ["Arrears", "Low balance"],
             "series": [{"name": "Accounts", "data": [n_arr, len(rows) - n_arr]}]}
    return Report("balances", "Arrears and low balances", f, cols, rows, chart)
