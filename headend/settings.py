"""Settings from environment variables (WK_*)."""
import os
from dataclasses import dataclass, field


def _default_db_url():
    return "sqlite:///" + os.path.join(os.getcwd(), "var", "wattkeeper.db")


@dataclass
class Settings:
    database_url: str = field(default_factory=_default_db_url)
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_shared: bool = False          # subscribe $share/wk-headend/wk/+/up
    embedded_broker: bool = False      # start an amqtt broker on mqtt_url's host:port
    mqtt_client_id: str = ""           # "" -> random
    site: str = "default"
    host: str = "127.0.0.1"
    port: int = 8000
    offline_after_s: int = 900         # concentrator considered offline after this silence

    @classmethod
    def from_env(cls, env=None, **overrides):
        env = os.environ if env is None else env
        s = cls()
        if env.get("WK_DATABASE_URL"):
            s.database_url = env["WK_DATABASE_URL"]
        if env.get("WK_MQTT_URL"):
            s.mqtt_url = env["WK_MQTT_URL"]
        if env.get("WK_MQTT_SHARED"):
            s.mqtt_shared = env["WK_MQTT_SHARED"].lower() in ("1", "true", "yes", "on")
        if env.get("WK_EMBEDDED_BROKER"):
            s.embedded_broker = env["WK_EMBEDDED_BROKER"].lower() in ("1", "true", "yes", "on")
        if env.get("WK_MQTT_CLIENT_ID"):
            s.mqtt_client_id = env["WK_MQTT_CLIENT_ID"]
        if env.get("WK_SITE"):
            s.site = env["WK_SITE"]
        if env.get("WK_HOST"):
            s.host = env["WK_HOST"]
        if env.get("WK_PORT"):
            s.port = int(env["WK_PORT"])
        if env.get("WK_OFFLINE_AFTER_S"):
            s.offline_after_s = int(env["WK_OFFLINE_AFTER_S"])
        for k, v in overrides.items():
            if not hasattr(s, k):
                raise TypeError("unknown setting %r" % k)
            setattr(s, k, v)
        return s


def parse_mqtt_url(url):
    """mqtt://[user[:password]@]host[:port] (mqtts:// for TLS) -> dict."""
    from urllib.parse import unquote, urlsplit
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError("MQTT URL must start with mqtt:// or mqtts://: %r" % url)
    tls = u.scheme in ("mqtts", "ssl")
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or (8883 if tls else 1883),
        "username": unquote(u.username) if u.username else None,
        "password": unquote(u.password) if u.password else None,
        "tls": tls,
    }
