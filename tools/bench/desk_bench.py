"""desk: the sales desk at the service level, on a throwaway PostgreSQL
database (the production one; made like the test suite's, on 127.0.0.1) or
on SQLite with --quick.

    desk_sale_ms           one sale (ledger entry, numbered receipt, audit row, credit push), median
    desk_sales_per_s       sales per second, one cashier after another
    desk_dayend_ms         the day-end report of a busy day (all its receipts)
    desk_dayend_receipts   receipts in that day
"""
import statistics
import tempfile
import time


def run(quick=False):
    from headend.core import db, migrate
    from headend.models import User
    from headend.services import dayend, receipts
    from headend.services.actor import system_actor
    from headend.services.sales import sell
    from headend.services.seed import seed_site
    from headend.services.users import actor_for, create_user
    n = 200 if quick else 2000
    if quick:
        url, drop = "sqlite:///" + tempfile.mkdtemp(prefix="wk-desk-") + "/desk.db", None
    else:
        from tests.conftest import pg_database
        url, drop = pg_database()
    engine = db.make_engine(url)
    try:
        migrate.upgrade(engine)
        sf = db.session_factory(engine)
        with sf() as s:
            seeded = seed_site(s, "Bench Court", [{"dev": "bench-c%d" % c, "meters": [
                {"id": "B%d-%02d" % (c, k), "opening_energy_wh": 0} for k in range(16)]} for c in range(4)],
                tariff_price_mu_per_kwh=6000)
            accs = [m["account_id"] for c in seeded["concentrators"].values() for m in c["meters"].values()]
            uid = create_user(s, system_actor(s), "bench-cashier", "bench-password", role="cashier",
                              property_ids=[seeded["property_id"]]).id
            s.commit()
        times = []
        t_all = time.monotonic()
        for i in range(n):
            t0 = time.perf_counter()
            with sf() as s:
                actor = actor_for(s, s.get(User, uid))
                sell(s, actor, accs[i % len(accs)], 5000 + 100 * (i % 50), method=("cash", "wechat")[i % 2],
                     idempotency_key="bench-%d" % i)
                s.commit()
            times.append(time.perf_counter() - t0)
        wall = time.monotonic() - t_all
        with sf() as s:
            admin = system_actor(s)
            day = receipts.open_day(s, seeded["property_id"])
            t0 = time.perf_counter()
            rep = dayend.report(s, admin, seeded["property_id"], day)
            report_ms = (time.perf_counter() - t0) * 1000
        assert rep["reconciled"], rep["problems"]
        return {"desk_sale_ms": round(statistics.median(times) * 1000, 2), "desk_sales_per_s": round(n / wall, 1),
                "desk_dayend_ms": round(report_ms, 1), "desk_dayend_receipts": rep["totals"]["count"]}
    finally:
        engine.dispose()
        if drop:
            drop()
