"""The sales desk from the server's shell: `wattkeeper recharge`,
`reverse`, `refund`, `adjust`, `dayend`. Each acts as a named user (--as),
goes through the same services as the dashboard, and refuses a database
that is not there (a sale must land where the running head-end sees it)."""
from typing import Optional

import typer

from ..core import permissions as P
from ..core.money import AmountError, format_money, parse_amount
from ..models.receipt import METHODS
from . import common
from .common import console, fail, session_scope

AS = typer.Option(..., "--as", help="who does it (a user name): the ledger and the receipt name them")
KEY = typer.Option(None, "--key", help="idempotency key: the same key again does nothing more")
WAIT = typer.Option(15.0, "--wait", help="seconds to wait for the running head-end to send the new credit")


def _amount(text, signed=False):
    try:
        return parse_amount(text, signed=signed, positive=not signed)
    except AmountError as e:
        fail(str(e))


def _method(method):
    if method not in METHODS:
        fail("payment method %r: one of %s" % (method, ", ".join(METHODS)))
    return method


def _delivered(s, since, wait):
    """Tell the cashier whether the boards have the new credit."""
    if wait <= 0:
        return
    with console.status("waiting for the head-end to send the credit to the boards..."):
        sent, waiting = common.wait_sent(s, since, wait)
    if waiting:
        console.print("[bold yellow]not sent yet:[/] %d message(s) wait in the outbox of %s; is the head-end "
                      "(wattkeeper serve) running on this database?" % (waiting, common.settings().database_url))
    elif sent:
        console.print("sent to the boards (%d message(s))" % sent)


def recharge(account: int = typer.Argument(..., help="account id"),
             amount: str = typer.Argument(..., help='decimal string, e.g. "50.00"'),
             as_user: str = AS, method: str = typer.Option("cash", help="cash, wechat, alipay, card or transfer"),
             reference: str = typer.Option("", "--ref", help="the payment's own reference"),
             note: str = typer.Option("", help="a note on the sale"), key: Optional[str] = KEY,
             wait: float = WAIT):
    """Sell credit to an account, as the desk does: a ledger entry and a
    numbered receipt naming the user, and the new credit queued for the
    boards; then wait until the running head-end has sent it."""
    from ..services.sales import sell
    amount_mu = _amount(amount)
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        actor.check(P.MONEY_SELL)
        since = common.last_downlink_id(s)
        sale = sell(s, actor, account, amount_mu, note=note, method=_method(method), reference=reference,
                    idempotency_key=key)
        s.commit()
        no = _receipt_no(s, sale.receipt)
        if sale.replayed:
            console.print("already sold with this key: receipt %s, nothing more done" % no)
            return
        console.print("account %d: +%s -> %s, receipt %s (%d credit message(s) queued for the boards)" % (
            account, format_money(amount_mu), format_money(sale.entry.balance_after_mu), no, sale.pushed))
        if sale.pushed:
            _delivered(s, since, wait)


def _receipt_no(s, r):
    from ..services import receipts
    return receipts.public(s, r)["receipt_no"]


def _find_receipt(s, property_name, number):
    from sqlmodel import select

    from ..models import Property, Receipt
    q = select(Receipt).where(Receipt.number == number)
    if property_name:
        q = q.join(Property, Property.id == Receipt.property_id).where(Property.name == property_name)
    rows = s.exec(q).all()
    if len(rows) != 1:
        fail("no receipt number %d%s" % (number, "" if property_name else
                                          " (or several properties have it: give --property)")
             if not rows else "several properties have receipt %d: give --property" % number)
    return rows[0]


def reverse(number: int = typer.Argument(..., help="the sale's receipt number (without the prefix)"),
            reason: str = typer.Option(..., help="why the sale is reversed"), as_user: str = AS,
            property: Optional[str] = typer.Option(None, help="property name, when several have that number"),
            key: Optional[str] = KEY, wait: float = WAIT):
    """Reverse a sale (冲正): a cashier their own sale of the open day, a manager any."""
    from ..services import corrections
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        sale = _find_receipt(s, property, number)
        since = common.last_downlink_id(s)
        mv = corrections.reverse(s, actor, sale.id, reason, idempotency_key=key)
        s.commit()
        console.print("%s reversed by %s: %s, balance %s" % (
            _receipt_no(s, sale), _receipt_no(s, mv.receipt), format_money(mv.entry.amount_mu),
            format_money(mv.entry.balance_after_mu)))
        _delivered(s, since, wait)


