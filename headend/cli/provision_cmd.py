"""`wattkeeper provision ...`"""
import json
from typing import Optional

import typer
from sqlmodel import select

from ..models import Concentrator, Property
from ..services import accounts, devices, properties, tariffs
from .common import actor_named, console, fail, session_scope

app = typer.Typer(no_args_is_help=True)
AS = typer.Option(None, "--as", help="who does it (a user name; default: the head-end)")


def _property(s, actor, name):
    p = s.exec(select(Property).where(Property.name == name)).first()
    return p if p is not None else properties.create_property(s, actor, name)


@app.command("property")
def property_(name: str, tz_offset_s: int = typer.Option(28800), as_user: Optional[str] = AS):
    """Create a property."""
    with session_scope() as s:
        p = properties.create_property(s, actor_named(s, as_user), name, tz_offset_s)
        s.commit()
        console.print("property %d %s" % (p.id, p.name))


BROKER_DIR = typer.Option(None, "--broker-dir", help="the site's broker folder (`wattkeeper broker-config`): "
                                                     "emit the board's `broker` block (TLS, its own credential)")


def _print_config(s, actor, c, broker_dir, out):
    from ..services.board_config import board_config
    from ..services.errors import DomainError
    try:
        cfg, notes = board_config(s, actor, c, broker_dir)
    except DomainError as e:
        fail(str(e))
    out["config"] = cfg
    s.commit()              # (a new broker credential is in the folder already)
    console.print_json(json.dumps(out))
    for n in notes:
        console.print(n, style="yellow")


@app.command("concentrator")
def concentrator(property: str = typer.Option(..., help="property name (created when new)"),
                 dev: str = typer.Option(..., help="device id"),
                 key: Optional[str] = typer.Option(None, help="64 hex digits (generated when omitted)"),
                 broker_dir: Optional[str] = BROKER_DIR,
                 as_user: Optional[str] = AS):
    """Provision a board; prints its key (shown only here) and `config`, the
    head-end's part of its /config.json (dev, key, broker, the site's meter models)."""
    with session_scope() as s:
        actor = actor_named(s, as_user)
        c = devices.create_concentrator(s, actor, _property(s, actor, property).id, dev, key)
        _print_config(s, actor, c, broker_dir, {"id": c.id, "dev": c.dev, "key_hex": c.key_hex})


@app.command("config")
def config(dev: str = typer.Option(...), broker_dir: Optional[str] = BROKER_DIR, as_user: Optional[str] = AS):
    """The head-end's part of a provisioned board's /config.json again (after a
    key rotation, new site models or a broker configured later)."""
    with session_scope() as s:
        actor = actor_named(s, as_user)
        c = s.exec(select(Concentrator).where(Concentrator.dev == dev)).first()
        if c is None:
            fail("no concentrator %r" % dev)
        _print_config(s, actor, c, broker_dir, {"id": c.id, "dev": c.dev})


@app.command("models")
def models(property: str = typer.Option(..., help="property name"),
           file: str = typer.Argument(..., help='JSON file: {"models": {...}} or the models object itself '
                                               '(docs/meters.md, "A model in the site file"); {} removes them'),
           as_user: Optional[str] = AS):
    """Set the site's meter models: checked as a board checks them, used by the
    meter import and emitted into every board's config."""
    from ..services import property_settings
    from ..services.errors import DomainError
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (file, e))
    if isinstance(data, dict) and set(data) == {"models"}:
        data = data["models"]
    with session_scope() as s:
        actor = actor_named(s, as_user)
        p = s.exec(select(Property).where(Property.name == property)).first()
        if p is None:
            fail("no property %r" % property)
        try:
            property_settings.set_meter_models(s, actor, p.id, data)
        except DomainError as e:
            fail(str(e))
        s.commit()
        console.print_json(json.dumps({"property": p.name, "models": sorted(data)}))


@app.command("meter")
def meter(dev: str = typer.Option(...), meter_id: str = typer.Option(...), model: str = typer.Option(""),
          index: Optional[int] = typer.Option(None), account: Optional[int] = typer.Option(None),
          tenant: Optional[str] = typer.Option(None, help="open an account for this tenant"),
          opening_energy_wh: Optional[int] = typer.Option(None), as_user: Optional[str] = AS):
    """Add a meter to a board."""
    with session_scope() as s:
        actor = actor_named(s, as_user)
        c = s.exec(select(Concentrator).where(Concentrator.dev == dev)).first()
        if c is None:
            fail("no concentrator %r" % dev)
        if account is None and tenant:
            account = accounts.create_account(s, actor, c.property_id, tenant_name=tenant).id
        m = devices.create_meter(s, actor, c.id, meter_id, model, index, account, opening_energy_wh)
        s.commit()
        console.print_json(json.dumps({"id": m.id, "meter_id": m.meter_id, "index": m.index,
                                       "account_id": m.account_id}))


@app.command("tariff")
def tariff(property: str = typer.Option(...), name: str = typer.Option("flat"),
           price_mu_per_kwh: int = typer.Option(..., help="price in mu (1/10000 unit) per kWh"),
           effective: int = typer.Option(0), as_user: Optional[str] = AS):
    """A flat tariff (a new version when the name exists)."""
    with session_scope() as s:
        actor = actor_named(s, as_user)
        t = tariffs.create_tariff(s, actor, _property(s, actor, property).id, name, price_mu_per_kwh,
                                  effective=effective)
        s.commit()
        console.print_json(json.dumps({"id": t.id, "name": t.name, "version": t.version,
                                       "price_mu_per_kwh": t.price_mu_per_kwh}))
