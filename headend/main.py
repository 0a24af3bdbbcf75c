"""The application factory.

    app = create_app(settings=None, start_mqtt=True)

Upgrades the database (Alembic), builds the ingest, the REST API (/api), the
dashboard and tenant portal, and /docs. With start_mqtt the MQTT ingest and
outbox dispatcher (and, with settings.embedded_broker, an amqtt broker on
the MQTT URL's port) start in the app's lifespan and stop with it, and so
does the notification worker (transport/notifier.py; start_notifier
overrides).
"""
import contextlib
import logging

from fastapi import FastAPI

from .api import errors
from .api.limits import BodyLimit
from .api.routes import (accounts, alerts, audit, auth, concentrators, dayend, events, firmware, health, imports,
                         meters, payments, portal, properties, receipts, reports, statements, tariffs, tenants, users)
from .core import db, migrate
from .core.config import Settings, parse_mqtt_url
from .core.maintenance import Maintenance
from .ingest import Ingest
from .payments import registry as payment_providers
from .web import assets, docs
from .api.routes import apportionment as apportionment_routes
from .web.pages import accounts as account_pages
from .web.pages import apportionment as apportionment_pages
from .web.pages import alerts as alert_pages
from .web.pages import audit as audit_pages
from .web.pages import auth as auth_pages
from .web.pages import dayend as dayend_pages
from .web.pages import desk as desk_pages
from .web.pages import firmware as firmware_pages
from .web.pages import imports as import_pages
from .web.pages import portal as portal_pages
from .web.pages import reports as report_pages
from .web.pages import staff as staff_pages
from .web.pages import statements as statement_pages
from .web.pages import meter_page
from .web.pages import tariffs as tariff_pages
from .web.pages import users as user_pages

log = logging.getLogger("headend.app")

API_ROUTERS = (auth.router, users.router, properties.router, concentrators.router, meters.router,
               accounts.router, tenants.router, receipts.router, dayend.router, imports.router, tariffs.router,
               events.router, alerts.router, audit.router, portal.router, payments.router, firmware.router,
               health.router, reports.router, apportionment_routes.router,
               statements.router)
WEB_ROUTERS = (auth_pages.router, staff_pages.router, desk_pages.router, dayend_pages.router, account_pages.router,
               tariff_pages.router, import_pages.router, alert_pages.router, audit_pages.router, user_pages.router,
               portal_pages.router, firmware_pages.router, report_pages.router, apportionment_pages.router,
               statement_pages.router, meter_page.router, docs.router)


def _start_embedded_broker(settings, sf):
    """The amqtt broker on the MQTT URL's port, taking only the credentials
    of settings.broker_dir (made for the provisioned boards on first start);
    -> (broker, the URL the head-end connects with)."""
    from sqlmodel import select

    from .models import Concentrator
    from .transport.broker import EmbeddedBroker
    from .transport.broker_config import ensure_site, mqtt_url
    cfg = parse_mqtt_url(settings.mqtt_url)
    with sf() as s:
        devices = list(s.exec(select(Concentrator.dev)).all())
    files, user, password = ensure_site(settings.broker_dir, devices, cfg["host"])
    broker = EmbeddedBroker(cfg["host"], cfg["port"], password_files=files, headend_users=[user]).start()
    url = settings.mqtt_url if cfg["username"] else mqtt_url(user, password, cfg["host"], cfg["port"], tls=False)
    log.info("embedded broker: board credentials in %s", settings.broker_dir)
    return broker, url


def make_notifier(settings, session_factory, clock=None):
    """The notification worker with the channels the settings configure."""
    import time

    from .services import alerts, theft
    from .transport import channels
    from .transport.notifier import Notifier
    return Notifier(session_factory, channels.build(settings), clock=clock or time.time,
                    poll_s=settings.notify_poll_s, check_s=settings.alert_check_s,
                    checks=[alerts.check_silence, theft.check])


def create_app(settings=None, start_mqtt=True, engine=None, migrate_db=True, start_notifier=None):
    settings = settings or Settings()
    engine = engine or db.make_engine(settings.database_url)
    if migrate_db:
        migrate.upgrade(engine)
    sf = db.session_factory(engine)
    # several workers on a shared subscription: replies leave through the outbox, in counter order
    # (a partitioned one owns its boards: it publishes them directly, transport/partition.py)
    ingest = Ingest(sf, outbox=settings.shared_ingest)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        maintenance = Maintenance(engine, settings).start()
        broker = None
        mqtt_url = settings.mqtt_url
        if start_mqtt:
            if settings.embedded_broker:
                broker, mqtt_url = _start_embedded_broker(settings, sf)
                app.state.broker = broker
            from .transport.mqtt import MqttService
            app.state.mqtt = MqttService(ingest, mqtt_url, shared=settings.shared_ingest,
                                         partition=settings.partition,
                                         client_id=settings.mqtt_client_id or None, session_factory=sf,
                                         ca_file=settings.mqtt_ca_file or None,
                                         batch_max=settings.ingest_batch,
                                         linger_s=settings.ingest_linger_ms / 1000.0).start()
        if start_mqtt if start_notifier is None else start_notifier:
            app.state.notifier = make_notifier(settings, sf).start()
        try:
            yield
        finally:
            if app.state.notifier is not None:
                app.state.notifier.stop()
                app.state.notifier = None
            if app.state.mqtt is not None:
                app.state.mqtt.stop()
                app.state.mqtt = None
            if broker is not None:
                broker.stop()
            maintenance.stop()

    app = FastAPI(title="Wattkeeper head-end", version="0.2.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None, description="Prepaid electricity metering: properties, meters, accounts, "
                  "ledger, tariffs, MQTT ingest. Log in with POST /api/auth/token (OAuth2 password flow).")
    app.state.settings = settings
    app.state.payments = payment_providers(settings)
    app.state.engine = engine
    app.state.session_factory = sf
    app.state.ingest = ingest
    app.state.mqtt = None
    app.state.notifier = None
    app.state.broker = None
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for r in API_ROUTERS + WEB_ROUTERS:
        app.include_router(r)
    assets.mount(app, settings.node_modules)
    return app
