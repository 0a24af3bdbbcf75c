"""Apportionment (公摊), issue 11 check 1: a building with a lift pool by
floor area, a lighting pool by consumption, one vacant unit at 50 %, a
mid-month move-out and a measured loss. Every share below is worked out by
hand (tests/headend/apportion_site.py has the building; docs/apportionment.md
the same example in words); the shares add up to each pool to the mu; the
ledger entries are posted once (a second run of the month changes nothing).
On SQLite and PostgreSQL, through the real ingest of signed uplinks."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from headend.core import db
from headend.models import Account, ApportionShare, AuditLog, LedgerEntry
from headend.services import apportionment, ledger, portal, users
from headend.services.actor import Actor, system_actor
from headend.services.errors import Conflict, Forbidden, Invalid, NotFound
from headend.services.shares import largest_remainder
from tests.headend import apportion_site as AS

S30 = 30 * 86400            # seconds in November
HALF = 15 * 86400           # C's fifteen days (Nov 1-15), then fifteen vacant ones

# ---- the numbers, by hand ------------------------------------------------------
# Lift: 400 kWh × 0.80 = 320.0000 (3 200 000 mu), by floor area × days × weight:
#   U1 8000 dm² × 30 d × 100 %, U2 12000 × 30 × 100 %, U3 10000 × 30 × 50 % (vacant),
#   U4 6000 × 15 × 100 % (C), U4 6000 × 15 × 50 % (vacant)
#   in units of (dm² × 30 d × 50 %): 16000 : 24000 : 10000 : 6000 : 3000, total 59000
#   3 200 000 × 16000/59000 = 867 796.61   U1
#   3 200 000 × 24000/59000 = 1 301 694.92 U2
#   3 200 000 × 10000/59000 = 542 372.88   U3
#   3 200 000 ×  6000/59000 = 325 423.73   U4 (C)
#   3 200 000 ×  3000/59000 = 162 711.86   U4 (vacant)
#   floors add to 3 199 996: the 4 mu left go to the largest fractions .92 .88 .86 .73
LIFT = {"U1 A": 867796, "U2 B": 1301695, "U3 vacant": 542373, "U4 C": 325424, "U4 vacant": 162712}
# Lighting: 123.457 kWh × 0.80 = 98.7656 (987 656 mu), by the units' own use × weight:
#   U1 300 kWh, U2 500, U3 20 × 50 %, U4 150 (C), U4 10 × 50 % (vacant)
#   = 600000 : 1000000 : 20000 : 300000 : 10000 (in Wh × 50 %), total 1 930 000
#   987 656 × 60/193 = 307 043.32, ×100/193 = 511 738.86, ×2/193 = 10 234.78,
#   ×30/193 = 153 521.66, ×1/193 = 5 117.39; floors 987 653, 3 mu to .86 .78 .66
LIGHT = {"U1 A": 307043, "U2 B": 511739, "U3 vacant": 10235, "U4 C": 153522, "U4 vacant": 5117}
# Loss: master 1600 kWh − tenants (300 + 500 + 20 + 160) − common (400 + 123.457) = 96.543 kWh
#   × 0.80 = 77.2344 (772 344 mu), equal per unit-day, vacant units excluded:
#   U1 30 d : U2 30 d : U4 (C) 15 d = 2 : 2 : 1
#   772 344 × 2/5 = 308 937.6 (U1, U2), × 1/5 = 154 468.8 (C); floors 772 342,
#   2 mu left: .8 (C) first, then the tie .6/.6 goes to the smaller unit id (U1)
LOSS = {"U1 A": 308938, "U2 B": 308937, "U4 C": 154469}


@pytest.fixture
def built(engine):
    sf = db.session_factory(engine)
    site = AS.build(sf)
    AS.feed_month(sf, site)
    return sf, site


def manager(s, site, name="mgr-ap"):
    u = users.create_user(s, system_actor(s), name, "manager-pw-123", role="manager", property_ids=[site.pid])
    from headend.core.permissions import permissions_of
    return Actor(u, permissions_of("manager"), [site.pid], source="desk")


def lines_of(result):
    out = {}
    for ln in result["lines"]:
        who = "vacant" if ln["vacant"] else ln["account"][0]
        if ln["share_mu"] or not ln["vacant"]:
            out["%s %s" % (ln["unit"], who)] = ln["share_mu"]
    return out


def test_check_1_every_share_by_hand_posted_once(built):
    sf, site = built
    with sf() as s:
        m = manager(s, site)
        s.commit()
        view = apportionment.preview(s, m, site.pid, AS.MONTH)
        pools = {r["pool"]["name"]: r for r in view["pools"]}
        lift, light, loss = pools["Lift"], pools["Lighting"], pools["Loss"]
        assert (lift["energy_wh"], lift["price_mu_per_kwh"], lift["amount_mu"]) == (400000, 8000, 3200000)
        assert (light["energy_wh"], light["amount_mu"]) == (123457, 987656)
        assert (loss["master_wh"], loss["tenant_wh"], loss["common_wh"]) == (1600000, 980000, 523457)
        assert (loss["energy_wh"], loss["amount_mu"]) == (96543, 772344)
        assert lines_of(lift) == LIFT and lines_of(light) == LIGHT and lines_of(loss) == LOSS
        # the move-out splits U4 at Nov 16 00:00 local: fifteen days each
        u4 = [ln for ln in lift["lines"] if ln["unit"] == "U4"]
        assert [(ln["seconds"], ln["vacant"]) for ln in u4] == [(HALF, False), (HALF, True)]
        assert u4[0]["to"] == AS.MOVE_OUT
        # Σ shares = pool, to the mu, and so does the energy
        for r in (lift, light, loss):
            assert sum(ln["share_mu"] for ln in r["lines"]) == r["amount_mu"]
            assert sum(ln["energy_wh"] for ln in r["lines"]) == r["energy_wh"]
        assert view["total_mu"] == 3200000 + 987656 + 772344
        balances = {k: ledger.balance(s, a) for k, a in site.accounts.items()}

        run = apportionment.post(s, m, site.pid, AS.MONTH, now=AS.END + 3600)
        s.commit()
        assert run["shares"] == 11 and run["total_mu"] == 4960000 and not run["already_posted"]
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "apportionment")
                         .order_by(LedgerEntry.id)).all()
        assert len(entries) == 11 and all(e.user_id == m.user_id for e in entries)
        by_account = {}
        for e in entries:
            by_account[e.account_id] = by_account.get(e.account_id, 0) - e.amount_mu
        acc = site.accounts
        assert by_account == {acc["A"]: 867796 + 307043 + 308938, acc["B"]: 1301695 + 511739 + 308937,
                              acc["C"]: 325424 + 153522 + 154469, acc["vacancy"]: 542373 + 162712 + 10235 + 5117}
        for k, a in acc.items():
            assert ledger.balance(s, a) == balances[k] - by_account[a]
        assert ledger.check_cache(s) == []
        # each entry is linked to its published breakdown
        for e in entries:
            share = s.exec(select(ApportionShare).where(ApportionShare.ledger_entry_id == e.id)).one()
            assert share.amount_mu == -e.amount_mu and ("share:%d" % share.id) in e.reference
        [audit_row] = s.exec(select(AuditLog).where(AuditLog.action == "apportionment.post")).all()
        assert audit_row.after["total_mu"] == 4960000 and audit_row.user_id == m.user_id

        # a second run of the month changes nothing
        again = apportionment.post(s, m, site.pid, AS.MONTH, now=AS.END + 7200)
        s.commit()
        assert again["already_posted"] and again["shares"] == 0
        assert s.exec(select(func.count()).select_from(LedgerEntry)
                      .where(LedgerEntry.kind == "apportionment")).one() == 11
        assert s.exec(select(func.count()).select_from(AuditLog)
                      .where(AuditLog.action == "apportionment.post")).one() == 1
        assert all(r["posted"] for r in apportionment.preview(s, m, site.pid, AS.MONTH)["pools"])


def test_the_tenant_reads_its_breakdown(built):
    sf, site = built
    with sf() as s:
        m = manager(s, site)
        apportionment.post(s, m, site.pid, AS.MONTH, now=AS.END + 60)
        s.commit()
        a = s.get(Account, site.accounts["C"])
        u = users.create_user(s, system_actor(s), "tenant-c", "tenant-pw-123", tenant_id=a.tenant_id)
        tenant = Actor(u, {"portal", "authenticated"}, tenant_id=a.tenant_id)
        rows = portal.apportionment(s, tenant, a.id)
        assert [(r["pool"], r["rule"], r["share_mu"]) for r in rows] == [
            ("Lift", "area", 325424), ("Lighting", "consumption", 153522), ("Loss", "equal", 154469)]
        lift = rows[0]
        assert lift["pool_energy_wh"] == 400000 and lift["pool_mu"] == 3200000 and lift["price_mu_per_kwh"] == 8000
        [line] = lift["units"]
        assert line["unit"] == "U4" and line["base"] == 6000 and line["to"] - line["from"] == HALF
        assert portal.apportionment(s, tenant, a.id, month="2026-10") == []
        # nobody else's
        with pytest.raises(NotFound):
            portal.apportionment(s, tenant, site.accounts["A"])


def test_refusals(built):
    sf, site = built
    with sf() as s:
        m = manager(s, site)
        with pytest.raises(Conflict):            # December is not over
            apportionment.post(s, m, site.pid, "2026-12", now=AS.END + 60)
        with pytest.raises(Invalid):
            apportionment.preview(s, m, site.pid, "2026-13")
        cashier = Actor(users.create_user(s, system_actor(s), "cash-ap", "cashier-pw-123", role="cashier",
                                          property_ids=[site.pid]),
                        __import__("headend.core.permissions", fromlist=["x"]).permissions_of("cashier"), [site.pid])
        with pytest.raises(Forbidden):
            apportionment.post(s, cashier, site.pid, AS.MONTH, now=AS.END + 60)
        with pytest.raises(Invalid):             # a meter of no property of ours
            apportionment.create_pool(s, m, site.pid, "Pumps", "common", "equal", None, [10 ** 6])
        with pytest.raises(Conflict):
            apportionment.create_pool(s, m, site.pid, "Lift", "common", "equal", None, [site.meters["LIFT"]])
        # the same idempotency key replays the run
        first = apportionment.post(s, m, site.pid, AS.MONTH, idempotency_key="ap-key-0001", now=AS.END + 60)
        s.commit()
        replay = apportionment.post(s, m, site.pid, AS.MONTH, idempotency_key="ap-key-0001", now=AS.END + 90)
        assert replay["id"] == first["id"] and replay["already_posted"]


# ---- the split itself, for any amounts and weights --------------------------------
parts = st.lists(st.tuples(st.integers(1, 10 ** 6), st.integers(0, 10 ** 15)), min_size=1, max_size=40,
                 unique_by=lambda p: p[0])


@settings(max_examples=400, deadline=None)
@given(total=st.integers(0, 10 ** 13), parts=parts)
def test_shares_always_add_up_to_the_pool(total, parts):
    out = largest_remainder(total, parts)
    whole = sum(w for _k, w in parts)
    if whole == 0:
        assert set(out.values()) == {0}
        return
    assert sum(out.values()) == total
    for key, w in parts:
        exact_floor = total * w // whole
        assert out[key] in (exact_floor, exact_floor + 1)       # never more than 1 mu off its exact share
        if w == 0:
            assert out[key] == 0
    # the order the parts come in changes nothing
    assert largest_remainder(total, list(reversed(parts))) == out


def test_ties_go_to_the_smaller_key():
    assert largest_remainder(10, [((2, 1), 1), ((1, 1), 1), ((3, 1), 1)]) == {(1, 1): 4, (2, 1): 3, (3, 1): 3}
    assert largest_remainder(772344, [("U1", 2), ("U2", 2), ("U4", 1)]) == {"U1": 308938, "U2": 308937,
                                                                             "U4": 154469}
