"""`wattkeeper demo`: the head-end with a simulated site on the embedded
defaults (SQLite file, embedded amqtt broker), on an accelerated clock.

Two concentrators with eight meters each (SDM120s behind contactors and
prepaid meters with their own relays). A few tenants start with little
credit, so within the first simulated hours their relays open; log in as the
cashier, recharge them at the sales desk and watch the relay close again.
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


def add_demo_users(st):
    for name, (role, password) in DEMO_USERS.items():
        st.add_user(name, role, password=password)
    tenant_id = st.seeded["concentrators"]["demo-c1"]["meters"][TENANT_METER]["tenant_id"]
    st.add_user(TENANT_LOGIN[0], tenant_id=tenant_id, password=TENANT_LOGIN[1])


def run(port=8000, speed=60.0, concentrators=2, meters=8, duration=None, workdir=None):
    workdir = workdir or os.path.join(ROOT, "var", "demo")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    db_url = "sqlite:///" + os.path.join(workdir, "wattkeeper.db")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    st = Stack(broker="amqtt", database_url=db_url, workdir=workdir, http_port=port,
               concentrators=concentrators, meters=meters, balances=LOW_CREDIT, name="demo")
    try:
        st.start()
        add_demo_users(st)
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
        print("Ctrl-C stops.", flush=True)
        t_last = time.monotonic()
        ran = 0
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
