"""Seed a whole property in one call (demo, tests, a first installation):
the property, a building per concentrator, a unit per meter with its
tenant, account and occupancy, the tariff, the boards and their meters."""
from . import accounts, devices, properties, tariffs
from .actor import system_actor
from .sales import sell


def seed_site(session, name, concentrators, tariff_price_mu_per_kwh=None, opening_balance_mu=0,
              tariff_name="flat", tariff_spec=None, low_balance_threshold_mu=0, tz_offset_s=28800,
              commit=True, actor=None):
    """tariff_spec: a version spec of concentrator.tariff (docs/tariffs.md) or
    a list of them; without it, a flat tariff at tariff_price_mu_per_kwh.

    concentrators: [{"dev": "c1", "key_hex": "...64 hex...", "building": "A" (optional),
                     "meters": [{"id": "A101", "model": "sdm120",
                                 # optional: "index", "tenant", "unit", "floor", "floor_area_dm2",
                                 # "opening_balance_mu", "opening_energy_wh",
                                 # "low_balance_threshold_mu", "vacant": true,
                                 # "common": true (a common-area meter: no unit, no account)
                                 }, ...]}, ...]

    Returns {"property_id", "tariff_id", "tariff_version_ids", "concentrators":
    {dev: {"id", "key_hex", "building_id", "meters": {meter_id: {"id", "index",
    "unit_id", "account_id", "tenant_id"}}}}}."""
    actor = actor or system_actor(session, source="system")
    prop = properties.get_or_create_property(session, actor, name, tz_offset_s)
    specs = tariff_spec if isinstance(tariff_spec, list) else [tariff_spec]
    rows = [tariffs.create_tariff(session, actor, prop.id, tariff_name, tariff_price_mu_per_kwh, spec=sp)
            for sp in specs]
    result = {"property_id": prop.id, "tariff_id": rows[0].id, "tariff_version_ids": [r.id for r in rows],
              "concentrators": {}}
    for k, c in enumerate(concentrators):
        building = properties.get_or_create_building(session, actor, prop.id, c.get("building") or
                                                     "Building %d" % (k + 1))
        conc = devices.create_concentrator(session, actor, prop.id, c["dev"], c.get("key_hex"))
        rc = result["concentrators"][conc.dev] = {"id": conc.id, "key_hex": conc.key_hex,
                                                  "building_id": building.id, "meters": {}}
        for i, m in enumerate(c.get("meters", [])):
            if m.get("common"):
                # the lift, the corridor lights: billed to the property (its vacancy account), shared
                # out by an apportionment pool
                meter = devices.create_meter(session, actor, conc.id, m["id"], m.get("model", ""),
                                             index=m.get("index", i), opening_energy_wh=m.get("opening_energy_wh"))
                rc["meters"][meter.meter_id] = {"id": meter.id, "index": meter.index, "unit_id": None,
                                                "account_id": None, "tenant_id": None}
                continue
            unit = properties.create_unit(session, actor, building.id, m.get("unit") or m["id"],
                                          floor=m.get("floor", 1 + i // 4),
                                          floor_area_dm2=m.get("floor_area_dm2", 6000 + 500 * (i % 5)))
            acc = None
            if not m.get("vacant"):
                acc = accounts.create_account(
                    session, actor, prop.id, tenant_name=m.get("tenant") or ("Tenant " + m["id"]),
                    low_balance_threshold_mu=m.get("low_balance_threshold_mu", low_balance_threshold_mu))
                accounts.occupy(session, actor, acc.id, unit.id, start=0)
                bal = m.get("opening_balance_mu", opening_balance_mu)
                if bal:
                    sell(session, actor, acc.id, bal, note="opening balance", push=False)
            meter = devices.create_meter(session, actor, conc.id, m["id"], m.get("model", ""),
                                         index=m.get("index", i), unit_id=unit.id,
                                         account_id=acc.id if acc else None,
                                         opening_energy_wh=m.get("opening_energy_wh"))
            rc["meters"][meter.meter_id] = {"id": meter.id, "index": meter.index, "unit_id": unit.id,
                                            "account_id": acc.id if acc else None,
                                            "tenant_id": acc.tenant_id if acc else None}
    if commit:
        session.commit()
    return result
