"""Monthly statements for a whole property: statements issued and rendered
to PDF (Chinese) per second by one run (services.statements.execute with
the CLI's PDF writer), on SQLite. statement_batch_per_cpu_s: the same per
second of the process's CPU time (a figure that does not depend on what
else the machine runs).

The property: N tenant accounts, one meter each, a month of 15-minute
readings with band registers under a TOU tariff with a tier (2,880 readings
a meter), each charged as the ingest would (concentrator.tariff's
accumulator, one consumption ledger entry a reading), two sales and an
apportionment entry per account. Prints statement_batch_per_s (goal >= 20).
"""
import os
import tempfile
import time

from sqlalchemy import insert

from concentrator import tariff as T

TZ = 28800
MONTH = "2026-09"
SEPT = T.days_from_civil(2026, 9, 1) * 86400 - TZ
Q = 900
SPEC = {"prices": {"sharp": 12000, "peak": 10000, "flat": 6000, "valley": 3000},
        "tou": {"days": {"all": [["00:00", "valley"], ["08:00", "peak"], ["19:00", "sharp"], ["21:00", "flat"],
                                 ["23:00", "valley"]]},
                "seasons": [{"from": "01-01", "to": "12-31", "weekday": "all"}]},
        "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 230000, "add": 500}],
        "cycle": {"day": 1, "months": 1, "start_month": 1}, "effective": 0}


def build(sf, accounts, days):
    from headend.models import Account, LedgerEntry, Reading
    from headend.models.ledger import APPORTIONMENT, CONSUMPTION, RECHARGE
    from headend.services.actor import system_actor
    from headend.services.seed import seed_site
    meters = [{"id": "M%04d" % i, "model": "sdm120", "opening_energy_wh": 0, "tenant": "租户 Tenant %04d" % i}
              for i in range(accounts)]
    with sf() as s:
        res = seed_site(s, "Bench Court", [{"dev": "bench-c1", "meters": meters}], tariff_name="tou",
                        tariff_spec=dict(SPEC), commit=False)
        sa = system_actor(s)
        s.commit()
        c = res["concentrators"]["bench-c1"]
        versions = [dict(SPEC, version=1, tz_offset_s=TZ)]
        band_of = [T.band_at(versions, SEPT + k * Q) for k in range(days * 96)]
        rid = 0
        for i, m in enumerate(meters):
            info = c["meters"][m["id"]]
            power = 300 + (i * 37) % 900
            state, regs = T.new_state(), {b: 0 for b in T.BANDS}
            readings, entries = [], []
            bal = 0
            events = {0: (3000000, RECHARGE, "bench sale"), 10 * 96: (2000000, RECHARGE, "bench sale"),
                      20 * 96: (-56700, APPORTIONMENT, "pool:lift")}
            for k in range(days * 96):
                if k in events:
                    mu, kind, ref = events[k]
                    bal += mu
                    entries.append(dict(account_id=info["account_id"], kind=kind, amount_mu=mu, balance_after_mu=bal,
                                        user_id=sa.user_id, source="system", reference=ref, note="",
                                        created=SEPT + k * Q + 1))
                wh = power * Q // 3600 + (k % 7)
                regs[band_of[k]] += wh
                ts = SEPT + (k + 1) * Q
                if k == 0:
                    T.charge_registers(versions, state, dict(regs), ts - 1)
                    mu = T.charge(versions, state, band_of[k], wh, ts - 1)
                else:
                    mu = T.charge_registers(versions, state, dict(regs), ts - 1)
                rid += 1
                bands = [regs[b] for b in T.BANDS]
                readings.append(dict(id=rid, concentrator_id=c["id"], seq=rid, meter_index=info["index"],
                                     meter_id=info["id"], ts=ts, energy_wh=sum(bands), power_w=power, flags=0,
                                     bands=bands, charged_mu=T.total_charged(state), billed_mu=mu, billed=True,
                                     received=ts + 2))
                if mu:
                    bal -= mu
                    entries.append(dict(account_id=info["account_id"], kind=CONSUMPTION, amount_mu=-mu,
                                        balance_after_mu=bal, concentrator_id=c["id"], source="ingest",
                                        reference="reading:%d/seq:%d" % (rid, rid), note="", created=ts + 2))
            s.execute(insert(Reading), readings)
            s.execute(insert(LedgerEntry), entries)
            a = s.get(Account, info["account_id"])
            a.balance_mu = bal
            s.add(a)
        s.commit()
        return res["property_id"]


def run(quick=False):
    from headend.core import db, migrate
    from headend.services import statements
    from headend.services.actor import system_actor
    from headend.web import statement_doc
    accounts, days = (24, 30) if quick else (120, 30)
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine("sqlite:///" + os.path.join(tmp, "bench.db"))
        migrate.upgrade(engine)
        sf = db.session_factory(engine)
        t0 = time.monotonic()
        pid = build(sf, accounts, days)
        built = time.monotonic() - t0
        with sf() as s:
            run_ = statements.start_run(s, system_actor(s), pid, MONTH)
            s.commit()
            run_id = run_.id
        sizes = []

        def render(account, doc):
            sizes.append(len(statement_doc.render_pdf(doc, "zh-CN")))
        from headend.core import pdf
        f0 = time.monotonic()
        pdf.font_name()          # the CJK font is read once per process (a running head-end has it)
        font_s = time.monotonic() - f0
        t0, c0 = time.monotonic(), time.process_time()
        done = statements.execute(sf, run_id, render=render)
        dt, cpu = time.monotonic() - t0, time.process_time() - c0
        engine.dispose()
    return {"statement_batch_per_s": len(sizes) / dt,
            "statement_batch_per_cpu_s": len(sizes) / cpu,     # the same, per second of this process's CPU
            "statement_font_load_s": font_s, "statement_batch_accounts": done.done,
            "statement_readings_per_account": days * 96, "statement_pdf_kb": sum(sizes) // max(len(sizes), 1) // 1024,
            "statement_batch_build_s": built}
