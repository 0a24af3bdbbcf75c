"""What several dashboard pages share."""
from ...core.money import AmountError
from ...services import properties
from ...services.errors import DomainError, NotFound


def chosen_property(session, actor, property_id=None):
    """(the properties the actor sees, the one asked for or the first)."""
    props = properties.list_properties(session, actor)
    if not props:
        raise NotFound("no property")
    if property_id is None:
        return props, props[0]
    chosen = next((p for p in props if p.id == property_id), None)
    if chosen is None:
        raise NotFound("no property %s" % property_id)
    return props, chosen


def form_int(text):
    """A posted id, or None."""
    return int(text) if text and text.isdigit() and len(text) < 10 else None


def attempt(session, fn):
    """Run one change and commit it; a refusal (a domain error, an amount
    that does not parse) rolls it back. -> (result, error text, HTTP status)."""
    try:
        result = fn()
        session.commit()
        return result, None, 200
    except (AmountError, DomainError) as e:
        session.rollback()
        return None, getattr(e, "message", None) or str(e), getattr(e, "status", 422)
