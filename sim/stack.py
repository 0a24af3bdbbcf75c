"""The whole system in one process: a broker, the head-end (FastAPI app with
its MQTT ingest) and a simulated site, wired together. Used by
`wattkeeper demo`, the benchmarks and the end-to-end tests.

    with Stack(broker="amqtt") as st:
        st.site.run(3600)
        st.recharge("C1-101", 50_0000)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import httpx
from sqlmodel import select

from headend.core import db, migrate
from headend.models import Account, LedgerEntry, Meter, Reading
from headend.services import auth, users
from headend.services.actor import system_actor
from headend.services.seed import seed_site
from headend.transport import broker_config
from headend.transport.broker import free_port
from sim.brokers import make_broker, stop_process
from sim.site import Site

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve_http(database_url, log, port=None, timeout=60):
    """`wattkeeper serve --no-mqtt` on a database, in its own process, as in
    production (tests and benchmarks of the HTTP side); -> (process, base URL)
    once /api/health answers."""
    port = port or free_port()
    env = dict(os.environ, WK_DATABASE_URL=database_url, WK_HOST="127.0.0.1", WK_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "headend.cli", "serve", "--no-mqtt", "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and proc.poll() is None:
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError("head-end did not start (exit %s)" % proc.returncode)


class Stack:
    def __init__(self, broker="amqtt", database_url=None, price_mu_per_kwh=6000,
                 opening_balance_mu=100_0000, balances=None, workdir=None, http_port=None, tariff=None,
                 headend_env=None, common=None, **site_kwargs):
        self.workdir = workdir or tempfile.mkdtemp(prefix="wk-stack-")
        self.own_workdir = workdir is None
        self.broker = make_broker(broker) if isinstance(broker, str) else broker
        self.database_url = database_url or "sqlite:///" + os.path.join(self.workdir, "headend.db")
        self.price = price_mu_per_kwh
        self.opening_balance_mu = opening_balance_mu
        self.balances = balances or {}   # meter id -> opening balance (mu)
        self.common = set(common or ())   # meter ids of common-area meters (no unit, no tenant)
        # tariff versions (docs/tariffs.md); a flat price unless given
        self.tariff = tariff or [{"version": 1, "effective": 0, "tz_offset_s": 28800,
                                  "price": price_mu_per_kwh}]
        self.site_kwargs = site_kwargs
        self.headend_env = dict(headend_env or {})   # more WK_* settings of the head-end process
        self.engine = None
        self.proc = None
        self.http = None
        self.http_port = http_port
        self.site = None
        self.seeded = None
        self.tokens = {}          # user name -> API token
        self.passwords = {}       # user name -> password (demo logins)

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        kw = dict(self.site_kwargs)
        kw.setdefault("broker", (self.broker.host, self.broker.port))
        kw.setdefault("workdir", os.path.join(self.workdir, "site"))
        kw.setdefault("tariff", self.tariff)
        self.site = Site(**kw)
        # the broker's credentials, as `wattkeeper broker-config` writes them
        # (the embedded broker enforces them; the plain Mosquitto of the tests
        # stays open: it plays a broker an attacker is on)
        self.broker_site = broker_config.write_site(os.path.join(self.workdir, "broker"),
                                                    [vc.dev for vc in self.site.concentrators], ["127.0.0.1"],
                                                    passwords=self.site.broker_passwords())
        if hasattr(self.broker, "password_files"):
            self.broker.password_files = [self.broker_site.path("passwd_devices"),
                                          self.broker_site.path("passwd_headend")]
        self.broker.start()
        self.engine = db.make_engine(self.database_url)
        migrate.upgrade(self.engine)
        self.sessions = db.session_factory(self.engine)
        prov = self.site.provisioning()
        for c in prov:
            for m in c["meters"]:
                if m["id"] in self.balances:
                    m["opening_balance_mu"] = self.balances[m["id"]]
                if m["id"] in self.common:
                    m["common"] = True
        with self.session() as s:
            self.seeded = seed_site(
                s, self.site.name, prov,
                tariff_price_mu_per_kwh=self.price,
                tariff_spec=self.tariff,
                opening_balance_mu=self.opening_balance_mu)
        self.pid = self.seeded["property_id"]
        self.add_user("stack-admin", "admin")
        self.start_headend()
        return self

    def add_user(self, username, role=None, tenant_id=None, password=None):
        """A login for tests, benchmarks and the demo; returns its API token
        (self.tokens) and keeps the password (self.passwords)."""
        password = password or (username + "-pass")
        with self.session() as s:
            sysactor = system_actor(s)
            u = users.create_user(s, sysactor, username, password, role=role, tenant_id=tenant_id,
                                  property_ids=[self.pid] if role not in (None, "admin") else [])
            _t, raw = auth.create_api_token(s, users.actor_for(s, u), "stack")
            s.commit()
        self.tokens[username] = raw
        self.passwords[username] = password
        return raw

    def client(self, username):
        """An HTTP client of the head-end logged in as `username`."""
        return httpx.Client(base_url="http://127.0.0.1:%d" % self.http_port, timeout=10,
                            headers={"Authorization": "Bearer " + self.tokens[username]})

    def start_headend(self, port=None):
        """The head-end in its own process (`wattkeeper serve`), as in production."""
        self.http_port = port or self.http_port or free_port()
        env = dict(os.environ, WK_DATABASE_URL=self.database_url,
                   WK_MQTT_URL=self.broker_site.headend_url(self.broker.host, self.broker.port, tls=False),
                   WK_HOST="127.0.0.1", WK_PORT=str(self.http_port), WK_EMBEDDED_BROKER="")
        env.update(self.headend_env)
        self.log_path = os.path.join(self.workdir, "headend.log")
        self.proc = subprocess.Popen([sys.executable, "-m", "headend.cli", "serve", "--log-level", "warning"],
                                     cwd=ROOT, env=env, stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT)
        self.http = self.client("stack-admin")
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError("head-end exited: " + open(self.log_path).read()[-2000:])
            try:
                h = self.http.get("/api/health").json()
                if (h.get("mqtt") or {}).get("connected"):
                    time.sleep(0.2)   # let the subscription settle
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("head-end did not come up: " + open(self.log_path).read()[-2000:])

    def stop_headend(self, kill=False):
        if self.proc is not None:
            stop_process(self.proc, kill=kill)
            self.proc = None
        if self.http is not None:
            self.http.close()
            self.http = None

    def stop(self):
        if self.site is not None:
            self.site.close()
        self.stop_headend()
        self.broker.stop()
        if hasattr(self.broker, "cleanup"):
            self.broker.cleanup()
        if self.engine is not None:
            self.engine.dispose()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # -- head-end views ------------------------------------------------------------
    def session(self):
        return self.sessions()

    def meter(self, meter_id):
        with self.session() as s:
            return s.exec(select(Meter).where(Meter.meter_id == meter_id)).one()

    def account_id(self, meter_id):
        return self.meter(meter_id).account_id

    def balance(self, meter_id):
        with self.session() as s:
            return s.get(Account, self.account_id(meter_id)).balance_mu

    def ledger_sum(self, meter_id):
        aid = self.account_id(meter_id)
        with self.session() as s:
            return sum(e.amount_mu for e in s.exec(select(LedgerEntry).where(LedgerEntry.account_id == aid)))

    def readings(self, meter_id):
        m = self.meter(meter_id)
        with self.session() as s:
            q = select(Reading).where(Reading.meter_id == m.id).order_by(Reading.seq)
            return list(s.exec(q))

    def recharge(self, meter_id, amount_mu, actor="cashier"):
        """Sell credit through the API as cashier `actor` (created when new).
        amount_mu must be whole fen (a multiple of 100 mu)."""
        if amount_mu % 100:
            raise ValueError("a sale is in whole fen: %d mu" % amount_mu)
        if actor not in self.tokens:
            self.add_user(actor, "cashier")
        with self.client(actor) as c:
            r = c.post("/api/accounts/%d/recharge" % self.account_id(meter_id),
                       json={"amount": "%d.%02d" % (amount_mu // 10000, amount_mu % 10000 // 100)})
        r.raise_for_status()
        return r.json()
