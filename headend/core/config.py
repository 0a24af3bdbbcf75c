"""Settings from the environment (WK_*), with pydantic-settings.

    settings = Settings()                      # WK_DATABASE_URL, WK_MQTT_URL, ...
    settings = Settings(database_url="sqlite:///x.db")   # overrides (tests)
"""
import os
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_db_url():
    return "sqlite:///" + os.path.join(os.getcwd(), "var", "wattkeeper.db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WK_", extra="ignore", env_ignore_empty=True)

    database_url: str = Field(default_factory=_default_db_url,
                              description="sqlite:///path or postgresql+psycopg2://user@host/db")
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883",
                          description="mqtt://[user[:password]@]host[:port], mqtts:// for TLS")
    mqtt_ca_file: str = Field(default="", description="CA certificate for mqtts:// (default: system CAs)")
    mqtt_shared: bool = Field(default=False, description="subscribe $share/wk-headend/wk/+/up")
    mqtt_partition: str = Field(default="", max_length=8,
                                description="i/n: this process handles the boards whose id is i modulo n "
                                            "(every worker and `serve` one share each, instead of "
                                            "mqtt_shared; transport/partition.py)")
    embedded_broker: bool = Field(default=False, description="start an amqtt broker on mqtt_url's host:port")
    broker_dir: str = Field(default_factory=lambda: os.path.join(os.getcwd(), "var", "broker"),
                            description="the folder `wattkeeper broker-config` writes; the embedded broker takes "
                                        "its password files (made there on first start)")
    mqtt_client_id: str = ""
    ingest_batch: int = Field(default=64, ge=1, le=1000,
                              description="an ingest worker handles up to this many queued uplinks in one "
                                          "transaction (1: one message per transaction)")
    worker_stats_s: int = Field(default=60, ge=0, le=86400,
                                description="`wattkeeper worker` prints one line of its counters this often "
                                            "(messages, batches, deferred, queue, downlinks; 0: never)")
    ingest_linger_ms: int = Field(default=0, ge=0, le=1000,
                                  description="a message that arrives alone waits this long for others to "
                                              "share its transaction (0: it starts at once)")
    host: str = "127.0.0.1"
    port: int = 8000
    offline_after_s: int = Field(default=900, description="a concentrator is offline after this silence")
    # logins
    session_ttl_s: int = Field(default=12 * 3600, description="dashboard session lifetime")
    access_token_ttl_s: int = Field(default=8 * 3600, description="OAuth2 access token lifetime")
    lockout_attempts: int = Field(default=5, description="failed logins that lock an account")
    lockout_s: int = Field(default=15 * 60, description="how long a locked account stays locked")
    cookie_secure: bool = Field(default=False, description="send cookies only over HTTPS (set behind TLS)")
    # front-end packages installed from npm (tools/bootstrap.sh)
    node_modules: str = Field(default_factory=lambda: os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "node_modules"))
    default_language: str = Field(default="zh-CN", description="zh-CN or en, when the browser says neither")
    # notifications (alerts by e-mail, SMS and webhooks; README "Alerts")
    smtp_url: str = Field(default="", description="smtp://[user:password@]host[:port] (smtp+starttls://, "
                          "smtps://); empty: no e-mail")
    smtp_from: str = Field(default="Wattkeeper <wattkeeper@localhost>", description="From: of alert e-mails")
    sms_provider: str = Field(default="http", description='"http" (the generic HTTP provider) or '
                              '"package.module:factory" of another provider')
    sms_url: str = Field(default="", description="the generic HTTP SMS provider's endpoint; empty: no SMS")
    sms_token: str = Field(default="", description="bearer token for the SMS provider")
    sms_templates: str = Field(default="", description='JSON {"our template": "provider template id"}')
    notify_poll_s: float = Field(default=5.0, description="how often the notification worker looks for work")
    alert_check_s: float = Field(default=60.0, description="how often silent concentrators are looked for")
    notify_timeout_s: float = Field(default=10.0, description="SMTP, webhook and SMS network timeout")
    # online top-ups (headend/payments, docs/payments.md)
    payment_providers: str = Field(default="", description='"fake", or "name=module:Class,..." for real ones')
    payment_fake_secret: str = Field(default="", description="the fake provider's signing secret (tests, demo)")
    # the readings table (core/partitions.py, core/maintenance.py)
    readings_partitions_ahead: int = Field(default=3, ge=0, le=120,
                                           description="PostgreSQL: month partitions created ahead of time")
    readings_retention_months: int = Field(default=0, ge=0, le=1200,
                                           description="raw readings older than this many whole months are "
                                                       "dropped (0: kept for ever)")
    rollups_retention_months: int = Field(default=0, ge=0, le=1200,
                                          description="rollups (reports) older than this are dropped (0: kept)")
    maintenance_interval_s: int = Field(default=6 * 3600, ge=0,
                                        description="how often partitions and retention are seen to (0: at start)")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="longest request body (413 beyond)")

    @field_validator("mqtt_partition")
    @classmethod
    def _partition(cls, v):
        parse_partition(v)
        return v.strip()

    @property
    def partition(self):
        """(i, n) of WK_MQTT_PARTITION, or None."""
        return parse_partition(self.mqtt_partition)

    @property
    def shared_ingest(self):
        """On the shared subscription (a partitioned process owns its boards instead)."""
        return bool(self.mqtt_shared) and not self.mqtt_partition


MAX_PARTITIONS = 64


def parse_partition(text):
    """'i/n' -> (i, n) with 0 <= i < n <= MAX_PARTITIONS; '' or None ->
    None (WK_MQTT_PARTITION, transport/partition.py). Raises ValueError
    saying what is wrong."""
    if text is None or str(text).strip() == "":
        return None
    parts = str(text).strip().split("/")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError("a partition is i/n, e.g. 0/2 (this worker, of how many): %r" % (text,))
    i, n = int(parts[0]), int(parts[1])
    if not 1 <= n <= MAX_PARTITIONS or not 0 <= i < n:
        raise ValueError("partition %r: n from 1 to %d, i from 0 to n - 1" % (text, MAX_PARTITIONS))
    return i, n


def parse_mqtt_url(url):
    """mqtt://[user[:password]@]host[:port] (mqtts:// for TLS) -> dict."""
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
