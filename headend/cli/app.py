"""`wattkeeper`: serve the head-end, manage the database, users, devices and
money from the server's shell. `wattkeeper --help` lists the commands; each
has --help too. Settings come from WK_* environment variables (core/config.py);
--db overrides the database URL for any command."""
import json
import logging
import sys
import time
from typing import Optional

import typer

from ..services.errors import DomainError
from . import broker_cmd, common, db_cmd, desk_cmd, provision_cmd, statements_cmd, users_cmd
from .common import console, session_scope

app = typer.Typer(name="wattkeeper", help="Wattkeeper prepaid metering head-end.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(db_cmd.app, name="db", help="The database: upgrade, downgrade, check, backup.")
app.add_typer(users_cmd.app, name="user", help="Staff users and tenants' logins.")
app.add_typer(users_cmd.token_app, name="token", help="Long-lived API tokens.")
app.add_typer(provision_cmd.app, name="provision", help="Properties, concentrators, meters, tariffs.")
desk_cmd.register(app)
statements_cmd.register(app)
app.command("broker-config")(broker_cmd.broker_config)


@app.callback()
def _root(db: Optional[str] = typer.Option(None, "--db", help="database URL (default $WK_DATABASE_URL or "
                                                              "sqlite ./var/wattkeeper.db)")):
    common.state["db"] = db


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="listen address (default $WK_HOST, 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="HTTP port (default $WK_PORT, 8000)"),
          mqtt: Optional[str] = typer.Option(None, help="broker URL mqtt://[user:pass@]host:port"),
          embedded_broker: bool = typer.Option(False, help="start an amqtt broker on the MQTT URL's port"),
          shared: bool = typer.Option(False, help="use the shared subscription $share/wk-headend/wk/+/up"),
          no_mqtt: bool = typer.Option(False, help="HTTP only"),
          log_level: str = typer.Option("info")):
    """Run the HTTP API, the dashboard and the MQTT ingest. On a new database
    it creates the first admin and prints a one-time password."""
    import uvicorn

    from ..core import db, heap, migrate
    from ..main import create_app
    from ..services.users import ensure_first_admin
    st = common.settings(host=host, port=port, mqtt_url=mqtt, embedded_broker=embedded_broker,
                         mqtt_shared=shared)
    engine = db.make_engine(st.database_url)
    migrate.upgrade(engine)
    with db.session_factory(engine)() as s:
        first = ensure_first_admin(s)
        s.commit()
    if first is not None:
        console.print("[bold]First start:[/] created user [bold]%s[/] with the one-time password "
                      "[bold]%s[/] (change it after logging in)" % (first[0].username, first[1]))
    app_ = create_app(st, start_mqtt=not no_mqtt, engine=engine, migrate_db=False)
    heap.settle()
    console.print("Wattkeeper head-end on http://%s:%d (MQTT %s%s)" % (
        st.host, st.port, st.mqtt_url, ", embedded broker" if st.embedded_broker else ""))
    sys.stdout.flush()
    uvicorn.run(app_, host=st.host, port=st.port, log_level=log_level)


@app.command()
def worker(mqtt: Optional[str] = typer.Option(None, help="broker URL mqtt://[user:pass@]host:port"),
           shared: bool = typer.Option(True, help="use the shared subscription $share/wk-headend/wk/+/up"),
           client_id: Optional[str] = typer.Option(None, help="MQTT client id (default: random)"),
           partition: Optional[str] = typer.Option(None, help="i/n: handle only the boards whose id is i "
                                                   "modulo n, instead of the shared subscription")):
    """Run one MQTT ingest worker without HTTP: start as many as the load
    needs, on PostgreSQL, next to `serve` (docs/scale-design.md)."""
    import signal
    import threading

    from ..core import db, heap, migrate
    from ..ingest import Ingest
    from ..transport.mqtt import MqttService
    st = common.settings(mqtt_url=mqtt, mqtt_shared=shared, mqtt_partition=partition)
    part, shared = st.partition, st.shared_ingest
    engine = db.make_engine(st.database_url)
    migrate.upgrade(engine)
    sf = db.session_factory(engine)
    heap.settle()
    svc = MqttService(Ingest(sf, outbox=shared), st.mqtt_url, shared=shared, session_factory=sf,
                      client_id=client_id or st.mqtt_client_id or None, ca_file=st.mqtt_ca_file or None,
                      batch_max=st.ingest_batch, linger_s=st.ingest_linger_ms / 1000.0, partition=part).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: done.set())
    signal.signal(signal.SIGINT, lambda *_a: done.set())
    svc.wait_ready(30)
    console.print("ingest worker %s on %s (%s%s)" % (svc.client_id, st.mqtt_url, svc.topic,
                                                      ", boards %d/%d" % part if part else ""))
    sys.stdout.flush()
    last = time.monotonic()
    while not done.wait(1):
        if st.worker_stats_s and time.monotonic() - last >= st.worker_stats_s:
            last = time.monotonic()
            print(worker_stats_line(svc), flush=True)     # one plain line (Rich would wrap it)
    svc.stop()


