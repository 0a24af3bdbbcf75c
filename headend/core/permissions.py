"""Roles and what each may do. One table: the API, the dashboard, the CLI
and the role-matrix test all read it.

Staff users have one role and are granted properties (or a whole
organisation); an admin has every property. Tenants have no role: they reach
only their own accounts through the portal (permission PORTAL).
"""

# what a permission lets one do (a route declares exactly one)
PROPERTY_READ = "property.read"          # see meters, accounts, tariffs, events of a property
DEVICES_WRITE = "devices.write"          # provision concentrators and meters, import scans
PROPERTIES_WRITE = "properties.write"    # buildings, units
ORGANISATIONS_WRITE = "organisations.write"   # organisations and properties themselves
ACCOUNTS_WRITE = "accounts.write"        # open accounts, tenants, move-in/out
MONEY_SELL = "money.sell"                # sell credit
MONEY_REVERSE = "money.reverse"          # reverse a sale (cashier: own sales, same day)
MONEY_ADJUST = "money.adjust"            # refunds and adjustments
CASH_REPORT = "cash.report"              # day-end report (cashier: own)
CASH_CLOSE = "cash.close"                # close a property's business day (日结)
REPORTS_READ = "reports.read"
STATEMENTS_RUN = "statements.run"        # issue a property's monthly statements (账单)
TARIFFS_WRITE = "tariffs.write"
POLICY_WRITE = "policy.write"            # relay policy of a board or meter
RELAYS_OVERRIDE = "relays.override"
COMMANDS_SEND = "commands.send"          # time sync, config and other board commands
KEYS_ROTATE = "keys.rotate"
USERS_MANAGE = "users.manage"
AUDIT_READ = "audit.read"
ALERTS_ACK = "alerts.ack"                # acknowledge alerts in the staff inbox
ALERTS_CONFIGURE = "alerts.configure"    # a property's alert rules and webhooks
POOLS_WRITE = "pools.write"              # apportionment pools (公摊): meters, split rule, vacant weight, price
MONEY_APPORTION = "money.apportion"      # post a month's apportionment to the ledger
PORTAL = "portal"                        # a tenant's own accounts
AUTHENTICATED = "authenticated"          # any logged-in person (own profile, logout)

ROLES = ("admin", "manager", "cashier", "technician", "viewer")

_READ = {PROPERTY_READ, AUTHENTICATED}
ROLE_PERMISSIONS = {
    "admin": {PROPERTY_READ, DEVICES_WRITE, PROPERTIES_WRITE, ORGANISATIONS_WRITE, ACCOUNTS_WRITE,
              MONEY_SELL, MONEY_REVERSE, MONEY_ADJUST, CASH_REPORT, CASH_CLOSE, REPORTS_READ, STATEMENTS_RUN,
              TARIFFS_WRITE, POLICY_WRITE, RELAYS_OVERRIDE, COMMANDS_SEND, KEYS_ROTATE, USERS_MANAGE, AUDIT_READ,
              ALERTS_ACK, ALERTS_CONFIGURE, POOLS_WRITE, MONEY_APPORTION, AUTHENTICATED},
    "manager": _READ | {PROPERTIES_WRITE, ACCOUNTS_WRITE, MONEY_SELL, MONEY_REVERSE, MONEY_ADJUST,
                        CASH_REPORT, CASH_CLOSE, REPORTS_READ, STATEMENTS_RUN, TARIFFS_WRITE, POLICY_WRITE,
                        RELAYS_OVERRIDE, USERS_MANAGE, AUDIT_READ, ALERTS_ACK, ALERTS_CONFIGURE,
                        POOLS_WRITE, MONEY_APPORTION},
    "cashier": _READ | {ACCOUNTS_WRITE, MONEY_SELL, MONEY_REVERSE, CASH_REPORT, ALERTS_ACK},
    "technician": _READ | {DEVICES_WRITE, RELAYS_OVERRIDE, COMMANDS_SEND, KEYS_ROTATE, ALERTS_ACK},
    "viewer": _READ | {REPORTS_READ},
    "tenant": {PORTAL, AUTHENTICATED},
}

# roles a manager may give to the staff of its properties
MANAGER_ASSIGNABLE = ("cashier", "technician", "viewer")

ROLE_TEXT = {
    "admin": "everything, every property",
    "manager": "a property's tariffs, relay overrides and policy, reports, corrections, its staff",
    "cashier": "sell credit, reverse own sales the same day, own day-end report",
    "technician": "concentrators, meters, relay tests, commands, key rotation; no money",
    "viewer": "read only",
}


def permissions_of(role):
    return ROLE_PERMISSIONS.get(role, set())


def allowed(role, permission):
    return permission in ROLE_PERMISSIONS.get(role, ())
