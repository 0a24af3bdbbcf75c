"""People: staff users with a role and granted properties, tenants' portal
logins, and the head-end's own "system" user. Creating, changing and
disabling people is audited."""
import re

from sqlmodel import select

from ..core import permissions as P
from ..core import security
from ..core.paging import paginate_list, search
from ..models import Organisation, Property, Tenant, User, UserGrant, now_s
from ..models.user import KIND_STAFF, KIND_SYSTEM, KIND_TENANT, USERNAME_PATTERN
from . import audit
from .actor import Actor
from .errors import Conflict, Forbidden, Invalid, NotFound

SYSTEM_USERNAME = "system"
_USERNAME_RE = re.compile(USERNAME_PATTERN)


def system_user(session):
    """The head-end itself: named in the ledger and the audit log for what no
    person did (seed, migrations, scheduled jobs). It cannot log in."""
    u = session.exec(select(User).where(User.username == SYSTEM_USERNAME)).first()
    if u is None:
        u = User(username=SYSTEM_USERNAME, display_name="Wattkeeper head-end", kind=KIND_SYSTEM, active=False)
        session.add(u)
        session.flush()
    return u


def grants_of(session, user_id):
    rows = session.exec(select(UserGrant).where(UserGrant.user_id == user_id)).all()
    return ([g.property_id for g in rows if g.property_id is not None],
            [g.organisation_id for g in rows if g.organisation_id is not None])


def property_ids_of(session, user):
    """The properties a user may act on (None: every property)."""
    if user.kind == KIND_SYSTEM or user.role == "admin":
        return None
    if user.kind == KIND_TENANT:
        t = session.get(Tenant, user.tenant_id) if user.tenant_id else None
        return {t.property_id} if t else set()
    props, orgs = grants_of(session, user.id)
    ids = set(props)
    if orgs:
        ids.update(session.exec(select(Property.id).where(Property.organisation_id.in_(orgs))).all())
    return ids


def actor_for(session, user, ip="", source="api", scopes=None):
    if user.kind == KIND_SYSTEM:
        perms = P.ROLE_PERMISSIONS["admin"]
    elif user.kind == KIND_TENANT:
        perms = P.ROLE_PERMISSIONS["tenant"]
    else:
        perms = P.permissions_of(user.role)
    return Actor(user, perms, property_ids_of(session, user),
                 tenant_id=user.tenant_id if user.kind == KIND_TENANT else None,
                 ip=ip, source=source, scopes=scopes)


def public(session, user):
    props, orgs = grants_of(session, user.id)
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "kind": user.kind,
            "role": user.role, "tenant_id": user.tenant_id, "active": user.active,
            "locked": bool(user.locked_until and user.locked_until > now_s()), "last_login": user.last_login,
            "property_ids": sorted(props), "organisation_ids": sorted(orgs)}


def _snapshot(session, user):
    d = public(session, user)
    d.pop("last_login", None)
    d.pop("locked", None)
    return d


def get_user(session, actor, user_id):
    u = session.get(User, user_id)
    if u is None or u.kind == KIND_SYSTEM or not _may_see(session, actor, u):
        raise NotFound("no user %s" % user_id)
    return u


def _may_see(session, actor, user):
    if actor.property_ids is None:
        return True
    if user.id == actor.user_id:
        return True
    if user.role == "admin":
        return False
    theirs = property_ids_of(session, user)
    return theirs is not None and bool(theirs) and set(theirs) <= set(actor.property_ids)


def list_users(session, actor, paging=None):
    """The logins the actor may manage (with paging: a core.paging.Page,
    searched by user name and display name; staff are few, so the page is
    cut from the visible ones in memory)."""
    q = search(select(User).where(User.kind != KIND_SYSTEM).order_by(User.id), paging.q if paging else "",
               User.username, User.display_name)
    rows = [u for u in session.exec(q).all() if _may_see(session, actor, u)]
    return rows if paging is None else paginate_list(rows, paging)


def _check_grants(session, actor, role, property_ids, organisation_ids):
    for pid in property_ids:
        if session.get(Property, pid) is None:
            raise Invalid("no property %s" % pid)
    for oid in organisation_ids:
        if session.get(Organisation, oid) is None:
            raise Invalid("no organisation %s" % oid)
    if actor.property_ids is None:
        return
    # a manager: only its own properties, and only the roles below it
    if role not in P.MANAGER_ASSIGNABLE:
        raise Forbidden("a manager may give only the roles %s" % ", ".join(P.MANAGER_ASSIGNABLE))
    if organisation_ids:
        raise Forbidden("only an admin grants whole organisations")
    if not property_ids:
        raise Invalid("grant at least one of your properties")
    for pid in property_ids:
        if pid not in actor.property_ids:
            raise Forbidden("property %s is not yours to grant" % pid)


