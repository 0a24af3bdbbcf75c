"""What the commands share: settings, a session on a migrated database, the
acting user, printing errors."""
import contextlib
import sys

import typer
from rich.console import Console
from sqlmodel import select

from ..core import db, migrate
from ..core.config import Settings
from ..services.errors import DomainError

console = Console()
err_console = Console(stderr=True)
state = {"db": None}


def settings(**over):
    over = {k: v for k, v in over.items() if v not in (None, False, "")}
    if state["db"]:
        over.setdefault("database_url", state["db"])
    return Settings(**over)


@contextlib.contextmanager
def session_scope(upgrade=True):
    st = settings()
    engine = db.make_engine(st.database_url)
    if upgrade:
        migrate.upgrade(engine)
    s = db.session_factory(engine)()
    try:
        yield s
    finally:
        s.close()
        engine.dispose()


def actor_named(session, username, source="cli"):
    """The staff user a command acts as (the CLI runs on the server: whoever
    may run it may act as any user, and the ledger and audit log name that
    user)."""
    from ..models import User
    from ..services.users import actor_for, system_user
    if not username:
        return actor_for(session, system_user(session), source=source)
    u = session.exec(select(User).where(User.username == username)).first()
    if u is None or not u.active:
        raise DomainError("no active user %r" % username)
    return actor_for(session, u, source=source)


def fail(message, code=2):
    err_console.print("[bold red]error:[/] %s" % message)
    raise typer.Exit(code)


def read_password(prompt="Password"):
    """From stdin when it is not a terminal (`echo pw | wattkeeper user add ...`), else asked twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("no password on standard input")
        return line
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