def refund(account: int = typer.Argument(...), reason: str = typer.Option(...), as_user: str = AS,
           amount: Optional[str] = typer.Option(None, help="default: the whole remaining credit"),
           method: str = typer.Option("cash"), reference: str = typer.Option("", "--ref"),
           key: Optional[str] = KEY):
    """Pay remaining credit back (退费; a manager)."""
    from ..services import corrections
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        mv = corrections.refund(s, actor, account, _amount(amount) if amount else None, method=_method(method),
                                reference=reference, reason=reason, idempotency_key=key)
        s.commit()
        console.print("refunded %s from account %d: receipt %s, balance %s" % (
            format_money(-mv.entry.amount_mu), account, _receipt_no(s, mv.receipt),
            format_money(mv.entry.balance_after_mu)))


def adjust(account: int = typer.Argument(...),
           amount: str = typer.Argument(..., help='signed: "5.00" credits, "-5.00" debits'),
           reason: str = typer.Option(..., help="mandatory"), as_user: str = AS, key: Optional[str] = KEY):
    """A manager's adjustment (调账) with a reason."""
    from ..services import corrections
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        mv = corrections.adjust(s, actor, account, _amount(amount, signed=True), reason, idempotency_key=key)
        s.commit()
        console.print("adjusted account %d by %s: voucher %s, balance %s" % (
            account, format_money(mv.entry.amount_mu), _receipt_no(s, mv.receipt),
            format_money(mv.entry.balance_after_mu)))


def dayend(property: str = typer.Option(..., help="property name"),
           day: Optional[str] = typer.Option(None, help="YYYY-MM-DD (default: the open day)"),
           as_user: str = AS, close: bool = typer.Option(False, help="close the day (a manager)")):
    """The day-end report (日结) per payment method and cashier; --close closes the day."""
    from rich.table import Table
    from sqlmodel import select

    from ..models import Property
    from ..models.receipt import METHOD_TEXT
    from ..services import dayend as svc
    from ..services import receipts
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        p = s.exec(select(Property).where(Property.name == property)).first()
        if p is None:
            fail("no property %r" % property)
        day = day or receipts.open_day(s, p.id)
        if close:
            svc.close(s, actor, p.id, day)
            s.commit()
        rep = svc.report(s, actor, p.id, day)
        t = Table("method", "sales", "reversals", "refunds", "net", "adjustments", "receipts",
                  title="%s %s%s" % (p.name, day, " (closed)" if rep["closed"] else ""))
        for row in rep["by_method"] + [dict(rep["totals"], method="total")]:
            t.add_row(METHOD_TEXT.get(row["method"], row["method"]), *[format_money(row[k]) for k in (
                "sale", "reversal", "refund", "net", "adjustment")], str(row["count"]))
        console.print(t)
        for c in rep["by_cashier"]:
            console.print("  %s: net %s, %d receipt(s)" % (c["cashier"], format_money(c["net"]), c["count"]))
        console.print("reconciled with the ledger" if rep["reconciled"] else
                      "[bold red]does not reconcile:[/] " + "; ".join(rep["problems"]))


def import_sheet(file: str = typer.Argument(..., help="a CSV or XLSX sheet, one row per unit"),
                 property: str = typer.Option(..., help="property name"), as_user: str = AS,
                 apply: bool = typer.Option(False, help="import it (default: a dry run that changes nothing)")):
    """Import buildings, units, tenants (accounts, move-in, opening credit) and
    meters; prints what would change and every row's error."""
    from rich.progress import Progress
    from sqlmodel import select

    from ..models import Property
    from ..services import imports
    with open(file, "rb") as f:
        data = f.read()
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        p = s.exec(select(Property).where(Property.name == property)).first()
        if p is None:
            fail("no property %r" % property)
        rows = imports.read_rows(data, file)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("importing" if apply else "checking", total=len(rows))
            report = imports.run(s, actor, p.id, rows, dry_run=not apply,
                                 progress=lambda done, total: progress.update(task, completed=done))
        if report["applied"]:
            s.commit()
        for r in report["rows"]:
            if r["error"]:
                console.print("[bold red]line %d[/] (%s): %s" % (r["line"], r["unit"], r["error"]))
            elif r["changes"]:
                console.print("line %d (%s): %s" % (r["line"], r["unit"], "; ".join(r["changes"])))
        console.print("%d rows, %d changes, %d errors: %s" % (
            len(rows), report["changes"], report["errors"],
            "imported" if report["applied"] else ("dry run, nothing changed" if not apply
                                                  else "nothing imported: fix the errors first")))
        if report["errors"]:
            raise typer.Exit(1)


def register(app):
    for fn in (recharge, reverse, refund, adjust, dayend):
        app.command()(fn)
    app.command("import")(import_sheet)
