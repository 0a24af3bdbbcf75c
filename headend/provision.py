"""Creating sites, concentrators, meters, accounts and tariffs (used by the
API, the CLI and seed). Functions add and flush; the caller commits."""
import re
import secrets

from sqlmodel import select

from . import ledger
from .models import Account, Concentrator, Meter, Site, Tariff

DEV_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProvisionError(ValueError):
    pass


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


def create_tariff(session, site_id, name, price_mu_per_kwh, version=None, effective=0, kind="flat",
                  spec=None):
    if site_id is not None and session.get(Site, site_id) is None:
        raise ProvisionError("no site %r" % site_id)
    if kind != "flat":
        raise ProvisionError("only flat tariffs are supported for now")
    if price_mu_per_kwh < 0:
        raise ProvisionError("price must not be negative")
    if version is None:
        prev = session.exec(select(Tariff.version).where(Tariff.site_id == site_id, Tariff.name == name)
                            .order_by(Tariff.version.desc())).first()
        version = (prev or 0) + 1
    t = Tariff(site_id=site_id, name=name, version=version, effective=effective, kind=kind,
               price_mu_per_kwh=price_mu_per_kwh, spec=spec or {})
    session.add(t)
    session.flush()
    return t
