"""Embedded MQTT broker (amqtt) for the zero-setup demo and tests.

In-process:   b = EmbeddedBroker(port=0, password_files=[...]).start(); ...; b.stop()
Subprocess:   python -m headend.transport.broker --host 127.0.0.1 --port 1883 --password-file F
It takes only clients in its Mosquitto-format password files and lets a
board reach only its own topics (transport/broker_auth.py: the rules of the
Mosquitto configuration `wattkeeper broker-config` writes);
`allow_anonymous=True` is for tests of MQTT itself. Production uses Mosquitto
(docs/deploying.md); amqtt has no shared subscriptions, so run a single
head-end worker against it.
"""
import argparse
import asyncio
import logging
import socket
import threading

log = logging.getLogger("headend.broker")


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def amqtt_config(host, port, password_files=(), headend_users=None, allow_anonymous=False):
    from .broker_auth import plugins_config
    from .broker_config import HEADEND_USER
    if allow_anonymous:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    elif password_files:
        plugins = plugins_config(password_files, headend_users or (HEADEND_USER,))
    else:
        raise ValueError("the embedded broker needs password files (or allow_anonymous=True in tests)")
    return {
        "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (host, port), "max_connections": 0}},
        "plugins": plugins,
    }


def _tracking_broker_class():
    from amqtt.broker import Broker

    class TrackingBroker(Broker):
        """amqtt Broker that remembers its client connections so stop() can
        drop them."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.client_writers = set()

        async def stream_connected(self, reader, writer, listener_name):
            self.client_writers.add(writer)
            try:
                await super().stream_connected(reader, writer, listener_name)
            finally:
                self.client_writers.discard(writer)
    return TrackingBroker


def _TrackingBroker(*a, **kw):
    return _tracking_broker_class()(*a, **kw)


class EmbeddedBroker:
    """amqtt broker on its own event loop in a daemon thread."""

    def __init__(self, host="127.0.0.1", port=1883, password_files=(), headend_users=None, allow_anonymous=False):
        self.host = host
        self.port = port or free_port(host)
        self.config = amqtt_config(host, self.port, password_files, headend_users, allow_anonymous)
        self._loop = None
        self._broker = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)

    def start(self, timeout=15):
        self._thread = threading.Thread(target=self._run, name="wk-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("embedded broker did not start in %ss" % timeout)
        if self._error is not None:
            raise RuntimeError("embedded broker failed: %s" % self._error)
        return self

    def _run(self):
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def boot():
            self._broker = _TrackingBroker(self.config, loop=loop)
            await self._broker.start()
        try:
            loop.run_until_complete(boot())
        except Exception as e:  # port in use, ...
            self._error = e
            self._ready.set()
            loop.close()
            return
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        self._ready.set()
        loop.run_forever()
        # cancel whatever amqtt left behind, then close the loop
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=2))
        loop.close()

    async def _stop(self, timeout):
        b = self._broker
        # Stop listening, then drop every client connection at once: clients
        # see the broker go away like a real broker crash/restart. (amqtt's own
        # shutdown can wait forever on a connected session.)
        for srv in list(b._servers.values()):
            inst = getattr(srv, "instance", None)
            if inst is not None:
                inst.close()
        for w in list(b.client_writers):
            try:
                w.transport.abort()
            except Exception:
                pass
        try:
            await asyncio.wait_for(b.shutdown(), timeout)
        except Exception as e:
            log.info("amqtt shutdown incomplete (%s); stopping the loop anyway", type(e).__name__)

    def stop(self, timeout=5):
        if self._loop is None or self._broker is None or not self._loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._stop(timeout), self._loop)
        try:
            fut.result(timeout + 2)
        except Exception:
            log.exception("broker stop")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Wattkeeper embedded MQTT broker (amqtt)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--password-file", action="append", default=[],
                    help="Mosquitto-format password file (repeat; `wattkeeper broker-config` writes them)")
    ap.add_argument("--headend-user", action="append", default=[], help="the head-end's user name (wk-headend)")
    a = ap.parse_args(argv)
    config = amqtt_config(a.host, a.port, a.password_file, a.headend_user or None)
    logging.basicConfig(level=logging.INFO)
    from amqtt.broker import Broker

    async def run():
        b = Broker(config)
        await b.start()
        print("broker listening on %s:%d" % (a.host, a.port), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await b.shutdown()
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
