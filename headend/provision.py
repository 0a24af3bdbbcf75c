"""Creating sites, concentrators, meters, accounts and tariffs (used by the
API, the CLI and seed). Functions add and flush; the caller commits."""
import re
import secrets

from sqlmodel import select

from concentrator import tariff as T

from . import billing, ledger
from .models import Account, Concentrator, Meter, Site, Tariff

DEV_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProvisionError(ValueError):
    pass


class TariffInvalid(ProvisionError):
    """The tariff spec was refused by concentrator.tariff.validate (HTTP 422)."""


def new_key_hex():
    return secrets.token_hex(32)


def get_or_create_site(session, name, tz_offset_s=28800):
    site = session.exec(select(Site).where(Site.name == name)).first()
    if site is None:
        site = Site(name=name, tz_offset_s=tz_offset_s)
        session.add(site)
        session.flush()
    return site


def create_site(session, name, tz_offset_s=28800):
    if session.exec(select(Site).where(Site.name == name)).first() is not None:
        raise ProvisionError("site %r exists" % name)
    return get_or_create_site(session, name, tz_offset_s)


def create_concentrator(session, site_id, dev, key_hex=None):
    if not DEV_RE.match(dev or ""):
        raise ProvisionError("device id must be 1-64 letters, digits, '-' or '_'")
    if key_hex is None:
        key_hex = new_key_hex()
    key_hex = key_hex.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", key_hex):
        raise ProvisionError("key must be 32 bytes as 64 hex digits")
    if session.get(Site, site_id) is None:
        raise ProvisionError("no site %r" % site_id)
    if session.exec(select(Concentrator).where(Concentrator.dev == dev)).first() is not None:
        raise ProvisionError("concentrator %r exists" % dev)
    if session.exec(select(Concentrator).where(Concentrator.key_hex == key_hex)).first() is not None:
        raise ProvisionError("this key is already used by another device")
    c = Concentrator(dev=dev, site_id=site_id, key_hex=key_hex)
    session.add(c)
    session.flush()
    return c


def create_account(session, site_id, tenant, low_balance_threshold_mu=0, tariff_id=None,
                   opening_balance_mu=0, actor="provision"):
    if session.get(Site, site_id) is None:
        raise ProvisionError("no site %r" % site_id)
    if tariff_id is not None and session.get(Tariff, tariff_id) is None:
        raise ProvisionError("no tariff %r" % tariff_id)
    a = Account(site_id=site_id, tenant=tenant, low_balance_threshold_mu=low_balance_threshold_mu,
                tariff_id=tariff_id)
    session.add(a)
    session.flush()
    if opening_balance_mu:
        ledger.post(session, a.id, "recharge", opening_balance_mu, actor=actor, note="opening balance")
        session.refresh(a)
    return a


def create_meter(session, concentrator_id, meter_id, model="", index=None, account_id=None,
                 opening_energy_wh=None):
    conc = session.get(Concentrator, concentrator_id)
    if conc is None:
        raise ProvisionError("no concentrator %r" % concentrator_id)
    if session.exec(select(Meter).where(Meter.meter_id == meter_id)).first() is not None:
        raise ProvisionError("meter %r exists" % meter_id)
    existing = session.exec(select(Meter.index).where(Meter.concentrator_id == concentrator_id)).all()
    if index is None:
        index = max(existing) + 1 if existing else 0
    if index in existing:
        raise ProvisionError("index %d of %s is taken" % (index, conc.dev))
    if not 0 <= index <= 255:
        raise ProvisionError("meter index must be 0..255")
    if account_id is not None and session.get(Account, account_id) is None:
        raise ProvisionError("no account %r" % account_id)
    m = Meter(concentrator_id=concentrator_id, index=index, meter_id=meter_id, model=model,
              account_id=account_id, billed_energy_wh=opening_energy_wh,
              billed_seq=0 if opening_energy_wh is not None else None)
    session.add(m)
    session.flush()
    return m


