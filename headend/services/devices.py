"""Concentrators and meters: provisioning, meter lists from a bus scan, the
account a meter is billed to."""
import json
import re
import secrets

from sqlmodel import select

from ..core import permissions as P
from ..core.events import EV_METER_LIST
from ..core.paging import listed
from ..models import Account, Concentrator, Event, Meter, Property, Unit, now_s
from . import audit
from .actor import scoped
from .errors import Conflict, Invalid, NotFound

def downlink_keys(c):
    from ..transport.downlink import keys_of
    return keys_of(c)


DEV_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_key_hex():
    return secrets.token_hex(32)


def create_concentrator(session, actor, property_id, dev, key_hex=None):
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.DEVICES_WRITE, property_id)
    if not DEV_RE.match(dev or ""):
        raise Invalid("device id must be 1-64 letters, digits, '-' or '_'")
    key_hex = (key_hex or new_key_hex()).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", key_hex):
        raise Invalid("key must be 32 bytes as 64 hex digits")
    if session.exec(select(Concentrator).where(Concentrator.dev == dev)).first() is not None:
        raise Conflict("concentrator %r exists" % dev)
    if session.exec(select(Concentrator).where(Concentrator.key_hex == key_hex)).first() is not None:
        raise Conflict("this key is already used by another device")
    c = Concentrator(dev=dev, property_id=property_id, key_hex=key_hex)
    session.add(c)
    session.flush()
    audit.record(session, actor, "concentrator.create", "concentrator", c.id, property_id=property_id,
                 after={"dev": dev, "key": "provisioned"})
    return c


def concentrator_public(c, with_key=False):
    d = {"id": c.id, "dev": c.dev, "property_id": c.property_id, "acked_seq": c.acked_seq,
         "last_up_n": c.last_up_n, "last_down_n": c.last_down_n, "last_seen": c.last_seen,
         "online": c.online, "fw": c.fw, "boot": c.boot, "journal_last": c.journal_last,
         "pending": c.pending, "rekey_pending": bool(downlink_keys(c).pending)}
    if with_key:
        d["key_hex"] = c.key_hex
    return d


def list_concentrators(session, actor, property_id=None, paging=None):
    """The boards the actor sees (with paging: a core.paging.Page, searched by device id)."""
    q = scoped(select(Concentrator), actor, Concentrator.property_id)
    if property_id is not None:
        q = q.where(Concentrator.property_id == property_id)
    return listed(session, q.order_by(Concentrator.id), paging, Concentrator.dev)


def get_concentrator(session, actor, dev, lock=False):
    q = select(Concentrator).where(Concentrator.dev == dev)
    c = session.exec(q.with_for_update() if lock else q).first()
    if c is None or not actor.sees(c.property_id):
        raise NotFound("no concentrator %r" % dev)
    return c


def get_concentrator_by_id(session, actor, conc_id):
    c = session.get(Concentrator, conc_id)
    if c is None or not actor.sees(c.property_id):
        raise NotFound("no concentrator %s" % conc_id)
    return c


def get_meter(session, actor, meter_pk):
    m = session.get(Meter, meter_pk)
    if m is None:
        raise NotFound("no meter %s" % meter_pk)
    c = session.get(Concentrator, m.concentrator_id)
    if c is None or not actor.sees(c.property_id):
        raise NotFound("no meter %s" % meter_pk)
    return m, c


def create_meter(session, actor, concentrator_id, meter_id, model="", index=None, account_id=None,
                 opening_energy_wh=None, unit_id=None, audit_it=True):
    conc = get_concentrator_by_id(session, actor, concentrator_id)
    actor.check(P.DEVICES_WRITE, conc.property_id)
    if not isinstance(meter_id, str) or not 1 <= len(meter_id.strip()) <= 64:
        raise Invalid("a meter id is 1-64 characters")
    if session.exec(select(Meter).where(Meter.meter_id == meter_id)).first() is not None:
        raise Conflict("meter %r exists" % meter_id)
    existing = session.exec(select(Meter.index).where(Meter.concentrator_id == concentrator_id)).all()
    if index is None:
        index = max(existing) + 1 if existing else 0
    if index in existing:
        raise Conflict("index %d of %s is taken" % (index, conc.dev))
    if not 0 <= index <= 255:
        raise Invalid("meter index must be 0..255")
    if account_id is not None:
        a = session.get(Account, account_id)
        if a is None or a.property_id != conc.property_id:
            raise Invalid("no account %s in this property" % account_id)
    if unit_id is not None:
        u = session.get(Unit, unit_id)
        if u is None or u.property_id != conc.property_id:
            raise Invalid("no unit %s in this property" % unit_id)
    m = Meter(concentrator_id=concentrator_id, index=index, meter_id=meter_id, model=model or "",
              account_id=account_id, unit_id=unit_id, billed_energy_wh=opening_energy_wh,
              billed_seq=0 if opening_energy_wh is not None else None)
    session.add(m)
    session.flush()
    from .lifecycle import commission
    commission(session, actor, m, conc)      # its unit's occupant, else the vacancy account
    session.flush()
    account_id = m.account_id
    if audit_it:
        audit.record(session, actor, "meter.create", "meter", m.id, property_id=conc.property_id,
                     after={"meter_id": meter_id, "concentrator": conc.dev, "index": index, "model": model,
                            "unit_id": unit_id, "account_id": account_id, "opening_energy_wh": opening_energy_wh})
    return m


