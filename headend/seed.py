"""Seed a whole site in one call (demo, tests, first installation)."""
from . import provision


def seed_site(session, site_name, concentrators, tariff_price_mu_per_kwh, opening_balance_mu=0,
              tariff_name="flat", tariff_spec=None, low_balance_threshold_mu=0, tz_offset_s=28800,
              commit=True):
    """Create (or reuse) a site, a flat tariff, the concentrators, their meters
    and one account per meter, with an opening balance posted as a recharge.

    concentrators: [{"dev": "c1", "key_hex": "...64 hex...",
                     "meters": [{"id": "A101", "model": "sdm120",
                                 # optional: "index", "tenant", "opening_balance_mu",
                                 # "opening_energy_wh", "low_balance_threshold_mu"
                                 }, ...]}, ...]

    Returns {"site_id", "tariff_id", "concentrators": {dev: {"id", "key_hex",
    "meters": {meter_id: {"id", "index", "account_id"}}}}}.
    """
    site = provision.get_or_create_site(session, site_name, tz_offset_s)
    tariff = provision.create_tariff(session, site.id, tariff_name, tariff_price_mu_per_kwh, spec=tariff_spec)
    result = {"site_id": site.id, "tariff_id": tariff.id, "concentrators": {}}
    for c in concentrators:
        conc = provision.create_concentrator(session, site.id, c["dev"], c.get("key_hex"))
        rc = result["concentrators"][conc.dev] = {"id": conc.id, "key_hex": conc.key_hex, "meters": {}}
        for i, m in enumerate(c.get("meters", [])):
            acc = provision.create_account(
                session, site.id, m.get("tenant") or ("Tenant " + m["id"]),
                low_balance_threshold_mu=m.get("low_balance_threshold_mu", low_balance_threshold_mu),
                opening_balance_mu=m.get("opening_balance_mu", opening_balance_mu), actor="seed")
            meter = provision.create_meter(session, conc.id, m["id"], m.get("model", ""),
                                           index=m.get("index", i), account_id=acc.id,
                                           opening_energy_wh=m.get("opening_energy_wh"))
            rc["meters"][meter.meter_id] = {"id": meter.id, "index": meter.index, "account_id": acc.id}
    if commit:
        session.commit()
    return result
