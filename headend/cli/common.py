"""What the commands share: settings, a session on a migrated database, the
acting user, printing errors."""
import contextlib
import os
import sys

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlmodel import select

from ..core import db, migrate
from ..core.config import Settings
from ..services.errors import DomainError

console = Console()
err_console = Console(stderr=True)
state = {"db": None}


def settings(**over):
    """The settings (WK_* and these overrides); a bad value stops the
    command with what is wrong in which setting, not a traceback."""
    over = {k: v for k, v in over.items() if v not in (None, False, "")}
    if state["db"]:
        over.setdefault("database_url", state["db"])
    try:
        return Settings(**over)
    except ValidationError as e:
        fail("; ".join("WK_%s: %s" % ("_".join(map(str, x["loc"])).upper(), x["msg"]) for x in e.errors()))


def _exists(engine):
    """A Wattkeeper database is there (not an empty file the command would fill)."""
    from sqlalchemy import inspect
    if engine.url.get_backend_name() == "sqlite":
        path = engine.url.database or ""
        if not path or path == ":memory:" or not os.path.exists(path) or os.path.getsize(path) == 0:
            return False
    try:
        return "alembic_version" in inspect(engine).get_table_names() or \
            "site" in inspect(engine).get_table_names()
    except Exception:
        return False


@contextlib.contextmanager
def session_scope(upgrade=True, must_exist=False):
    """A session on the database of $WK_DATABASE_URL (or --db). must_exist:
    refuse a database that is not there yet rather than make an empty one (a
    command aimed at the wrong database would change nothing anyone sees)."""
    st = settings()
    engine = db.make_engine(st.database_url) if not must_exist else _engine_of_existing(st.database_url)
    if upgrade:
        migrate.upgrade(engine)
    s = db.session_factory(engine)()
    try:
        yield s
    finally:
        s.close()
        engine.dispose()


def _engine_of_existing(url):
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if not path or not os.path.exists(path):
            fail("no Wattkeeper database at %s: give --db (or WK_DATABASE_URL) of the running head-end "
                 "(the demo's is sqlite:///%s), or create one with `wattkeeper db upgrade`"
                 % (url, os.path.join(os.getcwd(), "var", "demo", "wattkeeper.db")))
    engine = db.make_engine(url)
    if not _exists(engine):
        engine.dispose()
        fail("%s is not a Wattkeeper database yet: run `wattkeeper db upgrade` (or give the right --db)" % url)
    return engine


def wait_sent(session, since_id, timeout_s):
    """Wait until the running head-end has sent every outbox message queued
    after `since_id`; -> (sent, waiting)."""
    import time as _time
    from sqlmodel import func
    from ..models import Downlink
    deadline = _time.monotonic() + timeout_s
    while True:
        total = session.exec(select(func.count()).select_from(Downlink).where(Downlink.id > since_id)).one()
        waiting = session.exec(select(func.count()).select_from(Downlink).where(
            Downlink.id > since_id, Downlink.sent.is_(None))).one()
        session.rollback()       # hold no transaction (on SQLite: no write lock) while the head-end works
        if not waiting or _time.monotonic() >= deadline:
            return total - waiting, waiting
        _time.sleep(0.2)


def last_downlink_id(session):
    from sqlmodel import func
    from ..models import Downlink
    return session.exec(select(func.coalesce(func.max(Downlink.id), 0))).one()


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
