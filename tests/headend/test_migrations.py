"""Alembic migrations: from empty and from a head-end 0.1 database, on SQLite
and PostgreSQL; models and migrations agree (`alembic check`); down to base
and up again; the audit log and the ledger refuse UPDATE and DELETE."""
import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from headend.core import migrate
from tests.support import ROOT

LEGACY_SQL = os.path.join(ROOT, "tests", "headend", "data", "headend_0_1_demo.sql")


def test_upgrade_check_downgrade_upgrade(empty_engine):
    migrate.upgrade(empty_engine)
    assert migrate.current(empty_engine) == migrate.heads()
    migrate.check(empty_engine)          # raises when models and migrations differ
    migrate.downgrade(empty_engine, "base")
    assert migrate.current(empty_engine) == ()
    with empty_engine.connect() as c:
        left = set(empty_engine.dialect.get_table_names(c)) - {"alembic_version"}
    assert left == set()
    migrate.upgrade(empty_engine)
    migrate.check(empty_engine)


def _load_legacy(engine):
    """A database as head-end 0.1 left it: its schema (revision 0001, made
    the way 0.1 made it), its data, and no alembic_version."""
    migrate.upgrade(engine, "0001")
    with engine.begin() as c:
        c.execute(text("DROP TABLE alembic_version"))
        for line in open(LEGACY_SQL, encoding="utf-8"):
            if line.startswith("INSERT"):
                c.execute(text(line.replace(":", "\\:")))


def test_a_head_end_0_1_database_upgrades_with_its_data(empty_engine):
    _load_legacy(empty_engine)
    migrate.upgrade(empty_engine)
    migrate.check(empty_engine)
    with empty_engine.connect() as c:
        q = lambda sql: c.execute(text(sql)).all()  # noqa: E731
        assert q("SELECT name FROM property") == [("demo",)]
        assert q("SELECT count(*) FROM account WHERE kind = 'tenant' AND status = 'open'") == [(16,)]
        # every account's tenant text became a tenant of the property
        assert q("SELECT count(*) FROM account a JOIN tenant t ON t.id = a.tenant_id "
                 "WHERE t.name = a.name AND t.property_id = a.property_id") == [(16,)]
        # the ledger keeps every entry; board entries name the board, the rest the legacy user
        assert q("SELECT count(*) FROM ledger_entry") == [(138,)]
        assert q("SELECT count(*) FROM ledger_entry l JOIN concentrator c ON c.id = l.concentrator_id "
                 "WHERE l.kind = 'consumption'") == [(122,)]
        assert q("SELECT count(*) FROM ledger_entry l JOIN app_user u ON u.id = l.user_id "
                 "WHERE u.username = 'legacy-0.1' AND l.note LIKE '%recorded by: seed%'") == [(16,)]
        # balances still equal the ledger
        bad = q("SELECT a.id FROM account a LEFT JOIN (SELECT account_id, sum(amount_mu) s FROM ledger_entry "
                "GROUP BY account_id) l ON l.account_id = a.id WHERE a.balance_mu <> COALESCE(l.s, 0)")
        assert bad == []
        assert q("SELECT count(*) FROM reading") == [(144,)]
        assert q("SELECT count(*) FROM concentrator WHERE property_id = 1") == [(2,)]
    # new rows get fresh ids after the copied ones (PostgreSQL sequences moved on)
    with empty_engine.begin() as c:
        c.execute(text("INSERT INTO organisation (name, created) VALUES ('Second', 0)"))
        assert c.execute(text("SELECT max(id) FROM organisation")).scalar() == 2


@pytest.mark.parametrize("table", ["audit_log", "ledger_entry"])
def test_append_only_tables_refuse_update_and_delete(empty_engine, table):
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as c:
        c.execute(text("INSERT INTO organisation (id, name, created) VALUES (1, 'o', 0)"))
        c.execute(text("INSERT INTO property (id, organisation_id, name, tz_offset_s, created) "
                       "VALUES (1, 1, 'p', 28800, 0)"))
        c.execute(text("INSERT INTO app_user (id, username, display_name, kind, password_hash, active, "
                       "failed_logins, must_change_password, language, created) "
                       "VALUES (1, 'u', '', 'staff', '', true, 0, false, '', 0)"))
        c.execute(text("INSERT INTO account (id, property_id, kind, name, balance_mu, low_balance_threshold_mu, "
                       "status, opened) VALUES (1, 1, 'tenant', 'a', 5, 0, 'open', 0)"))
        c.execute(text("INSERT INTO ledger_entry (account_id, kind, amount_mu, balance_after_mu, user_id, source, "
                       "reference, note, created) VALUES (1, 'recharge', 5, 5, 1, 'api', '', '', 0)"))
        c.execute(text("INSERT INTO audit_log (ts, user_id, username, actor_kind, ip, action, object_type, "
                       "object_id, detail) VALUES (0, 1, 'u', 'user', '', 'x', '', '', '')"))
    for sql in ("UPDATE %s SET user_id = NULL" % table, "DELETE FROM %s" % table):
        with pytest.raises(DBAPIError, match="append-only"):
            with empty_engine.begin() as c:
                c.execute(text(sql))
    with empty_engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM %s" % table)).scalar() == 1
