"""`wattkeeper` command line.

    wattkeeper serve [--host H] [--port P] [--db URL] [--mqtt URL] [--embedded-broker] [--shared] [--no-mqtt]
    wattkeeper broker [--host H] [--port P]
    wattkeeper init-db
    wattkeeper provision site NAME
    wattkeeper provision concentrator --site NAME --dev ID [--key HEX]
    wattkeeper provision meter --dev ID --meter-id M [--model X] [--index I] [--account ID | --tenant NAME]
    wattkeeper provision tariff --site NAME --price-mu-per-kwh N [--name flat] [--effective UNIX]
    wattkeeper seed FILE.json         (headend.seed.seed_site arguments as JSON)
    wattkeeper recharge ACCOUNT_ID AMOUNT --actor NAME
    wattkeeper accounts | meters
    wattkeeper demo [--port P] [--speed X] [--duration S]   (simulated site + head-end)

Settings come from WK_* environment variables (headend/settings.py); options override them.
"""
import argparse
import json
import logging
import sys

from sqlmodel import select

from . import db, ledger, provision
from .settings import Settings


def _settings(args):
    over = {}
    if getattr(args, "db", None):
        over["database_url"] = args.db
    if getattr(args, "mqtt", None):
        over["mqtt_url"] = args.mqtt
    if getattr(args, "host", None):
        over["host"] = args.host
    if getattr(args, "port", None):
        over["port"] = args.port
    if getattr(args, "embedded_broker", False):
        over["embedded_broker"] = True
    if getattr(args, "shared", False):
        over["mqtt_shared"] = True
    return Settings.from_env(**over)


def _session(args):
    engine = db.make_engine(_settings(args).database_url)
    db.init_db(engine)
    return db.session_factory(engine)()


def _site_id(s, name):
    return provision.get_or_create_site(s, name).id


def cmd_serve(args):
    import uvicorn

    from .app import create_app
    st = _settings(args)
    app = create_app(st, start_mqtt=not args.no_mqtt)
    print("Wattkeeper head-end on http://%s:%d (MQTT %s%s)" % (
        st.host, st.port, st.mqtt_url, ", embedded broker" if st.embedded_broker else ""), flush=True)
    uvicorn.run(app, host=st.host, port=st.port, log_level=args.log_level)
    return 0


def cmd_broker(args):
    from .broker import main as broker_main
    broker_main(["--host", args.host or "127.0.0.1", "--port", str(args.port or 1883)])
    return 0


def cmd_init_db(args):
    with _session(args):
        pass
    print("database ready:", _settings(args).database_url)
    return 0


def cmd_provision(args):
    with _session(args) as s:
        if args.what == "site":
            site = provision.create_site(s, args.name)
            s.commit()
            print("site %d %s" % (site.id, site.name))
        elif args.what == "concentrator":
            c = provision.create_concentrator(s, _site_id(s, args.site), args.dev, args.key)
            s.commit()
            print(json.dumps({"id": c.id, "dev": c.dev, "key_hex": c.key_hex}))
        elif args.what == "meter":
            from .models import Concentrator
            c = s.exec(select(Concentrator).where(Concentrator.dev == args.dev)).first()
            if c is None:
                raise provision.ProvisionError("no concentrator %r" % args.dev)
            account = args.account
            if account is None and args.tenant:
                account = provision.create_account(s, c.site_id, args.tenant).id
            m = provision.create_meter(s, c.id, args.meter_id, args.model, args.index, account,
                                       args.opening_energy_wh)
            s.commit()
            print(json.dumps({"id": m.id, "meter_id": m.meter_id, "index": m.index, "account_id": m.account_id}))
        elif args.what == "tariff":
            t = provision.create_tariff(s, _site_id(s, args.site), args.name, args.price_mu_per_kwh,
                                        effective=args.effective)
            s.commit()
            print(json.dumps({"id": t.id, "name": t.name, "version": t.version,
                              "price_mu_per_kwh": t.price_mu_per_kwh}))
    return 0


def cmd_seed(args):
    from .seed import seed_site
    with open(args.file) as f:
        spec = json.load(f)
    with _session(args) as s:
        print(json.dumps(seed_site(s, **spec), indent=1))
    return 0