def assign_meter(session, actor, meter_pk, account_id):
    """Bill meter `meter_pk` to `account_id` from its last billed reading on
    (None: to the property's vacancy account; never to nobody)."""
    from .lifecycle import assign
    m, conc = get_meter(session, actor, meter_pk)
    actor.check(P.ACCOUNTS_WRITE, conc.property_id)
    before = m.account_id
    assign(session, actor, m, conc, account_id)
    session.flush()
    audit.record(session, actor, "meter.assign", "meter", m.id, property_id=conc.property_id,
                 before={"account_id": before}, after={"account_id": m.account_id,
                                                       "from_energy_wh": m.billed_energy_wh})
    return m


# --------------------------------------------------------------- bus scans
def parse_scan(text):
    """JSON lines (one {"addr", "proto", "model", "id"?} per line, as the
    console's scan() prints them; blank lines and # comments skipped) or one
    JSON array of such objects -> [(line number, object)]."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise Invalid("not JSON: %s" % e)
        if not isinstance(items, list):
            raise Invalid("not a JSON array")
        return [(k + 1, x) for k, x in enumerate(items)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append((n, json.loads(line)))
        except ValueError as e:
            raise Invalid("line %d: not JSON: %s" % (n, e))
    return out


def check_scan_item(item, models=None):
    """-> (addr as the board's config wants it, proto, model, id or None), or raise ValueError.
    models: the models the board knows (property_settings.model_table: the
    firmware's profiles and the site's own); default the firmware's."""
    if models is None:
        from concentrator.profiles import PROFILES as models
    PROFILES = models
    if not isinstance(item, dict):
        raise ValueError("not an object")
    extra = set(item) - {"addr", "proto", "model", "id"}
    if extra:
        raise ValueError("unknown field(s) %s" % ", ".join(sorted(extra)))
    proto, model, addr, mid = item.get("proto"), item.get("model"), item.get("addr"), item.get("id")
    if proto not in ("modbus", "dlt645"):
        raise ValueError("proto must be modbus or dlt645")
    prof = PROFILES.get(model) if isinstance(model, str) else None
    if prof is None:
        raise ValueError("unknown model %r (known: %s)" % (model, ", ".join(sorted(PROFILES))))
    if prof.get("proto") != proto:
        raise ValueError("model %s speaks %s, not %s" % (model, prof.get("proto"), proto))
    if proto == "modbus":
        if not isinstance(addr, int) or isinstance(addr, bool) or not 1 <= addr <= 247:
            raise ValueError("a Modbus addr is an integer 1..247")
    elif not (isinstance(addr, str) and len(addr) == 12 and addr.isdigit()) or addr == "999999999999":
        raise ValueError('a DL/T 645 addr is 12 digits as a string, e.g. "000000001234"')
    if mid is not None and not (isinstance(mid, str) and 1 <= len(mid.strip()) <= 64):
        raise ValueError("id must be a non-empty string (at most 64)")
    return addr, proto, model, mid.strip() if mid else None


def import_scan(session, actor, dev, text, open_accounts=False):
    """Create the meters a bus scan found (see the API route for the format).
    All-or-nothing; importing the same scan twice changes nothing."""
    items = parse_scan(text)
    if not items:
        raise Invalid("no meters in the import")
    if len(items) > 255:
        raise Invalid("at most 255 meters per concentrator")
    conc = get_concentrator(session, actor, dev)
    from .property_settings import model_table
    models = model_table(session, conc.property_id)
    checked, errors = [], []
    for n, item in items:
        try:
            checked.append((n,) + check_scan_item(item, models))
        except ValueError as e:
            errors.append("item %d: %s" % (n, e))
    keys = [(c[2], str(c[1])) for c in checked]
    if len(set(keys)) != len(keys):
        errors.append("the same address appears twice")
    if errors:
        raise Invalid("; ".join(errors))
    actor.check(P.DEVICES_WRITE, conc.property_id)
    existing = {m.meter_id: m for m in session.exec(select(Meter).where(Meter.concentrator_id == conc.id))}
    created, skipped = [], []
    for n, addr, proto, model, mid in checked:
        mid = mid or "%s-%s" % (dev, addr)
        if mid in existing:
            skipped.append({"id": mid, "addr": addr, "reason": "exists", "index": existing[mid].index})
            continue
        acc_id = None
        if open_accounts:
            from .accounts import create_account
            acc_id = create_account(session, actor, conc.property_id, tenant_name="Tenant " + mid).id
        m = create_meter(session, actor, conc.id, mid, model, account_id=acc_id, audit_it=False)
        existing[mid] = m
        created.append({"id": mid, "meter_pk": m.id, "index": m.index, "addr": addr, "proto": proto,
                        "model": model, "account_id": acc_id})
    session.add(Event(concentrator_id=conc.id, code=EV_METER_LIST, ts=now_s(), user_id=actor.user_id,
                      message=("meters imported: %s" % json.dumps(
                          [[c["index"], c["id"], c["addr"], c["model"]] for c in created]))[:1000]))
    audit.record(session, actor, "meter.import", "concentrator", conc.id, property_id=conc.property_id,
                 after={"created": [c["id"] for c in created], "skipped": [s["id"] for s in skipped]})
    board = [{"id": c["id"], "addr": c["addr"], "model": c["model"]}
             for c in sorted(created, key=lambda c: c["index"])]
    return {"concentrator": dev, "created": created, "skipped": skipped, "board_meters": board}