def _set_grants(session, user_id, property_ids, organisation_ids):
    """Replace a user's grants."""
    for g in session.exec(select(UserGrant).where(UserGrant.user_id == user_id)).all():
        session.delete(g)
    session.flush()
    for pid in property_ids:
        session.add(UserGrant(user_id=user_id, property_id=pid))
    for oid in organisation_ids:
        session.add(UserGrant(user_id=user_id, organisation_id=oid))
    session.flush()


def _check_password(password):
    if not isinstance(password, str) or len(password) < security.MIN_PASSWORD_LENGTH:
        raise Invalid("a password has at least %d characters" % security.MIN_PASSWORD_LENGTH)
    if len(password) > 200:
        raise Invalid("password too long")


def create_user(session, actor, username, password, role=None, tenant_id=None, display_name="",
                property_ids=(), organisation_ids=(), must_change_password=False):
    actor.check(P.USERS_MANAGE)
    if not isinstance(username, str) or not _USERNAME_RE.match(username):
        raise Invalid("a user name is 2-64 letters, digits or . _ @ -")
    if username == SYSTEM_USERNAME:
        raise Conflict("user name %r is reserved" % username)
    _check_password(password)
    if (role is None) == (tenant_id is None):
        raise Invalid("give a staff role or a tenant (a tenant's portal login), not both")
    if role is not None and role not in P.ROLES:
        raise Invalid("unknown role %r (roles: %s)" % (role, ", ".join(P.ROLES)))
    property_ids, organisation_ids = sorted(set(property_ids)), sorted(set(organisation_ids))
    if tenant_id is not None:
        t = session.get(Tenant, tenant_id)
        if t is None or not actor.sees(t.property_id):
            raise Invalid("no tenant %s" % tenant_id)
        if property_ids or organisation_ids:
            raise Invalid("a tenant's login has no grants: it sees the tenant's own accounts")
        kind = KIND_TENANT
    else:
        _check_grants(session, actor, role, property_ids, organisation_ids)
        kind = KIND_STAFF
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict("user %r exists" % username)
    u = User(username=username, display_name=display_name or username, kind=kind, role=role,
             tenant_id=tenant_id, password_hash=security.hash_password(password),
             must_change_password=must_change_password, created_by_user_id=actor.user_id)
    session.add(u)
    session.flush()
    _set_grants(session, u.id, property_ids, organisation_ids)
    audit.record(session, actor, "user.create", "user", u.id, after=_snapshot(session, u),
                 property_id=property_ids[0] if len(property_ids) == 1 else None)
    return u


def update_user(session, actor, user_id, display_name=None, role=None, active=None, property_ids=None,
                organisation_ids=None, password=None):
    actor.check(P.USERS_MANAGE)
    u = get_user(session, actor, user_id)
    before = _snapshot(session, u)
    if actor.property_ids is not None and u.role not in P.MANAGER_ASSIGNABLE and u.id != actor.user_id:
        raise Forbidden("a manager changes only cashiers, technicians and viewers")
    if role is not None and u.kind != KIND_STAFF:
        raise Invalid("only staff users have roles")
    new_role = role if role is not None else u.role
    if u.kind == KIND_STAFF and (role is not None or property_ids is not None or organisation_ids is not None):
        props, orgs = grants_of(session, u.id)
        props = sorted(set(property_ids)) if property_ids is not None else props
        orgs = sorted(set(organisation_ids)) if organisation_ids is not None else orgs
        _check_grants(session, actor, new_role, props, orgs)
        if property_ids is not None or organisation_ids is not None:
            _set_grants(session, u.id, props, orgs)
        u.role = new_role
    if display_name is not None:
        u.display_name = display_name
    if active is not None:
        if u.id == actor.user_id and not active:
            raise Invalid("you cannot disable yourself")
        u.active = active
        if active:
            u.failed_logins, u.locked_until = 0, None
    if password is not None:
        _check_password(password)
        u.password_hash = security.hash_password(password)
        u.must_change_password = u.id != actor.user_id
        u.failed_logins, u.locked_until = 0, None
    session.add(u)
    session.flush()
    after = _snapshot(session, u)
    if password is not None:
        after["password"] = "changed"
    if not active and active is not None:
        from .auth import revoke_all
        revoke_all(session, u.id)
    audit.record(session, actor, "user.update", "user", u.id, before=before, after=after)
    return u


def change_own_password(session, actor, current_password, new_password):
    u = session.get(User, actor.user_id)
    ok, _ = security.verify_password(current_password, u.password_hash)
    if not ok:
        raise Invalid("the current password is wrong")
    _check_password(new_password)
    u.password_hash = security.hash_password(new_password)
    u.must_change_password = False
    session.add(u)
    audit.record(session, actor, "user.password", "user", u.id, after={"password": "changed"})


def ensure_first_admin(session, username="admin"):
    """On a database without any staff user: create an admin with a random
    one-time password and return (user, password); else None."""
    if session.exec(select(User).where(User.kind == KIND_STAFF)).first() is not None:
        return None
    password = security.new_password()
    sysactor = actor_for(session, system_user(session), source="system")
    u = create_user(session, sysactor, username, password, role="admin", display_name="Administrator",
                    must_change_password=True)
    return u, password
