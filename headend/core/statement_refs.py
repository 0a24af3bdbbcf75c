"""PostgreSQL: references checked once per statement instead of once per
row, for the tables the ingest writes thousands of rows into per
transaction (the readings, the consumption entries of the ledger).

A foreign key checks every inserted row with a query of its own (a
look-up and a FOR KEY SHARE lock of the row it names): ~6 us per ledger
entry and ~6 us per reading (two keys), a fifth of what the ingest spends
on PostgreSQL. These triggers give the same guarantee set-based:

* after each INSERT or UPDATE statement on the referencing table, one
  query over the statement's new rows (a transition table) locks the rows
  they name FOR KEY SHARE, as the foreign key's check would, and refuses
  the statement if any is missing;
* after a DELETE, or a change of `id`, of a referenced row, a row trigger
  refuses it if a referencing row names it (AFTER: the row is locked by
  then, so an insert that named it and committed meanwhile is seen), and a
  TRUNCATE of a referenced table is refused while rows name it.

Both raise SQLSTATE 23503 (foreign_key_violation) with the message a
foreign key gives, so callers see the same IntegrityError. SQLite keeps
its foreign keys (the models declare them for SQLite only, so `alembic
check` compares each database with what it has).

    statement_refs.create(op, "reading", [("meter_id", "meter"), ...])   # a migration's upgrade()
    statement_refs.drop(op, "reading", [("meter_id", "meter"), ...])     # its downgrade()
"""


def _pg(op):
    return op.get_bind().dialect.name == "postgresql"


def fk_name(table, column):
    """The name PostgreSQL gives the foreign key (and the checks' errors say)."""
    return "%s_%s_fkey" % (table, column)


def _raise(table, column, ref, value_sql):
    return ("RAISE EXCEPTION 'insert or update on table \"%s\" violates foreign key \"%s\"' "
            "USING ERRCODE = 'foreign_key_violation', "
            "DETAIL = format('Key (%s)=(%%s) is not present in table \"%s\".', %s)"
            % (table, fk_name(table, column), column, ref, value_sql))


def _check_function(table, refs):
    body = []
    for column, ref in refs:
        body.append(
            "PERFORM 1 FROM {ref} WHERE id IN (SELECT DISTINCT {col} FROM wk_new) FOR KEY SHARE; "
            "SELECT n.{col} INTO bad FROM wk_new n WHERE n.{col} IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM {ref} r WHERE r.id = n.{col}) LIMIT 1; "
            "IF FOUND THEN {err}; END IF;".format(ref=ref, col=column, err=_raise(table, column, ref, "bad")))
    return ("CREATE OR REPLACE FUNCTION wk_%s_refs() RETURNS trigger AS $$ DECLARE bad bigint; BEGIN %s "
            "RETURN NULL; END; $$ LANGUAGE plpgsql" % (table, " ".join(body)))


def _guard_function(ref, table, column):
    name = "wk_%s_%s_referenced" % (table, column)
    err = ("RAISE EXCEPTION 'update or delete on table \"%s\" violates foreign key \"%s\" on table \"%s\"' "
           "USING ERRCODE = 'foreign_key_violation', "
           "DETAIL = format('Key (id)=(%%s) is still referenced from table \"%s\".', OLD.id)"
           % (ref, fk_name(table, column), table, table))
    row = ("CREATE OR REPLACE FUNCTION %s() RETURNS trigger AS $$ BEGIN "
           "IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN RETURN NULL; END IF; "
           "IF EXISTS (SELECT 1 FROM %s WHERE %s = OLD.id) THEN %s; END IF; "
           "RETURN NULL; END; $$ LANGUAGE plpgsql" % (name, table, column, err))
    trunc = ("CREATE OR REPLACE FUNCTION %s_all() RETURNS trigger AS $$ BEGIN "
             "IF EXISTS (SELECT 1 FROM %s WHERE %s IS NOT NULL) THEN RAISE EXCEPTION "
             "'cannot truncate table \"%s\": table \"%s\" references it' "
             "USING ERRCODE = 'foreign_key_violation'; END IF; RETURN NULL; END; $$ LANGUAGE plpgsql"
             % (name, table, column, ref, table))
    return name, row, trunc


def create(op, table, refs):
    """Replace the foreign keys of `table` [(column, referenced table)] by
    statement-level checks (PostgreSQL; SQLite: nothing)."""
    if not _pg(op):
        return
    for column, _ref in refs:
        op.execute("ALTER TABLE %s DROP CONSTRAINT %s" % (table, fk_name(table, column)))
    op.execute(_check_function(table, refs))
    for event in ("INSERT", "UPDATE"):
        op.execute("CREATE TRIGGER %s_refs_%s AFTER %s ON %s REFERENCING NEW TABLE AS wk_new "
                   "FOR EACH STATEMENT EXECUTE FUNCTION wk_%s_refs()" % (table, event.lower(), event, table, table))
    for column, ref in refs:
        name, row, trunc = _guard_function(ref, table, column)
        op.execute(row)
        op.execute(trunc)
        op.execute("CREATE TRIGGER %s AFTER DELETE OR UPDATE OF id ON %s FOR EACH ROW EXECUTE FUNCTION %s()"
                   % (name, ref, name))
        op.execute("CREATE TRIGGER %s_all BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s_all()"
                   % (name, ref, name))


def drop(op, table, refs):
    """The foreign keys back instead of the checks (PostgreSQL)."""
    if not _pg(op):
        return
    for column, ref in refs:
        name = "wk_%s_%s_referenced" % (table, column)
        op.execute("DROP TRIGGER IF EXISTS %s ON %s" % (name, ref))
        op.execute("DROP TRIGGER IF EXISTS %s_all ON %s" % (name, ref))
        op.execute("DROP FUNCTION IF EXISTS %s()" % name)
        op.execute("DROP FUNCTION IF EXISTS %s_all()" % name)
    for event in ("insert", "update"):
        op.execute("DROP TRIGGER IF EXISTS %s_refs_%s ON %s" % (table, event, table))
    op.execute("DROP FUNCTION IF EXISTS wk_%s_refs()" % table)
    for column, ref in refs:
        op.execute("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (id)"
                   % (table, fk_name(table, column), column, ref))
