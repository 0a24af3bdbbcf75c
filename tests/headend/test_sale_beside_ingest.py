"""A desk sale while a worker bills the same board (PostgreSQL): the worker
holds the board's row, then locks the account; the sale must take the
board's row before the account too (ledger.lock_boards_of). The other way
round the two deadlocked and PostgreSQL aborted one of them (seen in the
partitioned-workers test)."""
import secrets
import threading
import time

import pytest
from sqlalchemy import text

from headend.core import db
from headend.services import ledger, sales
from headend.services.actor import system_actor
from tools.fleet import seed_boards


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)
def test_a_sale_waits_for_the_board_a_worker_holds_and_neither_deadlocks(engine):
    sf = db.session_factory(engine)
    with sf() as s:
        res = seed_boards(s, "Locks", {"lk1": secrets.token_hex(32)}, 2, tariff_price_mu_per_kwh=6000,
                          opening_balance_mu=10 ** 6)
        s.commit()
        conc_id = res["concentrators"]["lk1"]["id"]
        account_id = s.execute(text("SELECT account_id FROM meter WHERE concentrator_id = :c AND index = 0"),
                               {"c": conc_id}).scalar()
    worker = engine.connect()
    worker.execute(text("SELECT id FROM concentrator WHERE id = :c FOR UPDATE"), {"c": conc_id})
    got = {}

    def sell():
        try:
            with sf() as s:
                got["sale"] = sales.sell(s, system_actor(s), account_id, 5_000_000)
                s.commit()
        except Exception as e:            # a deadlock aborts the sale (or the worker, below)
            got["error"] = e

    t = threading.Thread(target=sell)
    t.start()
    time.sleep(0.5)                       # the sale is as far as it gets while the worker holds the board
    # the worker goes on: the account of a meter it bills, then its charge
    worker.execute(text("SELECT id FROM account WHERE id = :a FOR UPDATE"), {"a": account_id})
    worker.execute(text("UPDATE account SET balance_mu = balance_mu - 100 WHERE id = :a"), {"a": account_id})
    worker.execute(text("INSERT INTO ledger_entry (account_id, kind, amount_mu, balance_after_mu, concentrator_id, "
                        "source, reference, note, created) SELECT id, 'consumption', -100, balance_mu, :c, "
                        "'mqtt', 'test', '', 0 FROM account WHERE id = :a"), {"a": account_id, "c": conc_id})
    worker.commit()
    worker.close()
    t.join(20)
    assert "error" not in got, got.get("error")
    assert got["sale"].pushed == 1
    with sf() as s:
        assert ledger.balance(s, account_id) == 10 ** 6 - 100 + 5_000_000
        assert ledger.check_cache(s) == []
