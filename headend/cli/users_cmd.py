"""`wattkeeper user ...` and `wattkeeper token ...`"""
from typing import List, Optional

import typer
from rich.table import Table
from sqlmodel import select

from ..core import permissions as P
from ..models import Property, User
from ..services import auth
from ..services import users as user_service
from .common import actor_named, console, fail, read_password, session_scope

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True)


def _property_ids(session, names):
    ids = []
    for n in names or ():
        p = session.exec(select(Property).where(Property.name == n)).first()
        if p is None and n.isdigit():
            p = session.get(Property, int(n))
        if p is None:
            fail("no property %r" % n)
        ids.append(p.id)
    return ids


@app.command("add")
def add(name: str = typer.Argument(..., help="user name (letters, digits, . _ @ -)"),
        role: Optional[str] = typer.Option(None, help="admin, manager, cashier, technician or viewer"),
        property: Optional[List[str]] = typer.Option(None, "--property", help="a property granted (name or id); "
                                                                             "repeat for several"),
        tenant: Optional[int] = typer.Option(None, help="a tenant id: make the tenant's portal login"),
        display_name: str = typer.Option("", help="the person's name"),
        as_user: Optional[str] = typer.Option(None, "--as", help="who creates it (default: the head-end)")):
    """Create a user; the password is read from standard input."""
    if (role is None) == (tenant is None):
        fail("give --role ROLE (staff) or --tenant ID (a tenant's login)")
    if role is not None and role not in P.ROLES:
        fail("unknown role %r (roles: %s)" % (role, ", ".join(P.ROLES)))
    password = read_password()
    with session_scope() as s:
        u = user_service.create_user(s, actor_named(s, as_user), name, password, role=role, tenant_id=tenant,
                                     display_name=display_name, property_ids=_property_ids(s, property))
        s.commit()
        console.print("user %s created (%s)" % (u.username, role or "tenant login"))


@app.command("list")
def list_users():
    """Everyone who can log in."""
    with session_scope() as s:
        t = Table("id", "user", "name", "role", "properties", "status")
        for u in user_service.list_users(s, actor_named(s, None)):
            d = user_service.public(s, u)
            t.add_row(str(u.id), u.username, u.display_name, u.role or "tenant",
                      ",".join(map(str, d["property_ids"])) or ("*" if u.role == "admin" else "-"),
                      "locked" if d["locked"] else ("active" if u.active else "disabled"))
        console.print(t)


def _user(s, name):
    u = s.exec(select(User).where(User.username == name)).first()
    if u is None:
        fail("no user %r" % name)
    return u


@app.command("password")
def password(name: str, as_user: Optional[str] = typer.Option(None, "--as")):
    """Set a user's password (from standard input); also unlocks it."""
    pw = read_password("New password")
    with session_scope() as s:
        user_service.update_user(s, actor_named(s, as_user), _user(s, name).id, password=pw)
        s.commit()
        console.print("password of %s set" % name)


@app.command("disable")
def disable(name: str, as_user: Optional[str] = typer.Option(None, "--as")):
    """Disable a user (its sessions and tokens end at once)."""
    with session_scope() as s:
        user_service.update_user(s, actor_named(s, as_user), _user(s, name).id, active=False)
        s.commit()
        console.print("%s disabled" % name)


@app.command("enable")
def enable(name: str, as_user: Optional[str] = typer.Option(None, "--as")):
    """Enable (and unlock) a user."""
    with session_scope() as s:
        user_service.update_user(s, actor_named(s, as_user), _user(s, name).id, active=True)
        s.commit()
        console.print("%s enabled" % name)


@token_app.command("create")
def token_create(user: str = typer.Option(..., help="whose token"), name: str = typer.Option(..., help="what it is for"),
                 scope: Optional[List[str]] = typer.Option(None, help="a permission it may use; repeat"),
                 days: Optional[int] = typer.Option(None, help="expires after this many days")):
    """Create an API token for a user (printed once)."""
    with session_scope() as s:
        t, raw = auth.create_api_token(s, actor_named(s, user), name, scope or (), days)
        s.commit()
        console.print(raw)


@token_app.command("revoke")
def token_revoke(token_id: int):
    """Revoke an API token; it stops working at once."""
    with session_scope() as s:
        auth.revoke_api_token(s, actor_named(s, None), token_id)
        s.commit()
        console.print("token %d revoked" % token_id)
