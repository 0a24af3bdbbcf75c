"""`wattkeeper demo`: the head-end with a simulated site on the embedded
defaults (SQLite file, embedded amqtt broker), on an accelerated clock.

Two concentrators with eight meters each (SDM120s behind contactors and
prepaid meters with their own relays). A few tenants start with little
credit, so within the first simulated hours their relays open; log in as the
cashier, recharge them at the sales desk and watch the relay close again.
Building 2's last meter is its lift and corridors (no unit, no tenant): a
common-area pool shares its energy among the building's tenants by floor
area, for the manager to preview and post under Apportionment.
One login per role and a tenant's portal login are printed at start.
"""
import os
import shutil
import signal
import time

from sim.stack import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOW_CREDIT = {"C1-102": 3000, "C1-105": 6000, "C2-101": 4000, "C2-104": 9000}
# user name -> (role, password); the tenant's login is for the tenant of TENANT_METER
DEMO_USERS = {
    "admin": ("admin", "admin-demo"),
    "manager": ("manager", "manager-demo"),
    "cashier": ("cashier", "cashier-demo"),
    "technician": ("technician", "technician-demo"),
    "viewer": ("viewer", "viewer-demo"),
}
TENANT_LOGIN = ("tenant", "tenant-demo")
TENANT_METER = "C1-102"
# the lift and corridor lighting of building 2: a common-area meter (no unit, no tenant:
# billed to the property), shared out every month among the building's units by floor area
COMMON_METER = ("C2-108", "Lift and corridors, building 2")


def add_demo_users(st):
    for name, (role, password) in DEMO_USERS.items():
        st.add_user(name, role, password=password)
    tenant_id = st.seeded["concentrators"]["demo-c1"]["meters"][TENANT_METER]["tenant_id"]
    st.add_user(TENANT_LOGIN[0], tenant_id=tenant_id, password=TENANT_LOGIN[1])


def add_demo_pool(session, seeded):
    """The demo's apportionment pool (公摊): COMMON_METER's energy, split by
    floor area among its building's occupied units (vacant ones left out);
    None when the site has no such meter (a smaller demo)."""
    from headend.models.apportionment import KIND_COMMON, RULE_AREA
    from headend.services import apportionment
    from headend.services.actor import system_actor
    meter_id, name = COMMON_METER
    for c in seeded["concentrators"].values():
        m = c["meters"].get(meter_id)
        if m is not None:
            return apportionment.create_pool(session, system_actor(session, source="system"), seeded["property_id"],
                                             name, kind=KIND_COMMON, rule=RULE_AREA, building_id=c["building_id"],
                                             meter_ids=[m["id"]], vacant_weight_pct=0)
    return None


def hold_common_relay(session, pool):
    """The common-area meter is billed to the property (its vacancy
    account, without credit): its relay is held closed, as a technician
    holds a lift's (the board must be online to hear it)."""
    from headend.models import Concentrator, Meter
    from headend.services import commands
    from headend.services.actor import system_actor
    from headend.services.lifecycle import VACANT_HOLD_S
    now = int(time.time())
    for meter in [session.get(Meter, i) for i in pool.meter_ids]:
        commands.queue_relay(session, system_actor(session, source="system"),
                             session.get(Concentrator, meter.concentrator_id), meter, "closed", now + VACANT_HOLD_S,
                             now, why="common-area meter")


def run(port=8000, speed=60.0, concentrators=2, meters=8, duration=None, workdir=None):
    workdir = workdir or os.path.join(ROOT, "var", "demo")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    db_url = "sqlite:///" + os.path.join(workdir, "wattkeeper.db")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    st = Stack(broker="amqtt", database_url=db_url, workdir=workdir, http_port=port,
               concentrators=concentrators, meters=meters, balances=LOW_CREDIT, name="demo",
               common=[COMMON_METER[0]])
    try:
        st.start()
        add_demo_users(st)
        with st.session() as s:
            pool = add_demo_pool(s, st.seeded)
            s.commit()
        print("Wattkeeper demo: %d concentrators x %d meters, clock x%g" % (concentrators, meters, speed))
        print("  MQTT broker (amqtt):  %s" % st.broker.url)
        print("  database:             %s" % db_url)
        print("  Dashboard:            http://127.0.0.1:%d/" % st.http_port)
        print("  API docs:             http://127.0.0.1:%d/docs" % st.http_port)
        print("  CLI on this database: .venv/bin/wattkeeper --db %s recharge ACCOUNT 50.00 --as cashier" % db_url)
        print("  Logins (user / password):")
        for name, (role, password) in DEMO_USERS.items():
            print("    %-11s %-11s / %-16s %s" % (role, name, password, "(sales desk: /staff/desk)"
                                                  if role == "cashier" else ""))
        print("    %-11s %-11s / %-16s (tenant of %s: /portal)" % ("tenant", TENANT_LOGIN[0], TENANT_LOGIN[1],
                                                                   TENANT_METER))
        if pool is not None:
            print("  Apportionment (公摊):  pool %r, meter %s; the manager previews and posts it at /staff/apportionment"
                  % (COMMON_METER[1], COMMON_METER[0]))
        print("Ctrl-C stops.", flush=True)
        t_last = time.monotonic()
        ran = st.site.run(30, tick_s=1, speed=speed)     # the boards connect
        if pool is not None:
            with st.session() as s:
                hold_common_relay(s, s.merge(pool))
                s.commit()
        while not stop["now"]:
            chunk = 60 if duration is None else min(60, duration - ran)
            if chunk <= 0:
                break
            ran += st.site.run(chunk, tick_s=1 if speed <= 600 else 5, speed=speed)
            if time.monotonic() - t_last > 10:
                t_last = time.monotonic()
                vt = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.site.now() + 28800))
                print("  simulated time %s (site local), %d records waiting for ack"
                      % (vt, st.site.pending()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        st.stop()
        print("demo stopped")
    return 0
