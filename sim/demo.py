"""`wattkeeper demo`: the head-end with a simulated site on the embedded
defaults (SQLite file, embedded amqtt broker), on an accelerated clock.

Two concentrators with eight meters each (SDM120s behind contactors and
prepaid meters with their own relays). A few tenants start with little
credit, so within the first simulated hours their relays open; recharge them
on the dashboard and watch the relay close again.
"""
import os
import shutil
import signal
import time

from sim.stack import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOW_CREDIT = {"C1-102": 3000, "C1-105": 6000, "C2-101": 4000, "C2-104": 9000}


def add_arguments(ap):
    ap.add_argument("--port", type=int, default=8000, help="dashboard/API port (default 8000)")
    ap.add_argument("--speed", type=float, default=60.0,
                    help="virtual seconds per wall second (default 60: an hour a minute)")
    ap.add_argument("--concentrators", type=int, default=2)
    ap.add_argument("--meters", type=int, default=8, help="meters per concentrator")
    ap.add_argument("--duration", type=float, default=None,
                    help="stop after this many simulated seconds (default: run until Ctrl-C)")
    ap.add_argument("--dir", default=os.path.join(ROOT, "var", "demo"),
                    help="where the demo keeps its database and flash images (wiped at start)")


def run(args):
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    db_url = "sqlite:///" + os.path.join(args.dir, "wattkeeper.db")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    st = Stack(broker="amqtt", database_url=db_url, workdir=args.dir, http_port=args.port,
               concentrators=args.concentrators, meters=args.meters, balances=LOW_CREDIT,
               name="demo")
    try:
        st.start()
        print("Wattkeeper demo: %d concentrators x %d meters, clock x%g" % (
            args.concentrators, args.meters, args.speed))
        print("  MQTT broker (amqtt):  %s" % st.broker.url)
        print("  database:             %s" % db_url)
        print("  Dashboard:            http://127.0.0.1:%d/" % st.http_port)
        print("  API docs:             http://127.0.0.1:%d/docs" % st.http_port)
        print("Ctrl-C stops.", flush=True)
        t_last = time.monotonic()
        ran = 0
        while not stop["now"]:
            chunk = 60 if args.duration is None else min(60, args.duration - ran)
            if chunk <= 0:
                break
            ran += st.site.run(chunk, tick_s=1 if args.speed <= 600 else 5, speed=args.speed)
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
