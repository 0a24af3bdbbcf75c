"""Application factory.

    app = create_app(settings=None, start_mqtt=True)

builds the engine (creating the tables), the Ingest, the REST API and the
dashboard. With start_mqtt=True the MQTT ingest (and, with
settings.embedded_broker, an in-process amqtt broker on the MQTT URL's port)
starts in the app's lifespan and stops with it.
"""
import contextlib
import logging

from fastapi import FastAPI

from . import api, dashboard, db
from .ingest import Ingest
from .settings import Settings, parse_mqtt_url

log = logging.getLogger("headend.app")


def create_app(settings=None, start_mqtt=True, engine=None):
    settings = settings or Settings.from_env()
    engine = engine or db.make_engine(settings.database_url)
    db.init_db(engine)
    sf = db.session_factory(engine)
    ingest = Ingest(sf)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        broker = None
        if start_mqtt:
            if settings.embedded_broker:
                from .broker import EmbeddedBroker
                cfg = parse_mqtt_url(settings.mqtt_url)
                broker = EmbeddedBroker(cfg["host"], cfg["port"]).start()
                app.state.broker = broker
            from .mqtt_client import MqttService
            app.state.mqtt = MqttService(ingest, settings.mqtt_url, shared=settings.mqtt_shared,
                                         client_id=settings.mqtt_client_id or None).start()
        try:
            yield
        finally:
            if app.state.mqtt is not None:
                app.state.mqtt.stop()
                app.state.mqtt = None
            if broker is not None:
                broker.stop()

    app = FastAPI(title="Wattkeeper head-end", version="0.1.0", lifespan=lifespan,
                  description="Prepaid electricity metering: meters, accounts, ledger, MQTT ingest.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = sf
    app.state.ingest = ingest
    app.state.mqtt = None
    app.state.broker = None

    def publish(msgs):
        """Send downlinks if the MQTT side runs; otherwise the board gets
        its balance on its next hello."""
        if msgs and app.state.mqtt is not None:
            app.state.mqtt.publish(msgs)
        return len(msgs) if app.state.mqtt is not None else 0
    app.state.publish = publish

    app.include_router(api.router)
    app.add_api_route("/metrics", api.metrics, methods=["GET"], include_in_schema=False)
    app.include_router(dashboard.router)
    return app
