"""Alerts that reach people (issue 12).

    AlertRule         a property's rule for one kind of alert (defaults in
                      services/alert_rules.DEFAULTS when the property has no row)
    AlertPreference   a tenant's own: channels, days-left threshold, quiet hours,
                      language (the amount threshold is the account's
                      low_balance_threshold_mu)
    Alert             one alert raised: the staff inbox row (acknowledged there);
                      `active` while its condition lasts (repeats are suppressed)
    Notification      the notification outbox: one delivery of an alert on one
                      channel to one recipient, written in the transaction that
                      raised the alert, sent by transport/notifier.py
    DeliveryAttempt   every attempt to send a notification, written before the send
    Webhook           a property's signed webhook endpoint
    AccountForecast   an account's recent cost per day, refreshed hourly (the
                      low-balance forecast reads it instead of a week of readings)
"""
from typing import Any, Optional

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

# kinds of alert (services/alert_rules.py says what raises each)
LOW_BALANCE = "low_balance"
RELAY_OPENED = "relay_opened"
RELAY_CLOSED = "relay_closed"
CONCENTRATOR_OFFLINE = "concentrator_offline"
METER_OFFLINE = "meter_offline"
BUS_ERRORS = "bus_errors"
BILLING_MISMATCH = "billing_mismatch"
JOURNAL_THINNED = "journal_thinned"
THEFT = "theft"                          # tamper / cover-open events of a meter
BYPASS = "bypass"                        # master − Σ sub-meters beyond a loss pool's tolerance (services/theft)
RELAY_OPEN_ENERGY = "energy_relay_open"  # energy counted while the relay reports open
REVERSE_ENERGY = "reverse_energy"        # energy flowing backwards through a meter
ALERT_KINDS = (LOW_BALANCE, RELAY_OPENED, RELAY_CLOSED, CONCENTRATOR_OFFLINE, METER_OFFLINE, BUS_ERRORS,
               BILLING_MISMATCH, JOURNAL_THINNED, THEFT, BYPASS, RELAY_OPEN_ENERGY, REVERSE_ENERGY)
KIND_PATTERN = "^(" + "|".join(ALERT_KINDS) + ")$"

# channels
EMAIL, SMS, WEBHOOK = "email", "sms", "webhook"
TENANT_CHANNELS = (EMAIL, SMS)
CHANNEL_PATTERN = "^(email|sms)$"

# notification states
PENDING, SENDING, SENT, FAILED, UNCERTAIN = "pending", "sending", "sent", "failed", "uncertain"


