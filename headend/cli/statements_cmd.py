"""`wattkeeper statements run`: issue a property's monthly statements in
one run, with Rich progress; --out writes each statement's PDF."""
import os
from typing import Optional

import typer

from . import common
from .common import console, fail, session_scope

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(property: str = typer.Option(..., help="property name"),
        month: str = typer.Option(..., help="the month, YYYY-MM (it must have ended)"),
        out: Optional[str] = typer.Option(None, help="a directory to write each statement's PDF to"),
        lang: str = typer.Option("zh-CN", help="language of the PDFs: zh-CN or en"),
        as_user: str = typer.Option("", "--as", help="the staff user who issues them (default: system)")):
    """Issue the statements of every account of a property for a month."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from sqlmodel import select

    from ..core import db
    from ..models import Property
    from ..services import statements
    from ..services.errors import DomainError
    from ..web import statement_doc
    if lang not in ("zh-CN", "en"):
        fail("--lang must be zh-CN or en")
    with session_scope(must_exist=True) as s:
        actor = common.actor_named(s, as_user)
        p = s.exec(select(Property).where(Property.name == property)).first()
        if p is None:
            fail("no property %r" % property)
        try:
            r = statements.start_run(s, actor, p.id, month)
        except DomainError as e:
            fail(e.message)
        s.commit()
        run_id = r.id
        factory = db.session_factory(s.get_bind())
        if out:
            os.makedirs(out, exist_ok=True)

        def write(account, doc):
            if out:
                with open(os.path.join(out, statement_doc.filename(doc) + ".pdf"), "wb") as f:
                    f.write(statement_doc.render_pdf(doc, lang))
        with Progress(TextColumn("statements %s" % month), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("issuing", total=r.total)
            done = statements.execute(factory, run_id, render=write,
                                      progress=lambda n, total: progress.update(task, completed=n, total=total))
        console.print("run %d: %d account(s), statements of %s issued%s" % (
            done.id, done.total, month, (" and written to %s" % out) if out else ""))


def register(root):
    root.add_typer(app, name="statements", help="Monthly statements (账单): issue a property's month.")
