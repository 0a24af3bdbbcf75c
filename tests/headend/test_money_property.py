"""The money is always right, whatever happens in whatever order (hypothesis,
stateful): sales (some repeated with the same idempotency key), reversals,
refunds, adjustments, move-ins and move-outs, meter swaps, tariff changes of
the property and of accounts, vacancy, day ends, days passing, and
consumption reported by a board through the real ingest. After every step:

- every account's balance equals its ledger sum;
- the consumption charged to each account equals an independent model's
  tariff (concentrator.tariff) applied to each meter's energy for whoever
  held the meter at each reading (no reading charged twice, none to nobody);
- receipt numbers are 1..N without a gap;
- every ledger entry names a user or a board;
- the board and the head-end never disagree (no billing mismatch event);
and at the end of every run: every business day's report reconciles, and
no closed day changed.
"""
import copy
import secrets
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.core import db
from headend.core.money import local_date
from headend.core.events import EV_BILLING_MISMATCH
from headend.ingest import Ingest
from headend.models import Account, Event, LedgerEntry, Receipt, User
from headend.models.account import KIND_VACANCY
from headend.services import (accounts, corrections, dayend, ledger, lifecycle, receipts, tariffs,
                              users)
from headend.services.actor import system_actor
from headend.services.billing import switch_state
from headend.services.errors import DomainError, Forbidden
from headend.services.sales import sell
from headend.services.seed import seed_site

TZ = 28800
T0 = T.days_from_civil(2031, 1, 28) * 86400 - TZ + 8 * 3600      # 08:00 local, days before a cycle start
TIERS = [{"from_wh": 0, "add": 0}, {"from_wh": 20_000, "add": 4000}]
PROPERTY_TARIFF = "homes"
SHOP_TARIFF = "shops"
METERS = ("M1", "M2", "M3")
FEN = 100


class Board:
    """The board side of one concentrator: per-meter energy register, its
    own per-band counters (everything in the flat band here) and its own
    accumulator at the property's tariff, as the firmware keeps them."""

    def __init__(self, dev, key_hex, versions):
        self.dev, self.key = dev, protocol.key_from_hex(key_hex)
        self.n, self.seq = 0, 0
        self.versions = versions            # the property's, shared with the model (the board gets every push)
        self.energy = {i: 0 for i in range(len(METERS))}
        self.flat = {i: 0 for i in range(len(METERS))}
        self.state = {i: T.new_state() for i in range(len(METERS))}

    def record(self, i, ts):
        self.seq += 1
        st_ = self.state[i]
        T.charge_registers(self.versions, st_, {"flat": self.flat[i]}, ts - 1)
        return [self.seq, protocol.KIND_READING, i, ts,
                [self.energy[i], 100, 0, T.total_charged(st_), 0, 0, self.flat[i], 0, 0]]

    def message(self, recs, now):
        self.n += 1
        return protocol.topic_up(self.dev), protocol.seal(
            protocol.message(self.dev, self.n, protocol.RECORDS, now, recs=recs), self.key)