def assign_meter(session, meter_pk, account_id):
    m = session.get(Meter, meter_pk)
    if m is None:
        raise ProvisionError("no meter %r" % meter_pk)
    if account_id is not None and session.get(Account, account_id) is None:
        raise ProvisionError("no account %r" % account_id)
    m.account_id = account_id
    session.add(m)
    session.flush()
    return m


def _tz(session, site_id):
    site = session.get(Site, site_id) if site_id is not None else None
    return site.tz_offset_s if site is not None else 28800


def tariff_rows(session, site_id, name):
    return session.exec(select(Tariff).where(Tariff.site_id == site_id, Tariff.name == name)
                        .order_by(Tariff.effective, Tariff.version, Tariff.id)).all()


def create_tariff(session, site_id, name, price_mu_per_kwh=None, version=None, effective=0, kind=None,
                  spec=None, site_default=True):
    """Add one version to tariff `name` of the site (creating the tariff when
    the name is new). Give a full version spec (docs/tariffs.md; missing
    "version", "effective", "tz_offset_s" are filled in) or, for a flat
    tariff, price_mu_per_kwh. site_default: the site's boards get this
    tariff (Site.tariff_name). Raises ProvisionError with the tariff
    module's message when the spec is invalid."""
    site = session.get(Site, site_id) if site_id is not None else None
    if site_id is not None and site is None:
        raise ProvisionError("no site %r" % site_id)
    if kind not in (None, "flat") and not spec:
        raise ProvisionError("only flat tariffs can be given by price_mu_per_kwh; give a spec")
    if price_mu_per_kwh is not None and price_mu_per_kwh < 0:
        raise ProvisionError("price must not be negative")
    rows = tariff_rows(session, site_id, name)
    if version is None:
        version = spec.get("version") if isinstance(spec, dict) and "version" in spec else None
    if version is None:
        version = max([r.version for r in rows] + [0]) + 1
    if isinstance(spec, dict) and "effective" in spec:
        effective = spec["effective"]
    try:
        full = billing.normalize_spec(spec, version, effective, _tz(session, site_id), price_mu_per_kwh)
        T.validate_versions(billing.versions_of(rows, _tz(session, site_id)) + [full])
    except ValueError as e:
        raise TariffInvalid(str(e))
    t = Tariff(site_id=site_id, name=name, version=full["version"], effective=full["effective"],
               kind=billing.kind_of(full), price_mu_per_kwh=full.get("price", 0), spec=full)
    session.add(t)
    if site is not None and site_default and site.tariff_name != name:
        site.tariff_name = name
        session.add(site)
    session.flush()
    return t


def add_tariff_version(session, tariff_id, spec=None, price_mu_per_kwh=None, effective=None, version=None):
    """A new version of the tariff that row `tariff_id` belongs to."""
    row = session.get(Tariff, tariff_id)
    if row is None:
        raise ProvisionError("no tariff %r" % tariff_id)
    if effective is None and not (isinstance(spec, dict) and "effective" in spec):
        raise ProvisionError("a new version needs its 'effective' time (Unix seconds)")
    return create_tariff(session, row.site_id, row.name, price_mu_per_kwh, version=version,
                         effective=effective if effective is not None else 0, spec=spec,
                         site_default=False)


def site_tariff_name(session, site_id):
    site = session.get(Site, site_id) if site_id is not None else None
    if site is not None and site.tariff_name:
        return site.tariff_name
    # databases of head-end 0.1: the newest tariff of the site
    row = session.exec(select(Tariff).where(Tariff.site_id == site_id)
                       .order_by(Tariff.created.desc(), Tariff.id.desc())).first()
    return row.name if row is not None else None


def site_versions(session, site_id):
    """The version specs of the site's tariff (what its boards get)."""
    name = site_tariff_name(session, site_id)
    if name is None:
        return []
    return billing.versions_of(tariff_rows(session, site_id, name), _tz(session, site_id))


def versions_for_tariff(session, tariff_id):
    row = session.get(Tariff, tariff_id)
    if row is None:
        return []
    return billing.versions_of(tariff_rows(session, row.site_id, row.name), _tz(session, row.site_id))
