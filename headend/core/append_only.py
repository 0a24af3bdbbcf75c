"""Tables that refuse UPDATE and DELETE (the ledger, the audit log,
receipts, closed days): triggers on PostgreSQL and SQLite, made by the
migrations.

    from headend.core import append_only
    append_only.create(op, "receipt")       # in a migration's upgrade()
    append_only.drop(op, "receipt")         # in its downgrade()
"""


def _pg(op):
    return op.get_bind().dialect.name == "postgresql"


def create(op, table):
    if _pg(op):
        op.execute("CREATE OR REPLACE FUNCTION wk_refuse_change() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END; $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER %s_append_only BEFORE UPDATE OR DELETE ON %s "
                   "FOR EACH ROW EXECUTE FUNCTION wk_refuse_change()" % (table, table))
        op.execute("CREATE TRIGGER %s_no_truncate BEFORE TRUNCATE ON %s "
                   "FOR EACH STATEMENT EXECUTE FUNCTION wk_refuse_change()" % (table, table))
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute("CREATE TRIGGER %s_no_%s BEFORE %s ON %s BEGIN "
                       "SELECT RAISE(ABORT, '%s is append-only: %s refused'); END"
                       % (table, what.lower(), what, table, table, what))


def drop(op, table):
    if _pg(op):
        op.execute("DROP TRIGGER IF EXISTS %s_append_only ON %s" % (table, table))
        op.execute("DROP TRIGGER IF EXISTS %s_no_truncate ON %s" % (table, table))
    else:
        for what in ("update", "delete"):
            op.execute("DROP TRIGGER IF EXISTS %s_no_%s" % (table, what))