class Money(RuleBasedStateMachine):
    engine = None

    @initialize()
    def setup(self):
        self.sf = db.session_factory(self.engine)
        self.now = T0
        dev, key = "pm-" + uuid.uuid4().hex[:8], secrets.token_hex(32)
        self.versions = {PROPERTY_TARIFF: [{"version": 1, "effective": 0, "tz_offset_s": TZ, "price": 6000,
                                            "tiers": copy.deepcopy(TIERS)}],
                         SHOP_TARIFF: [{"version": 1, "effective": 0, "tz_offset_s": TZ, "price": 5000,
                                        "tiers": copy.deepcopy(TIERS)}]}
        with self.sf() as s:
            seeded = seed_site(s, "site-" + dev, [{"dev": dev, "key_hex": key, "meters": [
                {"id": dev + "-M1", "unit": "U1", "tenant": "Tenant one", "opening_energy_wh": 0},
                {"id": dev + "-M2", "unit": "U2", "tenant": "Tenant two", "opening_energy_wh": 0},
                {"id": dev + "-M3", "unit": "U3", "vacant": True, "opening_energy_wh": 0}]}],
                tariff_spec=self.versions[PROPERTY_TARIFF], tariff_name=PROPERTY_TARIFF, opening_balance_mu=0)
            sa = system_actor(s)
            self.pid = seeded["property_id"]
            shop = tariffs.create_tariff(s, sa, self.pid, SHOP_TARIFF, spec=self.versions[SHOP_TARIFF][0],
                                         property_default=False)
            self.shop_tariff_id = shop.id
            self.users = {}
            for name, role in (("cashier-a", "cashier"), ("cashier-b", "cashier"), ("boss", "manager"),
                               ("tech", "technician")):
                uname = "%s-%s" % (name, dev)
                users.create_user(s, sa, uname, "password-%s" % name, role=role, property_ids=[self.pid])
                self.users[name] = uname
            s.commit()
            c = {mid: seeded["concentrators"][dev]["meters"][dev + "-" + mid] for mid in METERS}
            self.meters = {mid: c[mid]["id"] for mid in METERS}
            self.units = {mid: c[mid]["unit_id"] for mid in METERS}
            self.vacancy = accounts.vacancy_account(s, self.pid).id
            s.commit()
        self.holder = {mid: c[mid]["account_id"] or self.vacancy for mid in METERS}
        self.tenant_accounts = [c[mid]["account_id"] for mid in ("M1", "M2")]
        self.account_tariff = {}                      # account id -> tariff name (the property's when absent)
        self.closed = {}                              # day -> receipt ids it closed with
        self.expected = {}                            # account id -> consumption mu the model charges
        self.model = {mid: {"state": None, "key": None} for mid in METERS}
        self.board = Board(dev, key, self.versions[PROPERTY_TARIFF])
        self.ingest = Ingest(self.sf, clock=lambda: self.now)
        self._send([self.board.record(i, self.now) for i in range(len(METERS))])    # every meter's baseline

    # ------------------------------------------------------------------ helpers
    def actor(self, s, who):
        return users.actor_for(s, s.exec(select(User).where(User.username == self.users[who])).one())

    def _send(self, recs):
        self.ingest.handle(*self.board.message(recs, self.now))

    def tariff_name(self, account_id):
        return self.account_tariff.get(account_id, PROPERTY_TARIFF)

    def bill(self, mid, wh, t):
        """The model: `wh` consumed on meter `mid`, reported at t, charged to its holder."""
        account = self.holder[mid]
        name = self.tariff_name(account)
        versions = self.versions[name]
        m = self.model[mid]
        key = (account, name)
        if m["state"] is None:
            m["state"] = T.new_state()
        elif m["key"] != key:
            m["state"] = switch_state(m["state"], versions, t, keep_cycle=m["key"][0] == account)
        m["key"] = key
        mu = T.charge(versions, m["state"], "flat", wh, t)
        self.expected[account] = self.expected.get(account, 0) + mu

    def money(self, fn):
        """Run one desk action; a refusal (DomainError) changes nothing."""
        with self.sf() as s:
            try:
                out = fn(s)
                s.commit()
                return out
            except DomainError as e:
                s.rollback()
                return e

    def open_accounts(self):
        return self.tenant_accounts + [self.vacancy]

    # ------------------------------------------------------------------ rules
    @rule(i=st.integers(0, 2), wh=st.integers(0, 4000), minutes=st.sampled_from([15, 15, 60, 600]))
    def consume(self, i, wh, minutes):
        self.now += minutes * 60
        mid = METERS[i]
        self.board.energy[i] += wh
        self.board.flat[i] += wh
        self._send([self.board.record(i, self.now)])
        self.bill(mid, wh, self.now - 1)

    @rule(k=st.integers(0, 9), fen=st.integers(1, 20000), who=st.sampled_from(["cashier-a", "cashier-b", "boss"]),
          method=st.sampled_from(["cash", "wechat", "alipay", "card", "transfer"]), repeat=st.booleans())
    def sale(self, k, fen, who, method, repeat):
        accs = self.open_accounts()
        acc = accs[k % len(accs)]
        key = "pm-%d-%d-%s" % (acc, fen, method)
        for _ in range(2 if repeat else 1):
            self.money(lambda s: sell(s, self.actor(s, who), acc, fen * FEN, method=method, idempotency_key=key,
                                      now=self.now, push=False))

    @rule(k=st.integers(0, 50), who=st.sampled_from(["cashier-a", "cashier-b", "boss"]))
    def reverse(self, k, who):
        with self.sf() as s:
            sales = s.exec(select(Receipt).where(Receipt.property_id == self.pid, Receipt.kind == "sale")
                           .order_by(Receipt.id)).all()
        if not sales:
            return
        sale = sales[k % len(sales)]
        out = self.money(lambda s: corrections.reverse(s, self.actor(s, who), sale.id, "property test",
                                                       now=self.now, push=False))
        if isinstance(out, Forbidden):
            # refused to a cashier only: another's sale, or not of the open day
            with self.sf() as s:
                me = s.exec(select(User).where(User.username == self.users[who])).one()
                assert who != "boss"
                assert sale.user_id != me.id or sale.business_day != receipts.open_day(s, self.pid, self.now)

    @rule(k=st.integers(0, 9), fen=st.integers(0, 5000))
    def refund(self, k, fen):
        accs = self.open_accounts()
        self.money(lambda s: corrections.refund(s, self.actor(s, "boss"), accs[k % len(accs)], fen * FEN or None,
                                                reason="property test", now=self.now, push=False))

    @rule(k=st.integers(0, 9), fen=st.integers(-5000, 5000).filter(bool))
    def adjust(self, k, fen):
        accs = self.open_accounts()
        self.money(lambda s: corrections.adjust(s, self.actor(s, "boss"), accs[k % len(accs)], fen * FEN,
                                                "property test", now=self.now, push=False))

    @rule(i=st.integers(0, 2), refund=st.booleans())
    def move_out(self, i, refund):
        mid = METERS[i]
        acc = self.holder[mid]
        if acc == self.vacancy:
            return
        out = self.money(lambda s: lifecycle.move_out(s, self.actor(s, "boss"), acc, self.units[mid],
                                                      settlement="refund" if refund else "carry_over",
                                                      now=self.now))
        if not isinstance(out, DomainError):
            self.holder[mid] = self.vacancy
            if out["closed"]:
                self.tenant_accounts.remove(acc)

    @rule(i=st.integers(0, 2), new=st.booleans(), fen=st.integers(0, 10000))
    def move_in(self, i, new, fen):
        mid = METERS[i]
        if self.holder[mid] != self.vacancy:
            return
        homeless = [a for a in self.tenant_accounts if a not in self.holder.values()]

        def go(s):
            if new or not homeless:
                acc = accounts.create_account(s, self.actor(s, "boss"), self.pid, tenant_name="Tenant %d" % fen).id
            else:
                acc = homeless[0]
            lifecycle.move_in(s, self.actor(s, "cashier-a"), acc, self.units[mid], opening_credit_mu=fen * FEN,
                              now=self.now)
            return acc
        acc = self.money(go)
        assert not isinstance(acc, DomainError), acc
        if acc not in self.tenant_accounts:
            self.tenant_accounts.append(acc)
        self.holder[mid] = acc

    @rule(i=st.integers(0, 2), new_id=st.booleans(), extra=st.integers(0, 500), opening=st.integers(0, 3000))
    def swap(self, i, new_id, extra, opening):
        mid, b = METERS[i], self.board
        with self.sf() as s:
            from headend.models import Meter
            m = s.get(Meter, self.meters[mid])
            last, name = m.billed_energy_wh, m.meter_id
        final = last + (extra if new_id else 0)
        out = self.money(lambda s: lifecycle.swap_meter(s, self.actor(s, "tech"), self.meters[mid],
                                                        name + "x" if new_id else name, None, final, opening,
                                                        now=self.now))
        assert not isinstance(out, DomainError), out
        if new_id and extra:
            self.bill(mid, extra, self.now - 1)
        b.energy[i] = opening
        if new_id:                        # the board counts the new meter from zero
            b.flat[i] = 0
            b.state[i] = T.new_state()
            self.now += 60
            self._send([b.record(i, self.now)])          # its first record: the baseline

    @rule(k=st.integers(0, 9), own=st.booleans())
    def account_tariff_change(self, k, own):
        acc = self.tenant_accounts[k % len(self.tenant_accounts)] if self.tenant_accounts else None
        if acc is None:
            return
        out = self.money(lambda s: accounts.set_tariff(s, self.actor(s, "boss"), acc,
                                                       self.shop_tariff_id if own else None))
        assert not isinstance(out, DomainError), out
        if own:
            self.account_tariff[acc] = SHOP_TARIFF
        else:
            self.account_tariff.pop(acc, None)

    @rule(price=st.integers(4000, 8000), hours=st.integers(1, 48))
    def property_price_change(self, price, hours):
        vs = self.versions[PROPERTY_TARIFF]
        eff = self.now + hours * 3600
        if eff <= vs[-1]["effective"]:
            return
        with self.sf() as s:
            row = tariffs.tariff_rows(s, self.pid, PROPERTY_TARIFF)[0]
            new = tariffs.add_version(s, self.actor(s, "boss"), row.id, effective=eff, now=self.now,
                                      spec={"price": price, "tiers": copy.deepcopy(TIERS)})
            s.commit()
            vs.append(new.spec)

    @rule()
    def close_day(self):
        with self.sf() as s:
            day = receipts.open_day(s, self.pid, self.now)
        if day > local_date(self.now, TZ):
            return           # today is closed already: the next day has not begun
        out = self.money(lambda s: dayend.close(s, self.actor(s, "boss"), self.pid, day, now=self.now))
        assert not isinstance(out, DomainError), out
        with self.sf() as s:
            self.closed[day] = sorted(s.exec(select(Receipt.id).where(Receipt.property_id == self.pid,
                                                                      Receipt.business_day == day)).all())

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours):
        self.now += hours * 3600

    # ------------------------------------------------------------------ invariants
    @invariant()
    def the_books_hold(self):
        if not hasattr(self, "pid"):
            return
        with self.sf() as s:
            assert ledger.check_cache(s) == []
            acc_ids = [a for a in s.exec(select(Account.id).where(Account.property_id == self.pid)).all()]
            charged = dict(s.exec(select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_mu))
                                  .where(LedgerEntry.account_id.in_(acc_ids), LedgerEntry.kind == "consumption")
                                  .group_by(LedgerEntry.account_id)).all())
            assert {a: -int(v) for a, v in charged.items() if v} == {a: v for a, v in self.expected.items() if v}
            refs = s.exec(select(LedgerEntry.reference).where(LedgerEntry.account_id.in_(acc_ids),
                                                              LedgerEntry.kind == "consumption",
                                                              LedgerEntry.concentrator_id.is_not(None))).all()
            assert len(refs) == len(set(refs)), "a reading charged twice"
            assert s.exec(select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.user_id.is_(None), LedgerEntry.concentrator_id.is_(None))).one() == 0
            numbers = sorted(s.exec(select(Receipt.number).where(Receipt.property_id == self.pid)).all())
            assert numbers == list(range(1, len(numbers) + 1)), "receipt numbers with a gap"
            assert s.exec(select(func.count()).select_from(Event).where(Event.code == EV_BILLING_MISMATCH)).one() == 0

    def teardown(self):
        """Every business day reconciles and no closed day changed (checked
        once at the end of a run: a day's report reads all its receipts)."""
        if not hasattr(self, "pid"):
            return
        with self.sf() as s:
            boss = self.actor(s, "boss")
            days = s.exec(select(Receipt.business_day).where(Receipt.property_id == self.pid)
                          .group_by(Receipt.business_day)).all()
            total = 0
            for day in days:
                rep = dayend.report(s, boss, self.pid, day)
                assert rep["reconciled"], (day, rep["problems"])
                total += rep["totals"]["count"]
                if day in self.closed:
                    assert sorted(r["id"] for r in rep["receipts"]) == self.closed[day], "a closed day changed"
            assert total == s.exec(select(func.count()).select_from(Receipt).where(
                Receipt.property_id == self.pid)).one()
            vac = s.get(Account, self.vacancy)
            assert vac.kind == KIND_VACANCY


def test_money_is_always_right(engine):
    Money.engine = engine
    n = 16 if engine.dialect.name == "sqlite" else 8
    run_state_machine_as_test(Money, settings=settings(max_examples=n, stateful_step_count=30, deadline=None,
                                                       suppress_health_check=list(HealthCheck), database=None))
