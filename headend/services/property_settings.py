"""A property's settings (models.property_settings): read with their
defaults, changed by a manager (audited)."""
import json

from ..core import permissions as P
from ..models import Property, PropertySettings, now_s
from ..models.property_settings import VACANT_RULES
from . import audit
from .errors import Invalid, NotFound

FIELDS = ("vacant_relay", "grid_price_mu_per_kwh", "max_markup_bp", "receipt_prefix")


def of(session, property_id):
    """The settings of a property (a row with the defaults when it has none; not added)."""
    row = session.get(PropertySettings, property_id)
    return row if row is not None else PropertySettings(property_id=property_id)


def max_price_mu_per_kwh(settings):
    """The highest price a resale tariff may charge (转供电): the official price
    plus the allowed mark-up, rounded down to the mu; None when not configured."""
    if settings.grid_price_mu_per_kwh is None:
        return None
    return settings.grid_price_mu_per_kwh * (10000 + settings.max_markup_bp) // 10000


def public(settings):
    d = {k: getattr(settings, k) for k in FIELDS}
    d["property_id"] = settings.property_id
    d["max_price_mu_per_kwh"] = max_price_mu_per_kwh(settings)
    return d


def update(session, actor, property_id, vacant_relay=None, grid_price_mu_per_kwh=None, clear_grid_price=False,
           max_markup_bp=None, receipt_prefix=None):
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.POLICY_WRITE, property_id)
    if vacant_relay is not None and vacant_relay not in VACANT_RULES:
        raise Invalid("the vacant-unit rule is one of %s" % ", ".join(VACANT_RULES))
    row = session.get(PropertySettings, property_id)
    if row is None:
        row = PropertySettings(property_id=property_id)
    before = public(row)
    if vacant_relay is not None:
        row.vacant_relay = vacant_relay
    if clear_grid_price:
        row.grid_price_mu_per_kwh = None
    elif grid_price_mu_per_kwh is not None:
        row.grid_price_mu_per_kwh = grid_price_mu_per_kwh
    if max_markup_bp is not None:
        row.max_markup_bp = max_markup_bp
    if receipt_prefix is not None:
        row.receipt_prefix = receipt_prefix
    row.updated, row.updated_by_user_id = now_s(), actor.user_id
    session.add(row)
    session.flush()
    after = public(row)
    if after["vacant_relay"] != before["vacant_relay"]:
        from .lifecycle import apply_vacant_rule, vacant_meters
        meters = vacant_meters(session, property_id)
        apply_vacant_rule(session, actor, property_id, meters)
        after["vacant_meters"] = [m.meter_id for m in meters]
    audit.record(session, actor, "policy.property", "property", property_id, property_id=property_id,
                 before=before, after=after)
    return row


# ---- the site's meter models (config.json "models") -------------------------
MAX_MODELS_BYTES = 64 * 1024


def meter_models(settings):
    """The site's meter models as the boards' config.json carries them ({} when none)."""
    return json.loads(settings.meter_models) if settings.meter_models else {}


def model_table(session, property_id):
    """Every model a board of this property knows: concentrator.profiles plus
    the site's models (the board's own model_check.table)."""
    from concentrator import model_check
    table, _bad = model_check.table(meter_models(of(session, property_id)) or None)
    return table


def check_meter_models(models):
    """The models as a board will take them, or raise Invalid naming the first bad one."""
    from concentrator import model_check
    if not isinstance(models, dict):
        raise Invalid("models: a JSON object of model name -> model")
    if len(json.dumps(models)) > MAX_MODELS_BYTES:
        raise Invalid("models: at most %d bytes" % MAX_MODELS_BYTES)
    if len(models) > model_check.MAX_MODELS:
        raise Invalid("models: at most %d models" % model_check.MAX_MODELS)
    try:
        _table, bad = model_check.table(models)
    except ValueError as e:
        raise Invalid("models: %s" % e)
    if bad:
        raise Invalid("models.%s: %s" % bad[0])
    return models


def set_meter_models(session, actor, property_id, models):
    """Replace the site's meter models ({} removes them); audited."""
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.DEVICES_WRITE, property_id)
    models = check_meter_models(models)
    row = session.get(PropertySettings, property_id)
    if row is None:
        row = PropertySettings(property_id=property_id)
    before = meter_models(row)
    row.meter_models = json.dumps(models, sort_keys=True) if models else None
    row.updated, row.updated_by_user_id = now_s(), actor.user_id
    session.add(row)
    session.flush()
    audit.record(session, actor, "property.meter_models", "property", property_id, property_id=property_id,
                 before={"models": sorted(before)}, after={"models": sorted(models)})
    return row
