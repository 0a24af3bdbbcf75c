"""Properties, people and audit (head-end 0.2).

- site -> property under an organisation; buildings and units; tenants;
  occupancies; accounts belong to a property and a tenant (or are a
  property's vacancy account).
- People: users (staff and tenants), grants, sessions, API tokens.
- The ledger names an authenticated user or a board instead of free text
  (ledgerentry -> ledger_entry); events name the user who asked.
- audit_log, and the downlink outbox.
- audit_log and ledger_entry refuse UPDATE and DELETE (triggers).

Data of head-end 0.1 is carried over: sites become properties of a
"Default organisation", each account's tenant text becomes a tenant, ledger
entries made by a board keep it (concentrator_id), those made by a person
typed as free text are attributed to the user "legacy-0.1" with the text in
the note.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import time

import sqlalchemy as sa
import sqlmodel
from alembic import op

from headend.core import append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString
LEGACY_USER = "legacy-0.1"

IMMUTABLE = ("audit_log", "ledger_entry")


def _pg():
    return op.get_bind().dialect.name == "postgresql"


def _scalar(sql, **kw):
    return op.get_bind().execute(sa.text(sql), kw).scalar()


def _fix_sequence(table):
    if _pg():
        op.execute(sa.text("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
                           "COALESCE((SELECT max(id) FROM %s), 0) + 1, false)" % (table, table)))


def _create_people_and_places():
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_organisation_name"), "organisation", ["name"], unique=True)
    op.create_table(
        "property",
        sa.Column("tz_offset_s", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=100), nullable=False),
        sa.Column("tariff_name", S(length=100), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_property_name"), "property", ["name"], unique=True)
    op.create_index(op.f("ix_property_organisation_id"), "property", ["organisation_id"], unique=False)
    op.create_table(
        "building",
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("property_id", "name", name="uq_building_property_name"))
    op.create_index(op.f("ix_building_property_id"), "building", ["property_id"], unique=False)
    op.create_table(
        "unit",
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=50), nullable=False),
        sa.Column("floor_area_dm2", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["building_id"], ["building.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("building_id", "name", name="uq_unit_building_name"))
    op.create_index(op.f("ix_unit_building_id"), "unit", ["building_id"], unique=False)
    op.create_index(op.f("ix_unit_property_id"), "unit", ["property_id"], unique=False)
    op.create_table(
        "tenant",
        sa.Column("email", S(length=200), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=200), nullable=False),
        sa.Column("phone", S(length=40), nullable=False),
        sa.Column("id_number", S(length=40), nullable=False),
        sa.Column("contract_start", sa.BigInteger(), nullable=True),
        sa.Column("contract_end", sa.BigInteger(), nullable=True),
        sa.Column("deposit_mu", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_tenant_name"), "tenant", ["name"], unique=False)
    op.create_index(op.f("ix_tenant_phone"), "tenant", ["phone"], unique=False)
    op.create_index(op.f("ix_tenant_property_id"), "tenant", ["property_id"], unique=False)
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", S(length=64), nullable=False),
        sa.Column("display_name", S(length=200), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("role", S(length=16), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", S(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("last_login", sa.BigInteger(), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("language", S(length=8), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_app_user_tenant_id"), "app_user", ["tenant_id"], unique=False)
    op.create_index(op.f("ix_app_user_username"), "app_user", ["username"], unique=True)
    op.create_table(
        "user_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "property_id", "organisation_id", name="uq_user_grant"))
    op.create_index(op.f("ix_user_grant_user_id"), "user_grant", ["user_id"], unique=False)
    op.create_table(
        "auth_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("token_hash", S(length=64), nullable=False),
        sa.Column("csrf_token", S(length=64), nullable=False),
        sa.Column("ip", S(length=64), nullable=False),
        sa.Column("user_agent", S(length=300), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_auth_session_token_hash"), "auth_session", ["token_hash"], unique=True)
    op.create_index(op.f("ix_auth_session_user_id"), "auth_session", ["user_id"], unique=False)
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", S(length=100), nullable=False),
        sa.Column("token_hash", S(length=64), nullable=False),
        sa.Column("prefix", S(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=True),
        sa.Column("last_used", sa.BigInteger(), nullable=True),
        sa.Column("revoked", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_api_token_token_hash"), "api_token", ["token_hash"], unique=True)
    op.create_index(op.f("ix_api_token_user_id"), "api_token", ["user_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", S(length=64), nullable=False),
        sa.Column("actor_kind", S(length=16), nullable=False),
        sa.Column("ip", S(length=64), nullable=False),
        sa.Column("action", S(length=64), nullable=False),
        sa.Column("object_type", S(length=32), nullable=False),
        sa.Column("object_id", S(length=64), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("detail", S(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_property_id"), "audit_log", ["property_id"], unique=False)
    op.create_index(op.f("ix_audit_log_ts"), "audit_log", ["ts"], unique=False)
    op.create_index(op.f("ix_audit_log_user_id"), "audit_log", ["user_id"], unique=False)


def _carry_sites_over(now):
    n_sites = _scalar("SELECT count(*) FROM site")
    n_accounts = _scalar("SELECT count(*) FROM account")
    if not n_sites and not n_accounts:
        return
    op.execute(sa.text("INSERT INTO organisation (id, name, created) VALUES (1, 'Default organisation', :now)")
               .bindparams(now=now))
    _fix_sequence("organisation")
    op.execute("INSERT INTO property (id, organisation_id, name, tz_offset_s, tariff_name, created) "
               "SELECT id, 1, name, tz_offset_s, tariff_name, created FROM site")
    if not n_sites:
        op.execute(sa.text("INSERT INTO property (id, organisation_id, name, tz_offset_s, created) "
                           "VALUES (1, 1, 'Default property', 28800, :now)").bindparams(now=now))
    _fix_sequence("property")


def _move_to_property(table):
    """site_id -> property_id (same ids: sites became properties)."""
    with op.batch_alter_table(table) as b:
        b.add_column(sa.Column("property_id", sa.Integer(), nullable=True))
    op.execute("UPDATE %s SET property_id = site_id" % table)
    with op.batch_alter_table(table) as b:
        b.drop_index("ix_%s_site_id" % table)
        if _pg():
            b.drop_constraint("%s_site_id_fkey" % table, type_="foreignkey")
        b.drop_column("site_id")
        b.create_index(op.f("ix_%s_property_id" % table), ["property_id"], unique=False)
        b.create_foreign_key("fk_%s_property_id" % table, "property", ["property_id"], ["id"])


def _accounts(now):
    op.execute("INSERT INTO tenant (id, property_id, name, phone, email, id_number, deposit_mu, created) "
               "SELECT id, COALESCE(site_id, (SELECT min(id) FROM property)), tenant, '', '', '', 0, created "
               "FROM account")
    _fix_sequence("tenant")
    with op.batch_alter_table("account") as b:
        b.add_column(sa.Column("property_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("kind", S(length=16), nullable=True))
        b.add_column(sa.Column("name", S(length=200), nullable=True))
        b.add_column(sa.Column("status", S(length=16), nullable=True))
        b.add_column(sa.Column("opened", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("closed", sa.BigInteger(), nullable=True))
    op.execute("UPDATE account SET property_id = COALESCE(site_id, (SELECT min(id) FROM property)), "
               "tenant_id = id, kind = 'tenant', name = tenant, status = 'open', opened = created")
    with op.batch_alter_table("account") as b:
        b.drop_index("ix_account_site_id")
        if _pg():
            b.drop_constraint("account_site_id_fkey", type_="foreignkey")
        b.drop_column("site_id")
        b.drop_column("tenant")
        b.drop_column("created")
        for col, typ in (("property_id", sa.Integer()), ("kind", S(length=16)), ("name", S(length=200)),
                         ("status", S(length=16)), ("opened", sa.BigInteger())):
            b.alter_column(col, existing_type=typ, nullable=False)
        b.create_index(op.f("ix_account_property_id"), ["property_id"], unique=False)
        b.create_index(op.f("ix_account_tenant_id"), ["tenant_id"], unique=False)
        b.create_foreign_key("fk_account_property_id", "property", ["property_id"], ["id"])
        b.create_foreign_key("fk_account_tenant_id", "tenant", ["tenant_id"], ["id"])


def _ledger(now):
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("amount_mu", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_mu", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("concentrator_id", sa.Integer(), nullable=True),
        sa.Column("source", S(length=16), nullable=False),
        sa.Column("related_entry_id", sa.Integer(), nullable=True),
        sa.Column("reference", S(length=200), nullable=False),
        sa.Column("note", S(length=500), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("user_id IS NOT NULL OR concentrator_id IS NOT NULL", name="ck_ledger_entry_actor"),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["concentrator_id"], ["concentrator.id"]),
        sa.ForeignKeyConstraint(["related_entry_id"], ["ledger_entry.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_ledger_entry_account_id"), "ledger_entry", ["account_id"], unique=False)
    op.create_index(op.f("ix_ledger_entry_user_id"), "ledger_entry", ["user_id"], unique=False)
    if _scalar("SELECT count(*) FROM ledgerentry"):
        op.execute(sa.text(
            "INSERT INTO app_user (username, display_name, kind, password_hash, active, failed_logins, "
            "must_change_password, language, created) VALUES (:u, 'Head-end 0.1 (actor typed as text)', "
            "'system', '', false, 0, false, '', :now)").bindparams(u=LEGACY_USER, now=now))
        legacy = _scalar("SELECT id FROM app_user WHERE username = :u", u=LEGACY_USER)
        op.execute(sa.text(
            "INSERT INTO ledger_entry (id, account_id, kind, amount_mu, balance_after_mu, user_id, "
            "concentrator_id, source, reference, note, created) "
            "SELECT l.id, l.account_id, l.kind, l.amount_mu, l.balance_after_mu, "
            "CASE WHEN c.id IS NULL THEN :legacy ELSE NULL END, c.id, "
            "CASE WHEN c.id IS NULL THEN 'system' ELSE 'ingest' END, substr(l.reference, 1, 200), "
            "CASE WHEN c.id IS NULL THEN substr(trim(l.note || ' (recorded by: ' || l.actor || ')'), 1, 500) "
            "ELSE substr(l.note, 1, 500) END, l.created "
            "FROM ledgerentry l LEFT JOIN concentrator c ON c.dev = l.actor ORDER BY l.id").bindparams(legacy=legacy))
        _fix_sequence("ledger_entry")
    op.drop_index("ix_ledgerentry_account_id", table_name="ledgerentry")
    op.drop_table("ledgerentry")


def upgrade():
    now = int(time.time())
    _create_people_and_places()
    _carry_sites_over(now)
    _move_to_property("concentrator")
    _move_to_property("tariff")
    with op.batch_alter_table("tariff") as b:
        b.add_column(sa.Column("created_by_user_id", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_tariff_created_by_user_id", "app_user", ["created_by_user_id"], ["id"])
    _accounts(now)
    op.create_table(
        "occupancy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_occupancy_account_id"), "occupancy", ["account_id"], unique=False)
    op.create_index(op.f("ix_occupancy_unit_id"), "occupancy", ["unit_id"], unique=False)
    with op.batch_alter_table("meter") as b:
        b.add_column(sa.Column("unit_id", sa.Integer(), nullable=True))
        b.create_index(op.f("ix_meter_unit_id"), ["unit_id"], unique=False)
        b.create_foreign_key("fk_meter_unit_id", "unit", ["unit_id"], ["id"])
    with op.batch_alter_table("event") as b:
        b.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        b.drop_column("actor")
        b.create_foreign_key("fk_event_user_id", "app_user", ["user_id"], ["id"])
    _ledger(now)
    op.create_table(
        "downlink",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("concentrator_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("topic", S(length=100), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["concentrator_id"], ["concentrator.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_downlink_concentrator_id"), "downlink", ["concentrator_id"], unique=False)
    op.create_index(op.f("ix_downlink_sent"), "downlink", ["sent"], unique=False)
    op.drop_index("ix_site_name", table_name="site")
    op.drop_table("site")
    for t in IMMUTABLE:
        append_only.create(op, t)


def downgrade():
    """Back to the 0.1 schema. Properties become sites again and the ledger
    keeps its entries (the actor becomes the user name or the board's id);
    buildings, units, tenants, users, sessions, tokens, the audit log and the
    outbox are dropped."""
    for t in IMMUTABLE:
        append_only.drop(op, t)
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", S(), nullable=False),
        sa.Column("tz_offset_s", sa.Integer(), nullable=False),
        sa.Column("tariff_name", S(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_site_name", "site", ["name"], unique=True)
    op.execute("INSERT INTO site (id, name, tz_offset_s, tariff_name, created) "
               "SELECT id, name, tz_offset_s, tariff_name, created FROM property")
    _fix_sequence("site")
    op.drop_index(op.f("ix_downlink_sent"), table_name="downlink")
    op.drop_index(op.f("ix_downlink_concentrator_id"), table_name="downlink")
    op.drop_table("downlink")
    op.create_table(
        "ledgerentry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", S(), nullable=False),
        sa.Column("amount_mu", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_mu", sa.BigInteger(), nullable=False),
        sa.Column("actor", S(), nullable=False),
        sa.Column("reference", S(), nullable=False),
        sa.Column("note", S(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_ledgerentry_account_id", "ledgerentry", ["account_id"], unique=False)
    op.execute("INSERT INTO ledgerentry (id, account_id, kind, amount_mu, balance_after_mu, actor, reference, "
               "note, created) SELECT l.id, l.account_id, l.kind, l.amount_mu, l.balance_after_mu, "
               "COALESCE(c.dev, u.username, 'unknown'), l.reference, l.note, l.created FROM ledger_entry l "
               "LEFT JOIN concentrator c ON c.id = l.concentrator_id LEFT JOIN app_user u ON u.id = l.user_id")
    _fix_sequence("ledgerentry")
    op.drop_index(op.f("ix_ledger_entry_user_id"), table_name="ledger_entry")
    op.drop_index(op.f("ix_ledger_entry_account_id"), table_name="ledger_entry")
    op.drop_table("ledger_entry")
    with op.batch_alter_table("event") as b:
        b.add_column(sa.Column("actor", S(), nullable=True))
        if _pg():
            b.drop_constraint("fk_event_user_id", type_="foreignkey")
        b.drop_column("user_id")
    with op.batch_alter_table("meter") as b:
        if _pg():
            b.drop_constraint("fk_meter_unit_id", type_="foreignkey")
        b.drop_index(op.f("ix_meter_unit_id"))
        b.drop_column("unit_id")
    op.drop_index(op.f("ix_occupancy_unit_id"), table_name="occupancy")
    op.drop_index(op.f("ix_occupancy_account_id"), table_name="occupancy")
    op.drop_table("occupancy")
    # accounts: back to site_id + tenant text
    with op.batch_alter_table("account") as b:
        b.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("tenant", S(), nullable=True))
        b.add_column(sa.Column("created", sa.BigInteger(), nullable=True))
    op.execute("UPDATE account SET site_id = property_id, tenant = name, created = opened")
    with op.batch_alter_table("account") as b:
        if _pg():
            b.drop_constraint("fk_account_property_id", type_="foreignkey")
            b.drop_constraint("fk_account_tenant_id", type_="foreignkey")
        b.drop_index(op.f("ix_account_property_id"))
        b.drop_index(op.f("ix_account_tenant_id"))
        for col in ("property_id", "tenant_id", "kind", "name", "status", "opened", "closed"):
            b.drop_column(col)
        b.alter_column("tenant", existing_type=S(), nullable=False)
        b.alter_column("created", existing_type=sa.BigInteger(), nullable=False)
        b.create_index("ix_account_site_id", ["site_id"], unique=False)
        b.create_foreign_key("fk_account_site_id", "site", ["site_id"], ["id"])
    with op.batch_alter_table("tariff") as b:
        if _pg():
            b.drop_constraint("fk_tariff_created_by_user_id", type_="foreignkey")
        b.drop_column("created_by_user_id")
    for table in ("tariff", "concentrator"):
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        op.execute("UPDATE %s SET site_id = property_id" % table)
        with op.batch_alter_table(table) as b:
            if _pg():
                b.drop_constraint("fk_%s_property_id" % table, type_="foreignkey")
            b.drop_index(op.f("ix_%s_property_id" % table))
            b.drop_column("property_id")
            b.create_index("ix_%s_site_id" % table, ["site_id"], unique=False)
            b.create_foreign_key("fk_%s_site_id" % table, "site", ["site_id"], ["id"])
    for name in ("audit_log", "api_token", "auth_session", "user_grant", "app_user", "tenant", "unit", "building",
                 "property", "organisation"):
        op.drop_table(name)
