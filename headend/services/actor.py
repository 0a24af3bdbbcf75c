"""Who is acting: a logged-in person with a role and the properties granted,
a tenant, or the head-end itself. Services take an Actor and check with it;
what each role may do is core.permissions."""
from sqlalchemy import false

from ..core import permissions as P
from .errors import Forbidden, NotFound


class Actor:
    def __init__(self, user, permissions, property_ids=None, tenant_id=None, ip="", source="api",
                 scopes=None):
        self.user = user
        self.user_id = user.id
        self.username = user.username
        self.role = user.role
        self.kind = user.kind
        self.tenant_id = tenant_id
        self.ip = ip or ""
        self.source = source
        # an API token's scopes narrow what the user may do
        self.permissions = set(permissions) if scopes is None else set(permissions) & set(scopes)
        # None: every property (admin, the head-end itself)
        self.property_ids = None if property_ids is None else frozenset(property_ids)

    def __repr__(self):
        return "<Actor %s role=%s>" % (self.username, self.role or self.kind)

    @property
    def is_tenant(self):
        return self.tenant_id is not None

    def sees(self, property_id):
        return self.property_ids is None or property_id in self.property_ids

    def can(self, permission, property_id=None):
        if permission not in self.permissions:
            return False
        return property_id is None or self.sees(property_id)

    def check(self, permission, property_id=None):
        """Raise Forbidden unless allowed (on that property)."""
        if permission not in self.permissions:
            raise Forbidden("%s may not do this (%s)" % (self.role or self.kind, permission))
        if property_id is not None and not self.sees(property_id):
            raise Forbidden("not granted property %s" % property_id)

    def check_visible(self, property_id, what="it"):
        """Raise NotFound when the thing belongs to a property the actor is
        not granted (the same answer as a wrong id)."""
        if property_id is None or not self.sees(property_id):
            raise NotFound("no %s" % what)

    def property_clause(self, column):
        """A WHERE clause limiting `column` (a property id) to what the actor sees."""
        if self.property_ids is None:
            return None
        if not self.property_ids:
            return false()
        return column.in_(sorted(self.property_ids))


def scoped(query, actor, column):
    clause = actor.property_clause(column)
    return query if clause is None else query.where(clause)


def system_actor(session, source="system"):
    """The head-end itself (seed, migrations, scheduled jobs): every
    permission, every property, recorded as the user "system"."""
    from .users import system_user
    return Actor(system_user(session), P.ROLE_PERMISSIONS["admin"], None, source=source)
