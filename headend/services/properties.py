"""The property tree: organisations, properties, buildings, units."""
from sqlmodel import select

from ..core import permissions as P
from ..core.paging import listed
from ..models import Building, Organisation, Property, Unit
from . import audit
from .actor import scoped
from .errors import Conflict, Invalid, NotFound

DEFAULT_ORGANISATION = "Default organisation"


def get_or_create_organisation(session, name=DEFAULT_ORGANISATION):
    o = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if o is None:
        o = Organisation(name=name)
        session.add(o)
        session.flush()
    return o


def create_organisation(session, actor, name):
    actor.check(P.ORGANISATIONS_WRITE)
    if actor.property_ids is not None:
        raise Invalid("only an admin creates organisations")
    if session.exec(select(Organisation).where(Organisation.name == name)).first() is not None:
        raise Conflict("organisation %r exists" % name)
    o = Organisation(name=name)
    session.add(o)
    session.flush()
    audit.record(session, actor, "organisation.create", "organisation", o.id, after={"name": name})
    return o


def list_organisations(session, actor, paging=None):
    """The organisations the actor sees (with paging: a core.paging.Page)."""
    q = select(Organisation).order_by(Organisation.id)
    if actor.property_ids is not None:
        q = q.where(Organisation.id.in_(select(Property.organisation_id).where(
            Property.id.in_(sorted(actor.property_ids)))))
    return listed(session, q, paging, Organisation.name)


def create_property(session, actor, name, tz_offset_s=28800, organisation_id=None):
    actor.check(P.ORGANISATIONS_WRITE)
    if actor.property_ids is not None:
        raise Invalid("only an admin creates properties")
    if session.exec(select(Property).where(Property.name == name)).first() is not None:
        raise Conflict("property %r exists" % name)
    if organisation_id is None:
        org = session.exec(select(Organisation).order_by(Organisation.id)).first() or \
            get_or_create_organisation(session)
    else:
        org = session.get(Organisation, organisation_id)
        if org is None:
            raise Invalid("no organisation %s" % organisation_id)
    p = Property(name=name, tz_offset_s=tz_offset_s, organisation_id=org.id)
    session.add(p)
    session.flush()
    audit.record(session, actor, "property.create", "property", p.id, property_id=p.id,
                 after={"name": name, "tz_offset_s": tz_offset_s, "organisation_id": org.id})
    return p


def get_or_create_property(session, actor, name, tz_offset_s=28800):
    p = session.exec(select(Property).where(Property.name == name)).first()
    return p if p is not None else create_property(session, actor, name, tz_offset_s)


def list_properties(session, actor, paging=None):
    return listed(session, scoped(select(Property), actor, Property.id).order_by(Property.id), paging, Property.name)


def get_property(session, actor, property_id):
    p = session.get(Property, property_id)
    if p is None or not actor.sees(p.id):
        raise NotFound("no property %s" % property_id)
    return p


def create_building(session, actor, property_id, name, floors=None):
    get_property(session, actor, property_id)
    actor.check(P.PROPERTIES_WRITE, property_id)
    if session.exec(select(Building).where(Building.property_id == property_id, Building.name == name)).first():
        raise Conflict("building %r exists in this property" % name)
    b = Building(property_id=property_id, name=name, floors=floors)
    session.add(b)
    session.flush()
    audit.record(session, actor, "building.create", "building", b.id, property_id=property_id,
                 after={"name": name, "floors": floors})
    return b


def get_or_create_building(session, actor, property_id, name, floors=None):
    b = session.exec(select(Building).where(Building.property_id == property_id, Building.name == name)).first()
    return b if b is not None else create_building(session, actor, property_id, name, floors)


def list_buildings(session, actor, property_id=None, paging=None):
    q = scoped(select(Building), actor, Building.property_id)
    if property_id is not None:
        q = q.where(Building.property_id == property_id)
    return listed(session, q.order_by(Building.id), paging, Building.name)


def get_building(session, actor, building_id):
    b = session.get(Building, building_id)
    if b is None or not actor.sees(b.property_id):
        raise NotFound("no building %s" % building_id)
    return b


def create_unit(session, actor, building_id, name, floor=None, floor_area_dm2=0):
    b = get_building(session, actor, building_id)
    actor.check(P.PROPERTIES_WRITE, b.property_id)
    if session.exec(select(Unit).where(Unit.building_id == building_id, Unit.name == name)).first():
        raise Conflict("unit %r exists in building %s" % (name, b.name))
    u = Unit(building_id=b.id, property_id=b.property_id, name=name, floor=floor, floor_area_dm2=floor_area_dm2)
    session.add(u)
    session.flush()
    audit.record(session, actor, "unit.create", "unit", u.id, property_id=b.property_id,
                 after={"building": b.name, "name": name, "floor": floor, "floor_area_dm2": floor_area_dm2})
    return u


def list_units(session, actor, property_id=None, building_id=None, paging=None):
    q = scoped(select(Unit), actor, Unit.property_id)
    if property_id is not None:
        q = q.where(Unit.property_id == property_id)
    if building_id is not None:
        q = q.where(Unit.building_id == building_id)
    return listed(session, q.order_by(Unit.building_id, Unit.name, Unit.id), paging, Unit.name)


def get_unit(session, actor, unit_id):
    u = session.get(Unit, unit_id)
    if u is None or not actor.sees(u.property_id):
        raise NotFound("no unit %s" % unit_id)
    return u