def cmd_recharge(args):
    amount_mu = ledger.parse_amount(args.amount)
    if amount_mu <= 0:
        raise ledger.LedgerError("a recharge must be positive")
    with _session(args) as s:
        e = ledger.post(s, args.account, "recharge", amount_mu, actor=args.actor)
        s.commit()  # boards get the new balance on their next hello (or run this via the API to push it now)
        print("account %d: +%s -> %s" % (args.account, ledger.format_mu(amount_mu),
                                         ledger.format_mu(e.balance_after_mu)))
    return 0


def cmd_list(args):
    from .api import meter_rows
    from .models import Account
    with _session(args) as s:
        if args.cmd == "accounts":
            for a in s.exec(select(Account).order_by(Account.id)).all():
                print("%5d  %-30s %14s" % (a.id, a.tenant, ledger.format_mu(a.balance_mu)))
        else:
            for r in meter_rows(s, _settings(args).offline_after_s):
                print("%-12s %-10s %-24s %14s %12s kWh  relay=%s" % (
                    r["meter_id"], r["concentrator"], r["tenant"] or "-", r["balance"] or "-",
                    r["last_kwh"] or "-", {True: "closed", False: "open", None: "?"}[r["relay_closed"]]))
    return 0


def cmd_demo(args):
    from sim import demo
    return demo.run(args)


def build_parser():
    p = argparse.ArgumentParser(prog="wattkeeper", description="Wattkeeper prepaid metering head-end")
    p.add_argument("--db", help="database URL (default: $WK_DATABASE_URL or sqlite ./var/wattkeeper.db)")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("serve", help="run the HTTP API, dashboard and MQTT ingest")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.add_argument("--mqtt", help="broker URL, mqtt://[user:pass@]host:port (default $WK_MQTT_URL)")
    sp.add_argument("--embedded-broker", action="store_true", help="start an amqtt broker on the MQTT URL's port")
    sp.add_argument("--shared", action="store_true", help="use the shared subscription $share/wk-headend/wk/+/up")
    sp.add_argument("--no-mqtt", action="store_true", help="HTTP only")
    sp.add_argument("--log-level", default="info")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("broker", help="run the embedded MQTT broker (amqtt) in the foreground")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.set_defaults(func=cmd_broker)

    sub.add_parser("init-db", help="create the tables").set_defaults(func=cmd_init_db)

    sp = sub.add_parser("provision", help="create sites, concentrators, meters, tariffs")
    ps = sp.add_subparsers(dest="what", required=True)
    x = ps.add_parser("site")
    x.add_argument("name")
    x = ps.add_parser("concentrator", help="provision a device; prints its key")
    x.add_argument("--site", required=True)
    x.add_argument("--dev", required=True)
    x.add_argument("--key", help="64 hex digits (generated when omitted)")
    x = ps.add_parser("meter")
    x.add_argument("--dev", required=True)
    x.add_argument("--meter-id", required=True)
    x.add_argument("--model", default="")
    x.add_argument("--index", type=int)
    x.add_argument("--account", type=int)
    x.add_argument("--tenant", help="create an account for this tenant")
    x.add_argument("--opening-energy-wh", type=int)
    x = ps.add_parser("tariff", help="a flat tariff (new version when the name exists)")
    x.add_argument("--site", required=True)
    x.add_argument("--name", default="flat")
    x.add_argument("--price-mu-per-kwh", type=int, required=True)
    x.add_argument("--effective", type=int, default=0)
    sp.set_defaults(func=cmd_provision)

    sp = sub.add_parser("seed", help="seed a site from a JSON file (seed_site arguments)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_seed)

    sp = sub.add_parser("recharge", help="add credit to an account")
    sp.add_argument("account", type=int)
    sp.add_argument("amount", help='decimal string, e.g. "50.00"')
    sp.add_argument("--actor", required=True)
    sp.set_defaults(func=cmd_recharge)

    sp = sub.add_parser("demo", help="the head-end with a simulated site (embedded broker, SQLite, fast clock)")
    from sim import demo as _demo
    _demo.add_arguments(sp)
    sp.set_defaults(func=cmd_demo)

    sub.add_parser("accounts", help="list accounts").set_defaults(func=cmd_list)
    sub.add_parser("meters", help="list meters").set_defaults(func=cmd_list)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("transitions", "amqtt", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args) or 0
    except (provision.ProvisionError, ledger.LedgerError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
