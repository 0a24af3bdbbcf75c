"""Seed a whole site in one call (demo, tests, first installation)."""
from . import provision


def seed_site(session, site_name, concentrators, tariff_price_mu_per_kwh=None, opening_balance_mu=0,
              tariff_name="flat", tariff_spec=None, low_balance_threshold_mu=0, tz_offset_s=28800,
              commit=True):
    """Create (or reuse) a site, its tariff, the concentrators, their meters
    and one account per meter, with an opening balance posted as a recharge.

    tariff_spec: a version spec of concentrator.tariff (docs/tariffs.md), a
    list of them (several versions, e.g. a scheduled price change), or the
    legacy {"kind": "flat", "price": N}; missing "version", "effective" (0)
    and "tz_offset_s" (the site's) are filled in. Without it, a flat tariff at
    tariff_price_mu_per_kwh.

    concentrators: [{"dev": "c1", "key_hex": "...64 hex...",
                     "meters": [{"id": "A101", "model": "sdm120",
                                 # optional: "index", "tenant", "opening_balance_mu",
                                 # "opening_energy_wh", "low_balance_threshold_mu"
                                 }, ...]}, ...]

    Returns {"site_id", "tariff_id", "concentrators": {dev: {"id", "key_hex",
    "meters": {meter_id: {"id", "index", "account_id"}}}}}.
    """
    site = provision.get_or_create_site(session, site_name, tz_offset_s)
    specs = tariff_spec if isinstance(tariff_spec, list) else [tariff_spec]
    rows = [provision.create_tariff(session, site.id, tariff_name, tariff_price_mu_per_kwh, spec=sp)
            for sp in specs]
    result = {"site_id": site.id, "tariff_id": rows[0].id, "tariff_version_ids": [r.id for r in rows],
              "concentrators": {}}
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