class AlertRule(SQLModel, table=True):
    __tablename__ = "alert_rule"
    __table_args__ = (UniqueConstraint("property_id", "kind", name="uq_alert_rule_property_kind"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    kind: str = Field(max_length=32)
    enabled: bool = True
    notify_tenant: bool = False                  # tell the account's tenant (low balance, relay)
    staff_emails: str = Field(default="", max_length=1000)   # comma-separated: staff mailed too
    amount_mu: Optional[int] = big(default=None)     # low balance: below this (when the account has none)
    days_left: Optional[int] = None                  # low balance: fewer days left at recent use
    minutes: Optional[int] = None                    # offline longer than this
    per_hour: Optional[int] = None                   # bus errors per hour since the board's boot
    repeat_s: Optional[int] = big(default=None)      # one-off kinds: at most one per subject per this
    updated: int = big(default_factory=now_s)
    updated_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")


class AlertRuleUpdate(Body):
    enabled: Optional[bool] = None
    notify_tenant: Optional[bool] = None
    staff_emails: Optional[list[str]] = Field(default=None, max_length=20)
    amount: Optional[str] = Field(default=None, max_length=24, description='low balance below, e.g. "10.00"')
    days_left: Optional[int] = Field(default=None, ge=0, le=365)
    minutes: Optional[int] = Field(default=None, ge=1, le=7 * 24 * 60)
    per_hour: Optional[int] = Field(default=None, ge=1, le=10 ** 6)
    repeat_s: Optional[int] = Field(default=None, ge=0, le=30 * 86400)


class AlertRulePublic(SQLModel):
    property_id: int
    kind: str
    enabled: bool
    notify_tenant: bool
    staff_emails: list[str]
    amount_mu: Optional[int]
    amount: Optional[str]
    days_left: Optional[int]
    minutes: Optional[int]
    per_hour: Optional[int]
    repeat_s: Optional[int]
    is_default: bool


class AlertPreference(SQLModel, table=True):
    __tablename__ = "alert_preference"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", unique=True)
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    days_left: Optional[int] = None              # None: the property's rule
    quiet_start_min: Optional[int] = None        # local minute of the day quiet hours begin
    quiet_end_min: Optional[int] = None
    language: str = Field(default="", max_length=8)
    updated: int = big(default_factory=now_s)


class AlertPreferenceUpdate(Body):
    channels: Optional[list[str]] = Field(default=None, max_length=2,
                                          description='"sms", "email" (empty: no messages)')
    days_left: Optional[int] = Field(default=None, ge=0, le=365, description="warn when fewer days are left")
    quiet_start: Optional[str] = Field(default=None, max_length=5, schema_extra={"pattern": r"^(\d\d:\d\d)?$"},
                                       description='"22:00" (empty: no quiet hours)')
    quiet_end: Optional[str] = Field(default=None, max_length=5, schema_extra={"pattern": r"^(\d\d:\d\d)?$"})
    language: Optional[str] = Field(default=None, schema_extra={"pattern": r"^(zh-CN|en)$"})


class AlertPreferencePublic(SQLModel):
    tenant_id: int
    channels: list[str]
    available_channels: list[str]
    days_left: Optional[int]
    quiet_start: Optional[str]
    quiet_end: Optional[str]
    language: str


class Alert(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=64)          # "account:17", "meter:3", "concentrator:1"
    # while set, no other alert with the same key can be stored: one active
    # alert per (kind, subject), one alert per event
    dedup_key: Optional[str] = Field(default=None, max_length=120, unique=True)
    account_id: Optional[int] = Field(default=None, foreign_key="account.id", index=True)
    tenant_id: Optional[int] = Field(default=None, foreign_key="tenant.id")
    concentrator_id: Optional[int] = Field(default=None, foreign_key="concentrator.id")
    meter_id: Optional[int] = Field(default=None, foreign_key="meter.id")
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")
    ts: int = big(default_factory=now_s, index=True)     # raised (head-end clock)
    event_ts: Optional[int] = big(default=None)          # when it happened (board clock)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    message: str = Field(default="", max_length=500)
    active: bool = False
    cleared: Optional[int] = big(default=None)
    acknowledged: Optional[int] = big(default=None)
    acknowledged_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")


class AlertPublic(SQLModel):
    id: int
    property_id: int
    kind: str
    subject: str
    account_id: Optional[int]
    concentrator_id: Optional[int]
    meter_id: Optional[int]
    event_id: Optional[int]
    ts: int
    event_ts: Optional[int]
    values: dict[str, Any]
    message: str
    active: bool
    cleared: Optional[int]
    acknowledged: Optional[int]
    acknowledged_by_user_id: Optional[int]


class Notification(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=500)       # e-mail address, phone number, webhook URL
    webhook_id: Optional[int] = Field(default=None, foreign_key="webhook.id")
    language: str = Field(default="zh-CN", max_length=8)
    template: str = Field(default="", max_length=40)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", max_length=300)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))   # sent byte for byte
    idempotency_key: str = Field(max_length=120, unique=True)
    state: str = Field(default=PENDING, max_length=16, index=True)
    attempts: int = 0
    not_before: int = big(default=0)             # quiet hours
    next_attempt: int = big(default=0)
    lease_until: Optional[int] = big(default=None)
    created: int = big(default_factory=now_s)
    sent: Optional[int] = big(default=None)
    provider_id: str = Field(default="", max_length=200)
    last_error: str = Field(default="", max_length=500)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    id: Optional[int] = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    n: int
    started: int = big()
    finished: Optional[int] = big(default=None)
    outcome: str = Field(default="sending", max_length=16)   # sending, ok, error, crashed
    detail: str = Field(default="", max_length=500)


class DeliveryAttemptPublic(SQLModel):
    n: int
    started: int
    finished: Optional[int]
    outcome: str
    detail: str


class NotificationPublic(SQLModel):
    id: int
    alert_id: int
    channel: str
    recipient: str
    language: str
    template: str
    subject: str
    body: str
    state: str
    attempts: int
    not_before: int
    next_attempt: int
    created: int
    sent: Optional[int]
    last_error: str
    tries: list[DeliveryAttemptPublic] = []


class Webhook(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    url: str = Field(max_length=500)
    secret_hex: str = Field(max_length=64)      # HMAC-SHA256 key (shown once)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))   # empty: all
    description: str = Field(default="", max_length=200)
    active: bool = True
    created: int = big(default_factory=now_s)
    created_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")


class WebhookCreate(Body):
    property_id: int = Field(ge=1)
    url: str = Field(min_length=8, max_length=500, schema_extra={"pattern": r"^https?://[^\s]+$"})
    kinds: list[str] = Field(default_factory=list, max_length=len(ALERT_KINDS),
                             description="alert kinds sent (empty: all)")
    description: str = Field(default="", max_length=200)


class WebhookPublic(SQLModel):
    id: int
    property_id: int
    url: str
    kinds: list[str]
    description: str
    active: bool
    created: int


class WebhookCreated(WebhookPublic):
    """The only answer that shows the signing secret."""
    secret_hex: str


class AccountForecast(SQLModel, table=True):
    __tablename__ = "account_forecast"
    account_id: int = Field(foreign_key="account.id", primary_key=True, sa_column_kwargs={"autoincrement": False})
    rate_mu_per_day: Optional[int] = big(default=None)    # None: not enough readings yet
    as_of: int = big()                                    # the reading time it was computed at