def worker_stats_line(svc):
    """One line of a worker's counters since it started (what an operator
    greps for): messages received, handled, rejected; transactions and the
    messages deferred to a second one (another worker held their board);
    the local queue; downlinks sealed and published."""
    ing, mq = svc.ingest.stats.snapshot(), svc.snapshot()
    keys = (("received", mq.get("received", 0)), ("accepted", ing.get("accepted", 0)),
            ("rejected", ing.get("rejected", 0)), ("errors", ing.get("errors", 0)),
            ("batches", mq.get("batches", 0)), ("deferred", ing.get("batch_deferred", 0)),
            ("queue", mq.get("queue", 0)), ("queue_full", mq.get("queue_full", 0)),
            ("downlinks", ing.get("downlinks", 0)), ("published", mq.get("published", 0)),
            ("other_partition", mq.get("other_partition", 0)))
    return "stats " + " ".join("%s=%d" % kv for kv in keys)


@app.command()
def broker(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(1883)):
    """Run the embedded MQTT broker (amqtt) in the foreground."""
    from ..transport.broker import main as broker_main
    broker_main(["--host", host, "--port", str(port)])


@app.command()
def seed(file: str = typer.Argument(..., help="JSON with seed_site's arguments (services/seed.py)")):
    """Seed a property from a JSON file."""
    from ..services.seed import seed_site
    with open(file) as f:
        spec = json.load(f)
    with session_scope() as s:
        console.print_json(data=seed_site(s, **spec))


@app.command("accounts")
def list_accounts():
    """List accounts and balances."""
    from rich.table import Table

    from ..core.money import format_money
    from ..services.accounts import list_accounts as _list
    with session_scope(must_exist=True) as s:
        t = Table("id", "property", "name", "kind", "balance")
        for a in _list(s, common.actor_named(s, None)):
            t.add_row(str(a.id), str(a.property_id), a.name, a.kind, format_money(a.balance_mu))
        console.print(t)


@app.command("meters")
def list_meters(search: str = typer.Option("", help="only meters whose id, board, tenant or unit contains this"),
                limit: int = typer.Option(100, min=1, max=1000, help="rows to show"),
                offset: int = typer.Option(0, min=0, help="rows to skip")):
    """List meters with their account, balance, last reading and relay."""
    from rich.table import Table

    from ..core.paging import Paging
    from ..services.meters import meter_rows
    with session_scope(must_exist=True) as s:
        t = Table("meter", "concentrator", "unit", "tenant", "balance", "kWh", "relay")
        found = meter_rows(s, common.actor_named(s, None), common.settings().offline_after_s,
                           paging=Paging(limit=limit, offset=offset, q=search))
        t.caption = "%d-%d of %d" % (found.first, found.last, found.total)
        for r in found.items:
            t.add_row(r["meter_id"], r["concentrator"], r["unit"] or "-", r["tenant"] or "-", r["balance"] or "-",
                      r["last_kwh"] or "-", {True: "closed", False: "open", None: "?"}[r["relay_closed"]])
        console.print(t)


@app.command()
def demo(port: int = typer.Option(8000, help="dashboard/API port"),
         speed: float = typer.Option(60.0, help="virtual seconds per wall second (60: an hour a minute)"),
         concentrators: int = typer.Option(2), meters: int = typer.Option(8, help="meters per concentrator"),
         duration: Optional[float] = typer.Option(None, help="stop after this many simulated seconds"),
         dir: Optional[str] = typer.Option(None, help="where the demo keeps its database and flash (wiped)")):
    """The head-end with a simulated site (embedded broker, SQLite, fast clock)."""
    from sim import demo as sim_demo
    raise typer.Exit(sim_demo.run(port=port, speed=speed, concentrators=concentrators, meters=meters,
                                  duration=duration, workdir=dir))


def run(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("transitions", "amqtt", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        rv = app(args=argv, prog_name="wattkeeper", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except DomainError as e:
        common.err_console.print("[bold red]error:[/] %s" % e.message)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except Exception as e:   # click usage errors
        import click
        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(run())
