"""api: how long the staff list takes at scale, on PostgreSQL.

A property of 10,000 meters (313 concentrators of 32; units, tenants,
accounts, occupancies; --quick: 2,000) with a year of readings (one a day
per meter, 3.65 million rows in month partitions; --quick: 30 days), served
by `wattkeeper serve` in its own process. Over HTTP, as a browser and an API
client would: GET /staff (the dashboard's meter page, cookie session) and
GET /api/meters (bearer token), each on the first page, a random page and a
search, repeated.

    api_staff_page_p95_ms      95th percentile of GET /staff?... (goal <= 150 ms)
    api_meter_list_p95_ms      95th percentile of GET /api/meters?... (goal <= 150 ms)
    api_staff_page_p50_ms, api_meter_list_p50_ms
    api_meter_list_bytes       size of one page of /api/meters (100 meters)
    api_meters, api_readings   what the database held
"""
import os
import random
import sys
import tempfile
import time

import httpx
from sqlalchemy import text

METERS_PER_BOARD = 32
T_END = 1796083200                 # 2026-12-01 00:00 UTC
DAY = 86400


def build(engine, meters, days):
    """The property, its boards, meters and people (ORM, in chunks), then
    the readings (COPY)."""
    from headend.core import db, partitions
    from headend.models import Account, Concentrator, Meter, Occupancy, Tenant, Unit
    from headend.services import properties
    from headend.services.actor import system_actor
    from tools.bench.ingest_bench import READING_COLUMNS, _copy
    sf = db.session_factory(engine)
    boards = -(-meters // METERS_PER_BOARD)
    ids = []
    with sf() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Scale Gardens")
        bld = [properties.create_building(s, sa, p.id, "Tower %d" % b) for b in range(1 + meters // 1000)]
        s.flush()
        concs = [Concentrator(dev="sg-c%04d" % c, property_id=p.id, key_hex=os.urandom(32).hex(), online=True,
                              last_seen=T_END, acked_seq=days * METERS_PER_BOARD) for c in range(boards)]
        s.add_all(concs)
        s.flush()
        for k in range(meters):
            b = bld[k // 1000]
            u = Unit(building_id=b.id, property_id=p.id, name="%d-%03d" % (k // 1000 + 1, k % 1000), floor=k % 30)
            t = Tenant(property_id=p.id, name="Tenant %05d" % k)
            s.add_all([u, t])
            if k % 500 == 499:
                s.flush()
        s.flush()
        units = s.exec(select_all(Unit)).all()
        tenants = s.exec(select_all(Tenant)).all()
        for k, (u, t) in enumerate(zip(units, tenants)):
            a = Account(property_id=p.id, tenant_id=t.id, name=t.name, balance_mu=(k % 97) * 10000,
                        low_balance_threshold_mu=50000)
            s.add(a)
            if k % 500 == 499:
                s.flush()
        s.flush()
        accounts = s.exec(select_all(Account)).all()
        for k, (u, a) in enumerate(zip(units, accounts)):
            c = concs[k // METERS_PER_BOARD]
            s.add(Occupancy(account_id=a.id, unit_id=u.id, start=T_END - days * DAY))
            s.add(Meter(concentrator_id=c.id, index=k % METERS_PER_BOARD, meter_id="SG-%05d" % k, model="sdm120",
                        unit_id=u.id, account_id=a.id, last_seq=days, last_energy_wh=1000 * days, last_power_w=300,
                        last_ts=T_END, relay_closed=k % 13 != 0, online=True, billed_energy_wh=1000 * days))
            if k % 500 == 499:
                s.flush()
        s.commit()
        ids = [(m.id, m.concentrator_id, m.index) for m in s.exec(select_all(Meter)).all()]
    with engine.begin() as c:
        partitions.ensure(c, T_END, 3, since=T_END - days * DAY)
    raw = engine.raw_connection()
    try:
        for d in range(days):
            ts = T_END - (days - d) * DAY
            rows = [(conc, d * METERS_PER_BOARD + idx + 1, idx, mid, ts, 1000 * d, 300, 0, "[]", None, 6000, True, ts)
                    for mid, conc, idx in ids]
            _copy(raw, "reading", READING_COLUMNS, rows)
            raw.commit()
    finally:
        raw.close()
    with engine.begin() as c:
        c.execute(text("ANALYZE"))
        return c.execute(text("SELECT count(*) FROM reading")).scalar()


def select_all(model):
    from sqlmodel import select
    return select(model).order_by(model.id)


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p / 100.0)))]


def _time(client, url, params, rounds, rng, pages):
    """Latencies (ms) of `rounds` GETs: first page, a random page, a search."""
    out, size = [], 0
    for i in range(rounds):
        kind = i % 3
        q = dict(params)
        if kind == 1:
            q["offset"] = rng.randrange(pages) * 100
        elif kind == 2:
            q["q"] = "Tenant %05d" % rng.randrange(pages * 100)
        t0 = time.perf_counter()
        r = client.get(url, params=q)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError("%s -> %d %s" % (url, r.status_code, r.text[:200]))
        if kind == 0:
            size = len(r.content)
    return out, size


def run(quick=False):
    from headend.core import db, migrate
    from headend.services import auth, users
    from headend.services.actor import system_actor
    from sim.stack import serve_http
    from tools.pgtemp import temp_database
    meters, days, rounds = (2000, 30, 60) if quick else (10000, 365, 300)
    url, drop = temp_database("wk_bench_")
    engine = db.make_engine(url)
    proc = None
    try:
        migrate.upgrade(engine)
        readings = build(engine, meters, days)
        with db.session_factory(engine)() as s:
            u = users.create_user(s, system_actor(s), "bench-admin", "bench-password", role="admin")
            _t, token = auth.create_api_token(s, users.actor_for(s, u), "bench")
            s.commit()
        with tempfile.TemporaryFile() as log:
            proc, base = serve_http(url, log)
            rng = random.Random(7)
            pages = meters // 100
            with httpx.Client(base_url=base, timeout=30, headers={"Authorization": "Bearer " + token}) as api:
                api.get("/api/meters")                          # warm-up
                api_ms, api_bytes = _time(api, "/api/meters", {"limit": 100}, rounds, rng, pages)
            with httpx.Client(base_url=base, timeout=30) as web:
                r = web.post("/login", data={"username": "bench-admin", "password": "bench-password"})
                if r.status_code not in (200, 303):
                    raise RuntimeError("login failed: %d" % r.status_code)
                web.get("/staff")
                staff_ms, _ = _time(web, "/staff", {}, rounds, rng, pages)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        engine.dispose()
        drop()
    return {"api_staff_page_p95_ms": round(_pct(staff_ms, 95), 1),
            "api_meter_list_p95_ms": round(_pct(api_ms, 95), 1),
            "api_staff_page_p50_ms": round(_pct(staff_ms, 50), 1),
            "api_meter_list_p50_ms": round(_pct(api_ms, 50), 1),
            "api_meter_list_bytes": api_bytes, "api_meters": meters, "api_readings": readings}


if __name__ == "__main__":
    for k, v in run(quick="--quick" in sys.argv).items():
        print("%s: %s" % (k, v))
